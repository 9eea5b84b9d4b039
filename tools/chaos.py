"""Chaos run: kill, pause and restart leading masters while work runs; check nothing is lost.

Starts a ZooKeeper ensemble, replicated masters (restarted when they exit, as systemd
would), agents, and a workload framework in this process that keeps launching short
tasks, holding some offers for a while so that some accepts land after a failover.
It first runs ``--baseline`` seconds without faults (throughput reference), then injects
``--kills`` faults at random moments, lets the work drain, declines everything, and
checks from three independent sources (the framework's records, the master's final
state, and marker lines the tasks themselves append to a shared file):

Safety (any of these makes the exit status non-zero):

* ``lost``: a launched task never reached a terminal state, or ended TASK_LOST;
* ``duplicated``: a task started twice (two ``start`` lines, or two RUNNING updates);
* ``dropped_accepts``: an accept got neither its tasks launched nor an explicit answer;
* ``multi_terminal``: the framework heard two different terminal states for one task;
* ``overbooked``: intervals where the tasks running on an agent (from their start/end
  lines; a task without ``end`` runs to the end of the run) need more cpus or mem than
  the agent has;
* ``leaked_offers``: offers the master still counts as outstanding for the framework
  although the framework holds none. In the final phase the framework declines every
  offer at once with ``refuse_seconds=3600``; after a settle time (3 s) the master's
  per-framework ``offers`` count is sampled three times one second apart, and the
  smallest excess over the offers the framework itself holds is the leak (an offer in
  flight shows in one sample, a leaked one in all of them);
* ``deposed_acted`` (``stop`` faults): after SIGCONT the leader record in ZooKeeper was
  missing or named someone other than the new leader for more than 2 s, or at the end
  of the watch window the record did not name a serving master, a fresh
  ``LeaderDetector`` found no leader within 5 s, or the woken master still answered on
  its port as a leader;
* ``stalled``: after a fault no new leader reached the framework within 60 s, a fault
  was skipped because no live leader was known for 10 s, or no master answered for the
  final state;
* tasks the framework heard FINISHED without an ``end`` line, tasks that ran but that
  the framework heard nothing of, resources still used on an agent after all work
  ended, and restarted masters that did not rejoin the election (``rejoined``).

Also reported: throughput (finished tasks per minute) in the baseline and during chaos
and their ratio; failover time (from the signal until the framework hears a new
leader), with SIGKILL failovers (``failover_p99``) apart from stop/double/quick ones
(``failover_p99_multi``); master restarts; and, for information, messages from a
deposed leader that the framework ignored by epoch, and ``deposed_decided``: stop
faults after which the woken master logged decisions of its own (e.g. removing agents
whose heartbeats it missed while paused) before stepping down. Whether such a decision
was committed or sent is not visible from outside (batches carry no writer id; clients
drop stale-epoch messages), so it is reported, not failed.

Fault kinds (``--faults``, chosen at random with the seed; without it: the ``--signal``
kind, ``double`` and ``quick``, plus ``stop`` with ``--stop-leader``; ``--single-only``
drops ``double`` and ``quick``):

* ``kill``: SIGKILL the leader;  ``term``: SIGTERM the leader;
* ``stop``: SIGSTOP the leader until a new leader serves (longer than the ZooKeeper
  session), then SIGCONT it and watch what it does (``--stop-leader`` adds this kind);
* ``double``: SIGKILL the leader and, back to back, a standby or the next leader as
  soon as it is elected;
* ``quick``: SIGKILL the leader, then SIGKILL the new leader within a second of its
  taking over.

    python tools/chaos.py --kills 30 --stop-leader --snapshot-every 500
    python tools/chaos.py --kills 20 --faults kill,term,stop,double,quick --seed 7

The last line reads ``kills=K lost=0 duplicated=0 dropped_accepts=0
cross_leader_accepts=N failover_p99=Xs overbooked=0 multi_terminal=0 leaked_offers=0
deposed_acted=0 throughput_ratio=R failover_p99_multi=Ys restarts=M rejoined=A/B
stalled=0 deposed_decided=D``.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chaos_accounting import (
    finished_without_end,
    marker_command,
    overbooked,
    parse_markers,
    started_twice,
    started_unheard,
)

from mesos_zmq.auth.keys import ClientKeys
from mesos_zmq.cli.client import MasterUnreachable, RequestRefused, request
from mesos_zmq.detector import (
    ELECTION_NODE,
    LEADER_NODE,
    LeaderDetector,
    NoLeader,
    parse_master_url,
    zk_client,
)
from mesos_zmq.protocol import (
    FrameworkInfo,
    GetState,
    Offer,
    State,
    TaskInfo,
    TaskStatus,
)
from mesos_zmq.resources import Resources
from mesos_zmq.scheduler import Scheduler, SchedulerDriver
from mesos_zmq.tasks import TERMINAL
from mesos_zmq.testing.zookeeper import Ensemble
from mesos_zmq.zk_auth import ZkCredentials, load_zk_credentials
from tests.cluster import Cluster, Proc, SupervisedMasters, wait_until

TASK_CPUS = 0.1
TASK_MEM = 16.0
TASK = Resources.parse(f"cpus:{TASK_CPUS:g};mem:{TASK_MEM:g}")
TASK_SLEEP = 0.3
FAULT_KINDS = ("kill", "term", "stop", "double", "quick")
#: a deposed leader may leave the leader record missing or wrong this long, no longer
RECORD_GRACE = 2.0
#: after the drain, how long declines may take before outstanding offers count as leaked
OFFER_SETTLE = 3.0
FINAL_REFUSE = 3600.0
#: updates the framework hears that mean "this task never ran"
NEVER_RAN = {"TASK_ERROR", "TASK_DROPPED"}


@dataclass
class AcceptRecord:
    offer_id: str
    task_ids: list[str]
    leader_at_offer: str | None
    leader_at_accept: str | None


@dataclass
class Workload(Scheduler):
    """Launches short marker-writing tasks until told to stop, and records everything.

    In the final phase (``final``) it declines every offer at once for an hour, so that
    any offer the master still counts afterwards is one the framework never got.
    """

    detector: LeaderDetector
    rng: random.Random
    marker_path: str
    launching: bool = True
    final: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    counter: int = 0
    accepts: list[AcceptRecord] = field(default_factory=list)
    updates: dict[str, list[str]] = field(default_factory=dict)
    finished_at: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    last_message: float = 0.0
    held: list[tuple[float, Offer, str | None]] = field(default_factory=list)
    outstanding: set[str] = field(default_factory=set)
    offers_in_final: int = 0
    lost_reasons: dict[str, str] = field(default_factory=dict)

    def _touch(self) -> None:
        self.last_message = time.monotonic()

    def reregistered(self, driver: SchedulerDriver, master_info: dict[str, Any]) -> None:
        self._touch()  # the first word of a new leader

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        self._touch()
        leader = self.detector.current()
        for offer in offers:
            self.outstanding.add(offer.offer_id)
            if self.final:
                self.offers_in_final += 1
                self._decline(driver, offer, FINAL_REFUSE)
            elif not self.launching:
                self._decline(driver, offer, 1)
            elif self.rng.random() < 0.3:
                # Hold it a while: a failover may happen before we accept it.
                self.held.append((time.monotonic() + self.rng.uniform(0.3, 1.5), offer, leader))
            else:
                self._accept(driver, offer, leader)

    def _decline(self, driver: SchedulerDriver, offer: Offer, refuse: float) -> None:
        self.outstanding.discard(offer.offer_id)
        driver.decline_offer(offer.offer_id, refuse_seconds=refuse)

    def release_held(self, driver: SchedulerDriver) -> None:
        now = time.monotonic()
        due = [h for h in self.held if h[0] <= now or self.final]
        self.held = [h for h in self.held if h[0] > now and not self.final]
        for _, offer, leader in due:
            if self.launching and not self.final:
                self._accept(driver, offer, leader)
            else:
                self._decline(driver, offer, FINAL_REFUSE if self.final else 1)

    def _accept(self, driver: SchedulerDriver, offer: Offer, leader: str | None) -> None:
        self.outstanding.discard(offer.offer_id)
        left = Resources.parse(offer.resources)
        tasks: list[TaskInfo] = []
        command = marker_command(self.marker_path, TASK_CPUS, TASK_MEM, TASK_SLEEP)
        while left.contains(TASK) and len(tasks) < 5:
            left = left - TASK
            with self.lock:
                self.counter += 1
                task_id = f"chaos-{self.counter:06d}"
                self.updates[task_id] = []
            tasks.append(TaskInfo(task_id=task_id, agent_id=offer.agent_id,
                                  resources=str(TASK), command=command))
        if not tasks:
            driver.decline_offer(offer.offer_id, refuse_seconds=0)
            return
        self.accepts.append(AcceptRecord(offer.offer_id, [t.task_id for t in tasks], leader,
                                         self.detector.current()))
        driver.launch_tasks([offer.offer_id], tasks, refuse_seconds=0)

    def offer_rescinded(self, driver: SchedulerDriver, offer_id: str) -> None:
        self._touch()
        self.outstanding.discard(offer_id)
        self.held = [h for h in self.held if h[1].offer_id != offer_id]

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        self._touch()
        with self.lock:
            self.updates.setdefault(status.task_id, []).append(status.state)
            if status.state == "TASK_FINISHED":
                self.finished_at.append(time.monotonic())
            if status.state == "TASK_LOST":
                self.lost_reasons[status.task_id] = f"{status.reason}: {status.message}"

    def error(self, driver: SchedulerDriver, message: str) -> None:
        self.errors.append(message)

    def finished_between(self, begin: float, end: float) -> int:
        with self.lock:
            return sum(1 for t in self.finished_at if begin <= t < end)


@dataclass
class Fault:
    kind: str
    failover: float | None = None
    deposed_violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: why the cluster did not recover from this fault in time ("" if it did)
    stalled: str = ""
    #: what a woken deposed master logged besides connection chatter and stepping down
    deposed_decisions: list[str] = field(default_factory=list)


#: log events of a woken master that show no decision of its own: ZooKeeper client
#: chatter (kazoo logs through the same handler) and the ways of stepping down
HARMLESS_EVENT_PREFIXES = (
    "Connection dropped", "Transition to", "Zookeeper connection lost", "Connecting to",
    "Session has expired", "Zookeeper session closed", "Failed connecting to Zookeeper",
    "Sending request", "Received response", "Zookeeper session lost", "ZooKeeper session lost",
    "fenced by a newer leader", "replicated log failed", "master stopping", "master stopped",
    "standing by", "Zookeeper session established", "Closing connection",
    "Zookeeper connection established", "leadership lost", "no longer the leader",
    # the leader's own watch holding everything back while it cannot reach ZooKeeper
    "cannot confirm leadership yet",
    # the loop noticing it stood still: it judges no peer silent for that time
    "the master stood still",
)


def harmless_event(event: str) -> bool:
    return event.startswith(HARMLESS_EVENT_PREFIXES)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def master_accepts(flag: str) -> bool:
    """Whether ``mesos-zmq master`` knows ``flag`` (flags are added while this tool runs)."""
    result = subprocess.run([sys.executable, "-m", "mesos_zmq", "master", "--help"],
                            capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    return flag in result.stdout


#: with --auth: the operator's keys for state reads, the masters' ZooKeeper credentials
OPERATOR_KEYS: ClientKeys | None = None
ZK_CREDENTIALS: ZkCredentials | None = None


def state_at(address: str, timeout: float = 1.0) -> dict[str, Any] | None:
    """The state a master at ``address`` serves, or None if it does not answer as leader."""
    try:
        reply = request(address, GetState(), timeout=timeout, keys=OPERATOR_KEYS)
    except (MasterUnreachable, RequestRefused):
        return None
    return reply.state if isinstance(reply, State) else None


class Chaos:
    """The fault injector; one fault at a time, each waiting until the cluster recovered."""

    def __init__(self, args: argparse.Namespace, rng: random.Random, masters: SupervisedMasters,
                 detector: LeaderDetector, workload: Workload, zk_url: str) -> None:
        self.args = args
        self.rng = rng
        self.masters = masters
        self.detector = detector
        self.workload = workload
        self.zk_url = zk_url
        url = parse_master_url(zk_url)
        self.zk_path = url.path
        self.zk = zk_client(url, session_timeout=5.0, credentials=ZK_CREDENTIALS)
        self.driver: SchedulerDriver | None = None
        self._closed = threading.Event()
        self._epochs_lock = threading.Lock()
        self._epoch_heard: dict[int, float] = {}
        threading.Thread(target=self._watch_epochs, name="epochs", daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        try:
            self.zk.stop()
            self.zk.close()
        except Exception:
            pass

    # ----------------------------------------------------------------- observing
    def leader_record(self) -> dict[str, Any] | None:
        """The leader record read straight from ZooKeeper (no detector in between)."""
        try:
            data, _ = self.zk.get(f"{self.zk_path}/{LEADER_NODE}")
        except Exception:
            return None
        try:
            info: dict[str, Any] = json.loads(data.decode())
        except ValueError:
            return None
        return info

    def election_members(self) -> int:
        try:
            return len(self.zk.get_children(f"{self.zk_path}/{ELECTION_NODE}"))
        except Exception:
            return -1

    def leader_info(self, timeout: float = 30.0) -> dict[str, Any]:
        info: dict[str, Any] = wait_until(self.detector.info, timeout, interval=0.01,
                                          what="a leader")
        return info

    def wait_new_leader(self, after_epoch: int, signalled_at: float) -> tuple[dict[str, Any],
                                                                             float]:
        """Wait for a leader with a newer epoch, then for the framework to hear from it."""
        def newer() -> dict[str, Any] | None:
            info = self.detector.info()
            return info if info and int(info.get("epoch", 0)) > after_epoch else None

        info: dict[str, Any] = wait_until(newer, 60, interval=0.01, what="a new leader")
        if self.driver is None or not hasattr(getattr(self.driver, "_client", None),
                                              "max_epoch"):
            wait_until(lambda: self.workload.last_message > signalled_at, 60, interval=0.01,
                       what="the framework hearing from the new leader")
            return info, self.workload.last_message
        epoch = int(info.get("epoch", 0))

        def heard() -> float | None:
            with self._epochs_lock:
                times = [at for e, at in self._epoch_heard.items() if e >= epoch]
            return min(times) if times else None

        at: float = wait_until(heard, 60, interval=0.01,
                               what="the framework hearing from the new leader")
        return info, at

    def _watch_epochs(self) -> None:
        """Note when the framework first hears each master epoch.

        The driver's socket keeps the highest epoch it has heard (it drops anything
        older), so its first message from a new leader is visible the moment it arrives;
        a message of the old leader still in flight when the signal went cannot count as
        the new leader's, as it could with "any message after the signal".
        """
        seen = 0
        while not self._closed.is_set():
            client = getattr(self.driver, "_client", None)
            epoch = int(getattr(client, "max_epoch", 0))
            if epoch > seen:
                seen = epoch
                with self._epochs_lock:
                    self._epoch_heard[epoch] = time.monotonic()
            time.sleep(0.005)

    def stale_heard(self) -> int:
        """Messages from a deposed leader the framework's socket dropped by epoch."""
        client = getattr(self.driver, "_client", None)
        return int(getattr(client, "ignored_stale", 0))

    # ----------------------------------------------------------------- faults
    def inject(self, kind: str) -> Fault | None:
        info = self.detector.info()
        if info is None:
            return None
        proc = self.masters.by_address(str(info["address"]))
        if proc is None or not proc.alive():
            return None
        epoch = int(info.get("epoch", 0))
        if kind in ("kill", "term"):
            return self._single(kind, proc, epoch)
        if kind == "stop":
            return self._stop(proc, info)
        if kind == "double":
            return self._double(proc, epoch)
        return self._quick(proc, epoch)

    def _single(self, kind: str, proc: Proc, epoch: int) -> Fault:
        at = time.monotonic()
        proc.send_signal(signal.SIGKILL if kind == "kill" else signal.SIGTERM)
        _, heard = self.wait_new_leader(epoch, at)
        return Fault(kind, heard - at)

    def _double(self, proc: Proc, epoch: int) -> Fault:
        at = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        standbys = [p for p in self.masters.procs.values() if p is not proc and p.alive()]
        if standbys and self.rng.random() < 0.5:
            victim = self.rng.choice(standbys)
            victim.send_signal(signal.SIGKILL)
            last = time.monotonic()
            note = f"then a standby ({victim.name})"
            final_epoch = epoch
        else:
            second, _ = self.wait_new_leader(epoch, at)
            victim2 = self.masters.by_address(str(second["address"]))
            if victim2 is not None:
                victim2.send_signal(signal.SIGKILL)
            last = time.monotonic()
            note = f"then the next leader at once ({second['address']})"
            final_epoch = int(second.get("epoch", epoch))
        _, heard = self.wait_new_leader(final_epoch, last)
        return Fault("double", heard - at, notes=[note])

    def _quick(self, proc: Proc, epoch: int) -> Fault:
        at = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        second, _ = self.wait_new_leader(epoch, at)
        delay = self.rng.uniform(0.0, 0.9)
        time.sleep(delay)
        victim = self.masters.by_address(str(second["address"]))
        if victim is not None:
            victim.send_signal(signal.SIGKILL)
        last = time.monotonic()
        _, heard = self.wait_new_leader(int(second.get("epoch", epoch)), last)
        return Fault("quick", heard - at, notes=[f"new leader killed {delay:.2f}s after"])

    def _stop(self, proc: Proc, old: dict[str, Any]) -> Fault:
        """Pause the leader past its session, resume it and watch it step down.

        While the paused master sleeps, a standby takes over and works a little. When the
        old one wakes it still believes it leads; it must notice (session lost, epoch
        fenced) and leave the new leader alone. What is visible from outside: the leader
        record in ZooKeeper, whether the woken process still answers as a leader, what
        it logs, and stale-epoch messages the framework drops.
        """
        fault = Fault("stop")
        at = time.monotonic()
        proc.pause()
        try:
            new, heard = self.wait_new_leader(int(old.get("epoch", 0)), at)
            fault.failover = heard - at
            # Let the new leader commit and offer for a while before the old one wakes.
            time.sleep(max(0.0, at + 1.5 * self.args.session_timeout - time.monotonic())
                      + self.rng.uniform(0.2, 1.0))
        finally:
            log_offset = proc.log_path.stat().st_size if proc.log_path.exists() else 0
            stale_before = self.stale_heard()
            proc.resume()
        woke = time.monotonic()
        new_id = new.get("id")
        bad_since: float | None = None
        worst = 0.0
        window = max(4.0, 3 * self.args.session_timeout)
        while time.monotonic() < woke + window:
            record = self.leader_record()
            now = time.monotonic()
            if record is None or record.get("id") != new_id:
                bad_since = now if bad_since is None else bad_since
                worst = max(worst, now - bad_since)
            else:
                bad_since = None
            time.sleep(0.1)
        if worst > RECORD_GRACE:
            fault.deposed_violations.append(
                f"leader record missing or not the new leader's for {worst:.1f}s after SIGCONT")
        record = self.leader_record()
        if record is None:
            fault.deposed_violations.append("no leader record at the end of the watch")
        elif state_at(str(record.get("address")), timeout=2.0) is None:
            fault.deposed_violations.append(
                f"leader record names {record.get('address')}, which does not serve")
        fresh: LeaderDetector | None = None
        try:
            fresh = LeaderDetector(self.zk_url, session_timeout=2.0)
            fresh.wait(5.0)
        except NoLeader as exc:
            fault.deposed_violations.append(f"a fresh LeaderDetector found no leader: {exc}")
        finally:
            if fresh is not None:
                fresh.close()
        old_address = str(old["address"])
        if (record is None or record.get("address") != old_address) and proc.alive() \
                and self.masters.procs.get(self.masters.port_of(old_address)) is proc \
                and state_at(old_address, timeout=1.0) is not None:
            fault.deposed_violations.append("the woken master still answers as a leader")
        events = self._log_events(proc, log_offset)
        fault.deposed_decisions = [e for e in events if not harmless_event(e)]
        stale = self.stale_heard() - stale_before
        steps = [e for e in events if "step" in e.lower() or "fenced" in e.lower()]
        fault.notes.append(f"woken master {'exited' if not proc.alive() else 'still runs'}"
                           f" after {steps or 'no step-down message'}; decided meanwhile: "
                           f"{Counter(fault.deposed_decisions).most_common(4) or 'nothing'}; "
                           f"framework dropped {stale} stale-epoch messages")
        return fault

    @staticmethod
    def _log_events(proc: Proc, offset: int) -> list[str]:
        try:
            with open(proc.log_path, "rb") as f:
                f.seek(offset)
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return []
        events: list[str] = []
        for line in lines:
            try:
                event = str(json.loads(line).get("event", "?"))
            except ValueError:
                event = line[:80]
            if event == "log recovered":
                break  # a new process (restarted on the same log file) begins here
            events.append(event)
            if event.endswith("stepping down") or event == "master stopped":
                break  # what follows is the exit, or the next life of this master
        return events[:500]


def parse_faults(args: argparse.Namespace) -> list[str]:
    if args.faults:
        kinds = [k.strip() for k in args.faults.split(",") if k.strip()]
    else:
        kinds = [args.signal.lower()] + ([] if args.single_only else ["double", "quick"])
    if args.stop_leader and "stop" not in kinds:
        kinds.append("stop")
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown or not kinds:
        raise SystemExit(f"--faults: unknown kinds {unknown}; use {','.join(FAULT_KINDS)}")
    return kinds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else "chaos run",
        epilog="Faults: kill (SIGKILL leader), term (SIGTERM leader), stop (SIGSTOP leader "
               "past its session, then SIGCONT), double (leader and a standby or the next "
               "leader back to back), quick (new leader killed within 1 s of taking over). "
               "Exit status 1 when a safety invariant fails; see the module docstring.")
    parser.add_argument("--kills", type=int, default=5, help="number of faults to inject")
    parser.add_argument("--signal", choices=("KILL", "TERM"), default="KILL",
                        help="signal of single kills when --faults is not given")
    parser.add_argument("--faults", default="",
                        help="comma-separated fault kinds mixed at random with the seed: "
                             + ",".join(FAULT_KINDS)
                             + " (default: the --signal kind, double and quick, plus stop "
                               "with --stop-leader)")
    parser.add_argument("--stop-leader", action="store_true",
                        help="add SIGSTOP/SIGCONT of the leader to the fault mix")
    parser.add_argument("--single-only", action="store_true",
                        help="without --faults: only single kills of the --signal kind "
                             "(no double kills, no quick re-kills)")
    parser.add_argument("--snapshot-every", type=int, default=0,
                        help="pass --snapshot-every N to every master (0: the default)")
    parser.add_argument("--baseline", type=float, default=15.0,
                        help="seconds of work without faults before the first one "
                             "(throughput reference; 0 skips)")
    parser.add_argument("--session-timeout", type=float, default=1.0)
    parser.add_argument("--masters", type=int, default=3)
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--agent-resources", default="cpus:1;mem:256",
                        help="small agents fill up, so overbooking would show")
    parser.add_argument("--zk-size", type=int, default=3, choices=(1, 3))
    parser.add_argument("--kill-zk-member", action="store_true",
                        help="also kill one ZooKeeper member half way through")
    parser.add_argument("--auth", action="store_true",
                        help="keys on every socket (CurveZMQ, principals) and ZooKeeper "
                             "credentials for the masters")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--gap", type=float, nargs=2, default=(1.5, 3.5),
                        metavar=("MIN", "MAX"), help="seconds between faults")
    parser.add_argument("--drain-timeout", type=float, default=60.0)
    return parser


@dataclass
class Outcome:
    faults: list[Fault]
    state: dict[str, Any]
    markers: str
    run_end_wall: float
    baseline_rate: float | None
    chaos_rate: float | None
    restarts: int
    rejoined: tuple[int, int]
    leaked_offers: int
    offers_in_final: int
    snapshot_flag: str
    #: faults not injected because no live leader was known for ten seconds
    skipped: int
    #: why the final state could not be read ("" if it could)
    state_error: str


def run(args: argparse.Namespace, seed: int) -> tuple[Outcome, Workload]:
    rng = random.Random(seed)
    kinds = parse_faults(args)
    extra: list[str] = []
    snapshot_flag = "default"
    if args.snapshot_every:
        if master_accepts("--snapshot-every"):
            extra = ["--snapshot-every", str(args.snapshot_every)]
            snapshot_flag = str(args.snapshot_every)
        else:
            snapshot_flag = "unsupported"
            print("WARNING: this master does not accept --snapshot-every yet; "
                  "running with its default snapshot interval", flush=True)
    print(f"chaos: {args.kills} faults of {','.join(kinds)}, session {args.session_timeout}s, "
          f"{args.masters} masters, {args.agents} agents ({args.agent_resources}), "
          f"snapshot-every {snapshot_flag}, seed {seed}", flush=True)
    faults: list[Fault] = []
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        root = Path(tmp)
        marker_path = root / "markers.log"
        marker_path.touch()
        ensemble = Ensemble(root / "zk", size=args.zk_size).start()
        zk_url = f"zk://{ensemble.hosts}/chaos"
        cluster = Cluster(root, secure=args.auth)
        if args.auth:
            # Keys on every socket, principals, and the masters' znodes theirs alone.
            global OPERATOR_KEYS, ZK_CREDENTIALS
            assert cluster.keys is not None
            OPERATOR_KEYS = cluster.keys.client_keys("operator")
            secret = root / "zk.secret"
            secret.write_text("masters:chaos-secret\n")
            secret.chmod(0o600)
            ZK_CREDENTIALS = load_zk_credentials(secret)
            extra = [*extra, *cluster.master_args, "--zk-credentials", str(secret)]
        masters = SupervisedMasters(cluster, zk_url, args.masters, args.session_timeout,
                                    extra_args=extra)
        detector = LeaderDetector(zk_url, session_timeout=2.0)
        workload = Workload(detector, rng, str(marker_path))
        chaos = Chaos(args, rng, masters, detector, workload, zk_url)
        driver: SchedulerDriver | None = None
        stop_release = threading.Event()
        try:
            detector.wait(60)
            cluster.master_url = zk_url
            for _ in range(args.agents):
                cluster.start_agent(resources=args.agent_resources)
            cluster.wait_agents(args.agents, timeout=60)
            keys = cluster.keys.client_keys("framework") if cluster.keys else None
            driver = SchedulerDriver(workload, FrameworkInfo(name="chaos", failover_timeout=600),
                                     zk_url, keys=keys)
            chaos.driver = driver
            driver.start()
            wait_until(lambda: workload.accepts, 30, what="first launches")

            def pump(drv: SchedulerDriver) -> None:
                while not stop_release.is_set():
                    drv.call_soon(lambda: workload.release_held(drv))
                    time.sleep(0.1)

            threading.Thread(target=pump, args=(driver,), daemon=True).start()
            baseline_rate = None
            if args.baseline > 0:
                time.sleep(2.0)  # warm up: let the first launches finish
                begin = time.monotonic()
                time.sleep(args.baseline)
                end = time.monotonic()
                baseline_rate = workload.finished_between(begin, end) / (end - begin) * 60
                print(f"baseline: {baseline_rate:.0f} finished tasks/min", flush=True)
            chaos_begin = time.monotonic()
            skipped = 0
            for k in range(args.kills):
                time.sleep(rng.uniform(*args.gap))
                if args.kill_zk_member and k == args.kills // 2:
                    ensemble.servers[-1].kill()
                    print("killed one ZooKeeper member", flush=True)
                kind = rng.choice(kinds)
                fault = None
                for _ in range(50):  # a leader that is up and known (bounded wait)
                    try:
                        fault = chaos.inject(kind)
                    except AssertionError as exc:  # no new leader, or the framework deaf
                        fault = Fault(kind, stalled=str(exc))
                    if fault is not None:
                        break
                    time.sleep(0.2)
                if fault is None:
                    skipped += 1  # ten seconds without a live, known leader
                    print(f"fault {k + 1}: no live leader to hit; skipped", flush=True)
                    continue
                faults.append(fault)
                extra_text = "; ".join(fault.notes)
                print(f"fault {k + 1} {fault.kind}: new leader serving after "
                      f"{fault.failover or 0:.2f}s" + (f" ({extra_text})" if extra_text else "")
                      + "".join(f"\n  DEPOSED ACTED: {v}" for v in fault.deposed_violations)
                      + (f"\n  STALLED: {fault.stalled}" if fault.stalled else ""),
                      flush=True)
            chaos_end = time.monotonic()
            chaos_rate = (workload.finished_between(chaos_begin, chaos_end)
                          / (chaos_end - chaos_begin) * 60) if faults else None
            workload.launching = False
            deadline = time.monotonic() + args.drain_timeout
            while time.monotonic() < deadline:
                with workload.lock:
                    pending = [t for t, u in workload.updates.items()
                               if not any(s in TERMINAL for s in u)]
                if not pending:
                    break
                time.sleep(0.5)
            time.sleep(2.0)  # let late duplicates show themselves
            # Final phase: decline everything for an hour; what the master still
            # counts as outstanding afterwards was never (or no longer) with us.
            workload.final = True
            time.sleep(OFFER_SETTLE)
            framework_id = driver.framework_id
            excess: list[int] = []
            state: dict[str, Any] = {}
            state_error = ""
            for _ in range(3):
                try:
                    state = cluster.state(timeout=10)
                except (MasterUnreachable, RequestRefused) as exc:
                    state_error = str(exc)
                    break
                counted = sum(int(f.get("offers", 0)) for f in state["frameworks"]
                              if f["id"] == framework_id)
                excess.append(max(0, counted - len(workload.outstanding)))
                time.sleep(1.0)
            leaked = min(excess) if excess else 0
            # Restarted masters must be back in the election (bounded wait).
            try:
                wait_until(lambda: masters.alive_count() == args.masters
                           and chaos.election_members() == args.masters, 20,
                           interval=0.2, what="all masters back in the election")
            except AssertionError:
                pass
            rejoined = (min(masters.alive_count(), max(0, chaos.election_members())),
                        args.masters)
            restarts = sum(masters.restarts.values())
            run_end_wall = time.time()
            markers = marker_path.read_text(errors="replace")
        finally:
            stop_release.set()
            if driver is not None:
                driver.stop()
                driver.join(10)
            masters.stop_supervising()
            chaos.close()
            detector.close()
            cluster.stop()
            ensemble.stop()
    return Outcome(faults, state, markers, run_end_wall, baseline_rate, chaos_rate, restarts,
                   rejoined, leaked, workload.offers_in_final, snapshot_flag, skipped,
                   state_error), workload


def report(args: argparse.Namespace, seed: int, out: Outcome, workload: Workload) -> int:
    """Check the invariants, print the findings and the last line; 1 if safety failed."""
    failures: list[str] = []
    with workload.lock:
        updates = {t: list(u) for t, u in workload.updates.items()}
    terminal = {t: [s for s in u if s in TERMINAL] for t, u in updates.items()}
    lost = sorted(t for t, u in terminal.items() if not u or "TASK_LOST" in u)
    multi = sorted(t for t, u in terminal.items() if len(set(u)) > 1)
    repeated = sorted(t for t, u in terminal.items() if len(u) > 1 and len(set(u)) == 1)
    twice_running = {t for t, u in updates.items() if Counter(u)["TASK_RUNNING"] > 1}
    side = parse_markers(out.markers)
    twice_started = set(started_twice(side))
    duplicated = sorted(twice_running | twice_started)
    dropped = [a for a in workload.accepts if not any(updates.get(t) for t in a.task_ids)]
    cross = [a for a in workload.accepts
             if a.leader_at_offer and a.leader_at_accept
             and a.leader_at_offer != a.leader_at_accept
             and any("TASK_FINISHED" in updates.get(t, []) for t in a.task_ids)]
    totals = {}
    for agent in out.state.get("agents", []):
        res = Resources.parse(agent["resources"])
        totals[agent["id"]] = (res.scalar("cpus"), res.scalar("mem"))
    overbookings = overbooked(side, totals, out.run_end_wall)
    finished = sorted(t for t, u in terminal.items() if "TASK_FINISHED" in u)
    no_end = finished_without_end(side, finished)
    maybe_ran = {t for t, u in updates.items() if any(s not in NEVER_RAN for s in u)}
    unheard = started_unheard(side, maybe_ran)
    unknown_agents = sorted({m.agent_id for ms in side.starts.values() for m in ms}
                            - set(totals))
    deposed = [f for f in out.faults if f.deposed_violations]
    if lost:
        failures.append(f"{len(lost)} tasks lost or without a terminal state: "
                        + ", ".join(f"{t} {updates[t]} {workload.lost_reasons.get(t, '')}"
                                    for t in lost[:5]))
    if multi:
        failures.append(f"{len(multi)} tasks with two different terminal states: "
                        + ", ".join(f"{t} {terminal[t]}" for t in multi[:5]))
    if repeated:
        failures.append(f"{len(repeated)} tasks with a terminal state delivered twice: "
                        f"{repeated[:5]}")
    if duplicated:
        failures.append(f"{len(duplicated)} tasks launched twice ({len(twice_started)} by "
                        f"their start lines, {len(twice_running)} by RUNNING updates): "
                        f"{duplicated[:5]}")
    if dropped:
        failures.append(f"{len(dropped)} accepts silently dropped")
    if overbookings:
        failures.append(f"{len(overbookings)} overbooked intervals: " + ", ".join(
            f"{o.agent_id} {o.end - o.begin:.2f}s at cpus {o.cpus:g} mem {o.mem:g}"
            for o in overbookings[:5]))
    if no_end:
        failures.append(f"{len(no_end)} tasks heard FINISHED without an end line: {no_end[:5]}")
    if unheard:
        failures.append(f"{len(unheard)} tasks ran but the framework heard nothing (or only "
                        f"that they never ran): {unheard[:5]}")
    if unknown_agents:
        failures.append(f"tasks ran on agents the master does not know: {unknown_agents}")
    if out.leaked_offers:
        failures.append(f"{out.leaked_offers} offers still outstanding at the master that the "
                        f"framework does not hold, {OFFER_SETTLE:g}s+ after declining all")
    for fault in deposed:
        failures.append(f"deposed leader acted ({fault.kind}): "
                        + "; ".join(fault.deposed_violations))
    decided = [f for f in out.faults if f.deposed_decisions]
    for fault in decided:
        print(f"NOTE: a woken deposed master decided things before stepping down: "
              f"{Counter(fault.deposed_decisions).most_common(5)}")
    stalled = [f for f in out.faults if f.stalled]
    for fault in stalled:
        failures.append(f"no recovery after a {fault.kind} fault: {fault.stalled}")
    if out.skipped:
        failures.append(f"{out.skipped} faults skipped: no live leader known for 10 s")
    if out.state_error:
        failures.append(f"no master answered for the final state: {out.state_error}")
    busy = [a["id"] for a in out.state.get("agents", []) if a["used_resources"]]
    if busy:
        failures.append(f"resources still used on agents {busy} after all work ended")
    if out.rejoined[0] < out.rejoined[1]:
        failures.append(f"only {out.rejoined[0]} of {out.rejoined[1]} masters back in the "
                        f"election at the end")
    print(f"tasks launched={len(updates)} finished={len(finished)} lost={len(lost)} "
          f"duplicated={len(duplicated)} accepts={len(workload.accepts)} "
          f"start_lines={sum(len(s) for s in side.starts.values())} "
          f"end_lines={sum(len(e) for e in side.ends.values())} "
          f"malformed_lines={side.malformed} offers_after_final_decline={out.offers_in_final}")
    singles = [f.failover for f in out.faults if f.kind == "kill" and f.failover is not None]
    if not singles:
        singles = [f.failover for f in out.faults if f.kind == "term" and f.failover is not None]
    multis = [f.failover for f in out.faults
              if f.kind in ("stop", "double", "quick") and f.failover is not None]
    for kind in FAULT_KINDS:
        times = [f.failover for f in out.faults if f.kind == kind and f.failover is not None]
        if times:
            print(f"failover {kind} (signal -> framework hears the new leader), {len(times)}x: "
                  f"p50 {statistics.median(times):.2f}s p99 {percentile(times, 99):.2f}s "
                  f"max {max(times):.2f}s")
    ratio = None
    if out.baseline_rate and out.chaos_rate is not None:
        ratio = out.chaos_rate / out.baseline_rate
        print(f"throughput: baseline {out.baseline_rate:.0f}/min, during chaos "
              f"{out.chaos_rate:.0f}/min, ratio {ratio:.2f}")
    p99 = percentile(singles, 99) if singles else 0.0
    p99_multi = percentile(multis, 99) if multis else 0.0
    if ratio is not None and ratio < 0.5:
        print(f"TARGET MISSED: throughput during chaos is {ratio:.0%} of the baseline (< 50%)")
    if singles and p99 > 1.5 * max(1.0, args.session_timeout):
        print(f"TARGET MISSED: single-kill failover p99 {p99:.2f}s")
    for failure in failures:
        print(f"INVARIANT FAILED: {failure}")
    faults_arg = args.faults or ",".join(parse_faults(args))
    print(f"reproduce: python tools/chaos.py --kills {args.kills} --faults {faults_arg} "
          f"--session-timeout {args.session_timeout} --masters {args.masters} "
          f"--agents {args.agents} --zk-size {args.zk_size} --baseline {args.baseline:g}"
          + (f" --snapshot-every {args.snapshot_every}" if args.snapshot_every else "")
          + (" --auth" if args.auth else "") + f" --seed {seed}")
    print(f"kills={len(out.faults)} lost={len(lost)} duplicated={len(duplicated)} "
          f"dropped_accepts={len(dropped)} cross_leader_accepts={len(cross)} "
          f"failover_p99={p99:.2f}s overbooked={len(overbookings)} "
          f"multi_terminal={len(multi)} leaked_offers={out.leaked_offers} "
          f"deposed_acted={len(deposed)} "
          f"throughput_ratio={'n/a' if ratio is None else f'{ratio:.2f}'} "
          f"failover_p99_multi={p99_multi:.2f}s restarts={out.restarts} "
          f"rejoined={out.rejoined[0]}/{out.rejoined[1]} "
          f"stalled={len(stalled) + out.skipped + bool(out.state_error)} "
          f"deposed_decided={len(decided)}", flush=True)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    parse_faults(args)  # fail on a bad --faults before starting anything
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    outcome, workload = run(args, seed)
    return report(args, seed, outcome, workload)


if __name__ == "__main__":
    sys.exit(main())
