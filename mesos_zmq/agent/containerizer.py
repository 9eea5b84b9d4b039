"""Running tasks as real processes: sandboxes, spawning, reaping, signalling.

Each task runs in its own session (process group) so a kill reaches everything it
started, and so that an agent restart under systemd's ``KillMode=process`` leaves it
running. Its stdout and stderr go to files in its sandbox directory.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import structlog

from mesos_zmq.protocol import TaskInfo
from mesos_zmq.resources import Resources

log = structlog.get_logger()

_INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "USER", "LOGNAME", "TZ", "TMPDIR")


@dataclass(slots=True)
class Exited:
    task_id: str
    exit_code: int | None
    signal: int | None


class Containerizer:
    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.pids: dict[int, str] = {}  # pid -> task id
        self.task_pids: dict[str, int] = {}
        self.sandboxes: dict[str, Path] = {}

    def sandbox_path(self, framework_id: str, task_id: str) -> Path:
        return self.work_dir / "frameworks" / framework_id / "tasks" / task_id

    def environment(self, agent_id: str, framework_id: str, task: TaskInfo,
                    sandbox: Path) -> dict[str, str]:
        env = {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        env.update(
            MESOS_TASK_ID=task.task_id,
            MESOS_FRAMEWORK_ID=framework_id,
            MESOS_AGENT_ID=agent_id,
            MESOS_SANDBOX=str(sandbox),
            MESOS_DIRECTORY=str(sandbox),
        )
        try:
            ports = [p for lo, hi in Resources.parse(task.resources).ranges("ports")
                     for p in range(lo, hi + 1)]
        except Exception:
            ports = []
        if ports:
            env["PORTS"] = ",".join(str(p) for p in ports)
            for i, port in enumerate(ports):
                env[f"PORT{i}"] = str(port)
        env.update(task.env)
        return env

    def launch(self, agent_id: str, framework_id: str, task: TaskInfo) -> int:
        """Spawn the task; raises OSError when it cannot be started."""
        sandbox = self.sandbox_path(framework_id, task.task_id)
        sandbox.mkdir(parents=True, exist_ok=True)
        self.sandboxes[task.task_id] = sandbox
        argv = ["/bin/sh", "-c", task.command] if task.shell else list(task.argv)
        env = self.environment(agent_id, framework_id, task, sandbox)
        with open(sandbox / "stdout", "ab") as out, open(sandbox / "stderr", "ab") as err:
            proc = subprocess.Popen(
                argv, cwd=sandbox, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                start_new_session=True, close_fds=True,
            )
        self.pids[proc.pid] = task.task_id
        self.task_pids[task.task_id] = proc.pid
        # Popen keeps a handle only to reap; we reap ourselves with waitpid(-1).
        proc.returncode = 0
        return proc.pid

    def signal(self, task_id: str, signum: int) -> None:
        pid = self.task_pids.get(task_id)
        if pid is None:
            return
        try:
            os.killpg(pid, signum)
        except ProcessLookupError:
            pass
        except PermissionError as exc:
            log.warning("cannot signal task", task_id=task_id, error=str(exc))

    def reap(self) -> list[Exited]:
        """Collect every child that has exited (never blocks)."""
        exited: list[Exited] = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            task_id = self.pids.pop(pid, None)
            if task_id is None:
                continue
            self.task_pids.pop(task_id, None)
            if os.WIFSIGNALED(status):
                exited.append(Exited(task_id, None, os.WTERMSIG(status)))
            else:
                exited.append(Exited(task_id, os.waitstatus_to_exitcode(status), None))
        return exited

    def running(self) -> int:
        return len(self.pids)
