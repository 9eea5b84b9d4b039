"""What one task costs the master's own thread, core and codec only (no sockets, no
disk, no other process): a steadier figure than ``bench_cluster.py``'s churn, which
shares two cores with the simulated agents, the framework and the host's moods.

Registers ``--agents`` agents and one framework, then runs ``--tasks`` short tasks
through the master as the bench's framework and agents would: offers accepted with as
many tasks as fit while fewer than ``--inflight`` are unfinished, each task RUNNING then
FINISHED, every update forwarded and acknowledged. What is timed is the master's side
only: decoding every frame it receives, handling it, its ticks, encoding every frame it
sends, and packing the records it would log (and with ``--keep-warm``, keeping the
read cache warm as the server's loop does). Prints master CPU microseconds per task
and the tasks a second that would allow; asserts nothing (issue 13: figures for humans).

    python tools/bench_core_churn.py [--agents 10000] [--tasks 50000] [--keep-warm]
                                     [--profile]
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import gc
import itertools
import pstats
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import msgpack  # noqa: E402
import structlog  # noqa: E402

from mesos_zmq.collector import tune_collector  # noqa: E402
from mesos_zmq.master.core import MasterCore, MasterCoreConfig, Ready  # noqa: E402
from mesos_zmq.master.loop_reads import LoopReads  # noqa: E402
from mesos_zmq.master.records import record_to_plain  # noqa: E402
from mesos_zmq.master.state import MasterState  # noqa: E402
from mesos_zmq.protocol import (  # noqa: E402
    Accept,
    Acknowledge,
    FrameworkInfo,
    Message,
    Offers,
    RegisterAgent,
    RunTasks,
    StatusUpdate,
    Subscribe,
    Subscribed,
    TaskInfo,
    TaskStatus,
    decode,
    encode,
)
from mesos_zmq.resources import Resources  # noqa: E402

SHORT = Resources.parse("cpus:0.1;mem:16")
FRAMEWORK = b"framework"


class Churn:
    def __init__(self, agents: int, inflight: int, keep_warm: bool = False) -> None:
        counter = itertools.count()
        self.core = MasterCore(MasterCoreConfig(), lambda: f"id{next(counter)}",
                               MasterState(), now=0.0)
        #: the server's read cache kept warm, turned after each master turn (timed)
        self.reads = LoopReads() if keep_warm else None
        self.now = 0.0
        self.inflight = inflight
        self.master_s = 0.0
        self.frames = 0
        self.seq = 0
        self.unfinished: set[str] = set()
        self.finished = 0
        self.framework_id = ""
        #: offers the framework holds until it has work for them
        self.held: collections.deque[Any] = collections.deque()
        #: frames waiting for the master, in arrival order: (peer, frame)
        self.inbox: collections.deque[tuple[bytes, bytes]] = collections.deque()
        #: per agent peer: task id -> updates not yet acknowledged
        self.updates: dict[bytes, dict[str, collections.deque[TaskStatus]]] = {}
        self.agent_ids: dict[bytes, str] = {}
        for i in range(agents):
            self.send_to_master(b"agent%06d" % i,
                                RegisterAgent(hostname=f"h{i}", resources="cpus:16;mem:65536"))
        self.send_to_master(FRAMEWORK, Subscribe(framework=FrameworkInfo(
            name="bench", roles=["*"], failover_timeout=3600.0)))

    def send_to_master(self, peer: bytes, msg: Message) -> None:
        self.inbox.append((peer, encode(msg, uuid.uuid4().hex[:12])))

    # ------------------------------------------------------------------ the master
    def master_turn(self) -> list[tuple[bytes, Message]]:
        """Everything queued, then a tick, as one loop turn of the server (timed)."""
        started = time.process_time()
        out = Ready()
        now = self.now
        while self.inbox:
            peer, frame = self.inbox.popleft()
            self.frames += 1
            envelope = decode(frame)
            out.extend(self.core.handle(peer, envelope.message, envelope.request_id, now))
        out.extend(self.core.tick(now))
        if out.records:
            msgpack.packb([record_to_plain(r) for r in out.records], use_bin_type=True)
        sent = []
        for peer, msg, rid in out.messages:
            encode(msg, rid, 1)
            sent.append((peer, msg))
        if self.reads is not None:
            # as the server's loop, once a turn; its clock is the master's CPU time so
            # far, so that it catches up as often as in a master busy all the time
            # (the simulated clock runs far faster than a real master's turns)
            self.reads.turn(self.core, self.master_s + time.process_time() - started, 1)
        self.master_s += time.process_time() - started
        return sent

    # ------------------------------------------------------------------ its peers
    def deliver(self, peer: bytes, msg: Message) -> None:
        if peer == FRAMEWORK:
            self.to_framework(msg)
        else:
            self.to_agent(peer, msg)

    def to_framework(self, msg: Message) -> None:
        if isinstance(msg, Subscribed):
            self.framework_id = msg.framework_id
        elif isinstance(msg, Offers):
            self.held.extend(msg.offers)
        elif isinstance(msg, StatusUpdate):
            status = msg.status
            self.send_to_master(FRAMEWORK, Acknowledge(
                framework_id=self.framework_id, agent_id=status.agent_id,
                task_id=status.task_id, uuid=status.uuid))
            if status.state == "TASK_FINISHED" and status.task_id in self.unfinished:
                self.unfinished.discard(status.task_id)
                self.finished += 1

    def launch(self) -> None:
        """As the bench's framework: held offers are used while fewer than ``inflight``
        tasks are unfinished, each accepted with as many tasks as fit and room allows
        (what is left of it goes back to the master)."""
        while self.held and len(self.unfinished) < self.inflight:
            offer = self.held.popleft()
            left = Resources.parse(offer.resources)
            tasks = []
            while len(self.unfinished) < self.inflight and left.contains(SHORT):
                left = left - SHORT
                self.seq += 1
                task_id = f"s{self.seq}"
                self.unfinished.add(task_id)
                tasks.append(TaskInfo(task_id=task_id, agent_id=offer.agent_id,
                                      resources=str(SHORT), command="true",
                                      env={"SIM_SECONDS": "0"}))
            self.send_to_master(FRAMEWORK, Accept(
                framework_id=self.framework_id, offer_ids=[offer.offer_id], tasks=tasks,
                refuse_seconds=0))

    def to_agent(self, peer: bytes, msg: Message) -> None:
        agent_id = getattr(msg, "agent_id", "")
        if type(msg).__name__ == "AgentRegistered":
            self.agent_ids[peer] = agent_id
        elif isinstance(msg, RunTasks):
            for task in msg.tasks:
                queue = collections.deque(
                    TaskStatus(task_id=task.task_id, framework_id=msg.framework_id,
                               agent_id=self.agent_ids[peer], state=state,
                               uuid=uuid.uuid4().hex, timestamp=self.now)
                    for state in ("TASK_RUNNING", "TASK_FINISHED"))
                self.updates.setdefault(peer, {})[task.task_id] = queue
                self.send_to_master(peer, StatusUpdate(status=queue[0]))
        elif isinstance(msg, Acknowledge):
            queue = self.updates.get(peer, {}).get(msg.task_id)
            if queue and queue[0].uuid == msg.uuid:
                queue.popleft()
                if queue:
                    self.send_to_master(peer, StatusUpdate(status=queue[0]))
                else:
                    del self.updates[peer][msg.task_id]

    def run(self, tasks: int) -> None:
        while self.finished < tasks:
            self.now += 0.002
            for peer, msg in self.master_turn():
                self.deliver(peer, msg)
            self.launch()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--inflight", type=int, default=2_000)
    parser.add_argument("--default-collector", action="store_true",
                        help="CPython's collector thresholds, not the daemon's")
    parser.add_argument("--profile", action="store_true",
                        help="print the master side's top functions (cProfile)")
    parser.add_argument("--keep-warm", action="store_true",
                        help="keep the read cache warm as the server does (LoopReads)")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    # as the daemon: what it holds for good is out of the collector's sight, and its
    # collector tuned (--default-collector: CPython's thresholds, to compare)
    gc.freeze()
    if not args.default_collector:
        tune_collector()
    churn = Churn(args.agents, args.inflight, args.keep_warm)
    churn.run(1)  # everyone registered and subscribed, the first task through
    warm_s, warm_frames, warm_done = churn.master_s, churn.frames, churn.finished
    profile = cProfile.Profile() if args.profile else None
    if profile is not None:
        profile.enable()
    churn.run(warm_done + args.tasks)
    if profile is not None:
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)
    spent = churn.master_s - warm_s
    done = churn.finished - warm_done
    figures: dict[str, Any] = {
        "agents": args.agents, "tasks": done,
        "master_us_per_task": round(spent / done * 1e6, 1),
        "frames_per_task": round((churn.frames - warm_frames) / done, 2),
        "master_tasks_per_cpu_s": round(done / spent),
    }
    print(f"reproduce: python tools/bench_core_churn.py --agents {args.agents} "
          f"--tasks {args.tasks} --inflight {args.inflight}"
          + (" --keep-warm" if args.keep_warm else ""))
    print(" ".join(f"{k}={v}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
