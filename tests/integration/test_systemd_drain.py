"""``systemctl kill -s SIGUSR1 mesos-zmq-agent`` without ``--kill-whom=main``, emulated.

systemd would signal every process of the agent's unit: the agent, its launcher, each
task supervisor and each task. The agent drains (kills its tasks, then exits); the
supervisors must survive the stray signal, since they are the ones that record how
their tasks end, and the tasks must still start with every signal at its default
action (a supervisor's own dispositions must not leak into them through exec).
No systemd needed: the signals are sent by pid to processes this test started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from mesos_zmq.agent.server import EXIT_DRAINED
from mesos_zmq.agent.supervisor import SURVIVED_SIGNALS, process_alive, read_events
from mesos_zmq.protocol import FrameworkInfo, TaskInfo
from mesos_zmq.scheduler import SchedulerDriver
from tests.cluster import Cluster, wait_until
from tests.integration.recording import Recorder


def signal_masks(pid: int) -> dict[str, int]:
    """SigBlk, SigIgn and SigCgt of a process, as bit sets (bit n-1 is signal n)."""
    with open(f"/proc/{pid}/status") as handle:
        return {key: int(value, 16) for key, _, value in
                (line.partition(":") for line in handle)
                if key in ("SigBlk", "SigIgn", "SigCgt")}


def bits(*signums: int) -> int:
    return sum(1 << (s - 1) for s in signums)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def events_of(agent_dir: Path, task_id: str) -> list[dict[str, Any]]:
    found = list((agent_dir / "meta" / "events").glob(f"*/{task_id}"))
    return read_events(found[0]) if found else []


@pytest.mark.integration
def test_supervisor_survives_stray_signals_and_its_task_gets_default_dispositions(
        tmp_path: Path) -> None:
    """A supervisor whose parent ignored, caught and blocked signals (as a launcher, an
    agent or a shell might) outlives every signal in SURVIVED_SIGNALS, and its task
    starts with nothing ignored, caught or blocked: SIGUSR1 kills the task."""
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    events = tmp_path / "events" / "t1"
    parent = textwrap.dedent(f"""
        import signal
        from mesos_zmq.agent.supervisor import SupervisorSpec, run_forked
        for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
        signal.signal(signal.SIGUSR2, lambda signum, frame: None)
        signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGQUIT, signal.SIGALRM}})
        run_forked(SupervisorSpec(events={str(events)!r}, sandbox={str(sandbox)!r},
                                  argv=["sleep", "60"], env={{"PATH": "/usr/bin:/bin"}}))
    """)
    supervisor = subprocess.Popen([sys.executable, "-c", parent], stdin=subprocess.DEVNULL)
    task_pid: int | None = None
    try:
        started = wait_until(lambda: [e for e in read_events(events)
                                      if e["event"] == "started"], 15,
                             what="the task to start")
        task_pid = int(started[0]["pid"])
        task = signal_masks(task_pid)
        assert task == {"SigBlk": 0, "SigIgn": 0, "SigCgt": 0}, task
        mine = signal_masks(supervisor.pid)
        assert mine["SigCgt"] & bits(*SURVIVED_SIGNALS) == bits(*SURVIVED_SIGNALS), mine
        assert mine["SigIgn"] == bits(signal.SIGPIPE, signal.SIGXFSZ), mine
        assert mine["SigBlk"] == 0, mine

        for signum in sorted(SURVIVED_SIGNALS):
            os.kill(supervisor.pid, signum)
        # A signal whose action kills the process would have ended the supervisor when
        # it was sent; the task's end is recorded afterwards, so an "exited" event
        # proves the supervisor outlived them all.
        os.kill(task_pid, signal.SIGUSR1)
        assert supervisor.wait(15) == 0
        final = read_events(events)[-1]
        assert final["event"] == "exited" and final["signal"] == signal.SIGUSR1, final
    finally:
        for pid in (task_pid, supervisor.pid):
            if pid is not None and not gone(pid):
                os.kill(pid, signal.SIGKILL)
        supervisor.wait(5)


@pytest.mark.integration
def test_sigusr1_to_every_process_of_the_agent_drains_and_supervisors_record_the_end(
        cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_master()
    agent = cluster.start_agent(resources="cpus:2;mem:1024")
    cluster.wait_agents(1)
    rec = Recorder()
    # "ignorer" survives the stray SIGUSR1 itself (as a task must when the whole unit
    # is signalled), so the drain is what ends it. "plain" installs no handler.
    rec.want(lambda offer: True, lambda offer: [
        TaskInfo(task_id="ignorer", agent_id=offer.agent_id, resources="cpus:0.1;mem:16",
                 command="trap '' USR1; echo $$ > pid; exec sleep 120"),
        TaskInfo(task_id="plain", agent_id=offer.agent_id, resources="cpus:0.1;mem:16",
                 command="echo $$ > pid; exec sleep 120"),
    ])
    driver = SchedulerDriver(rec, FrameworkInfo(name="systemd-drain"), cluster.master_url)
    driver.start()
    agent_dir = tmp_path / "agent0"
    try:
        wait_until(lambda: rec.states("ignorer") == ["TASK_RUNNING"]
                   and rec.states("plain") == ["TASK_RUNNING"], 20, what="two tasks running")

        def task_pid(task_id: str) -> int:
            def written() -> str | None:
                for path in (agent_dir / "frameworks").glob(f"*/tasks/{task_id}/pid"):
                    return path.read_text().strip() or None
                return None

            return int(wait_until(written, 10, what=f"{task_id}'s pid file"))

        # Restored dispositions: the task without a handler dies of SIGUSR1.
        plain = task_pid("plain")
        assert signal_masks(plain)["SigIgn"] == 0
        os.kill(plain, signal.SIGUSR1)
        wait_until(lambda: rec.states("plain")[-1:] == ["TASK_FAILED"], 15,
                   what="plain to fail of SIGUSR1")
        assert events_of(agent_dir, "plain")[-1]["signal"] == signal.SIGUSR1

        # systemctl kill -s SIGUSR1 (--kill-whom=all): the agent and all it started.
        ignorer = task_pid("ignorer")
        supervisors = {int(e["pid"]) for e in events_of(agent_dir, "ignorer")
                       if e["event"] == "supervising"}
        unit = {agent.pid, *(p.pid for p in psutil.Process(agent.pid).children(True))}
        assert supervisors <= unit and ignorer in unit
        for pid in sorted(unit):
            try:
                os.kill(pid, signal.SIGUSR1)
            except ProcessLookupError:
                pass  # already gone (the drain is quick)
        sent_at = time.monotonic()

        wait_until(lambda: rec.states("ignorer")[-1:] == ["TASK_KILLED"], 15,
                   what="ignorer killed by the drain")
        # Its supervisor lived to record the drain's SIGTERM: had SIGUSR1 killed it,
        # there would be no "exited" event (the agent would only know it vanished).
        ended = [e for e in events_of(agent_dir, "ignorer") if e["event"] == "exited"]
        assert len(ended) == 1 and ended[0]["signal"] == signal.SIGTERM, ended
        final = [s for _, s in rec.updates if s.task_id == "ignorer"][-1]
        assert "supervisor" not in final.message, final
        wait_until(lambda: agent.popen is not None and agent.popen.poll() is not None, 15,
                   what="the agent to exit after draining")
        assert agent.popen is not None and agent.popen.returncode == EXIT_DRAINED
        print(f"drained and exited {time.monotonic() - sent_at:.2f}s after the signal")
        wait_until(lambda: all(gone(pid) for pid in (*supervisors, ignorer)), 10,
                   what="supervisor and task gone")
        states = {t["id"]: t["state"] for t in cluster.state()["tasks"]}
        assert states == {"ignorer": "TASK_KILLED", "plain": "TASK_FAILED"}, states
    finally:
        driver.stop()
        driver.join()
        # What a failed run may have left: supervisors identified by their recorded
        # start time, tasks by their working directory in this test's sandboxes.
        for path in (agent_dir / "meta" / "events").glob("*/*"):
            for event in read_events(path):
                pid = event.get("pid")
                if not isinstance(pid, int):
                    continue
                try:
                    if event["event"] == "supervising":
                        ours = process_alive(pid, event.get("start"))
                    else:
                        ours = (event["event"] == "started" and not gone(pid) and
                                psutil.Process(pid).cwd().startswith(str(agent_dir)))
                    if ours:
                        os.kill(pid, signal.SIGKILL)
                except (psutil.Error, ProcessLookupError):
                    pass
