"""The launcher: a small helper process that forks task supervisors for the agent.

Why a separate process: a fork costs in proportion to the size of the process that
forks, and the agent is big (ZeroMQ, ZooKeeper client, logging) and threaded (forking a
threaded process is fragile). The launcher is exec'd fresh by the agent, imports little
(the supervisor and the isolator), and forks one supervisor per task on request, so a
launch costs the agent one checkpoint write and one message.

Protocol, over a ``SOCK_SEQPACKET`` socket pair (one JSON object per packet):

* agent → launcher ``{"key": events, "spec": …, "container_id": …, "limits": …}``
* launcher → agent ``{"started": events, "pid": n}`` once the supervisor is forked,
  ``{"reaped": events, "pid": n}`` when a supervisor exited (the agent then reads its
  events: a supervisor that recorded no end was killed).

When the agent goes away the socket closes and the launcher exits at once; the
supervisors, in sessions of their own, keep their tasks running.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import sys
import time

from mesos_zmq.agent.isolation import Isolator, Limits, detect_isolator
from mesos_zmq.agent.supervisor import SupervisorSpec, run_forked

MAX_PACKET = 1 << 20
#: seconds the launcher outlives its agent, for supervisors that are about to end
LINGER = 3.0


def encode_request(key: str, spec: SupervisorSpec, container_id: str, limits: Limits) -> bytes:
    from mesos_zmq.protocol import to_plain  # the agent's side: already loaded there

    body = {
        "key": key,
        "container_id": container_id,
        "limits": {"cpus": limits.cpus, "cpu_hard_limit": limits.cpu_hard_limit,
                   "mem_bytes": limits.mem_bytes, "pids_max": limits.pids_max},
        "spec": {
            "events": spec.events, "sandbox": spec.sandbox, "argv": spec.argv,
            "env": spec.env, "kill_grace": spec.kill_grace,
            "notify_name": spec.notify_name.hex(),
            "health_check": to_plain(spec.health_check) if spec.health_check else None,
        },
    }
    return json.dumps(body).encode()


def _decode_request(data: bytes) -> tuple[str, SupervisorSpec, str, Limits]:
    body = json.loads(data)
    raw = body["spec"]
    check = None
    if raw.get("health_check"):
        # Loaded on the first task with a health check only: the smaller the launcher,
        # the cheaper each fork of a supervisor.
        from mesos_zmq.protocol import HealthCheck, from_plain

        check = from_plain(HealthCheck, raw["health_check"])
    spec = SupervisorSpec(
        events=raw["events"], sandbox=raw["sandbox"], argv=list(raw["argv"]),
        env=dict(raw["env"]), kill_grace=float(raw["kill_grace"]),
        notify_name=bytes.fromhex(raw["notify_name"]), health_check=check,
    )
    lim = body["limits"]
    limits = Limits(cpus=lim["cpus"], cpu_hard_limit=bool(lim["cpu_hard_limit"]),
                    mem_bytes=lim["mem_bytes"], pids_max=lim["pids_max"])
    return str(body["key"]), spec, str(body["container_id"]), limits


def _launch(sock: socket.socket, isolator: Isolator, data: bytes,
            children: dict[int, tuple[str, str]]) -> None:
    try:
        key, spec, container_id, limits = _decode_request(data)
    except (ValueError, KeyError, TypeError) as exc:
        sock.send(json.dumps({"error": f"bad launch request: {exc}"}).encode())
        return

    def prepare() -> list[str]:
        os.makedirs(spec.sandbox, exist_ok=True)
        return isolator.prepare(container_id, limits)

    def finish() -> bool:
        return isolator.oom_killed(container_id)

    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        run_forked(spec, prepare, finish)
    children[pid] = (key, container_id)
    sock.send(json.dumps({"started": key, "pid": pid}).encode())


def _reap(sock: socket.socket, children: dict[int, tuple[str, str]],
          spent: list[str]) -> None:
    """Collect ended supervisors; their cgroups go on ``spent`` for ``_release``."""
    while children:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        child = children.pop(pid, None)
        if child is None:
            continue
        key, container_id = child
        spent.append(container_id)
        sock.send(json.dumps({"reaped": key, "pid": pid}).encode())


def _release(isolator: Isolator, spent: list[str], count: int) -> None:
    """Destroy the cgroups of ended supervisors (and anything their task left running).

    Done when no launch is waiting, a few at a time: destroying (and emptying a memory
    cgroup first, so it does not linger) is slower than launching, and a burst of
    launches should not queue behind it."""
    for _ in range(min(count, len(spent))):
        container_id = spent.pop(0)
        try:
            isolator.destroy(container_id)
        except Exception as exc:
            print(f"launcher: cannot destroy container {container_id}: {exc}",
                  file=sys.stderr)


def _linger(sock: socket.socket, isolator: Isolator, children: dict[int, tuple[str, str]],
            spent: list[str]) -> None:
    """The agent is gone. Supervisors that are ending anyway (a draining agent killed
    their tasks) get a few seconds to do so, so their cgroups are released rather than
    left for the next agent; the rest keep running and are not waited for."""
    deadline = time.monotonic() + LINGER
    while True:
        with contextlib.suppress(OSError):
            _reap(sock, children, spent)
        _release(isolator, spent, len(spent))
        if not children or time.monotonic() >= deadline:
            return
        time.sleep(0.05)


def serve(fd: int, isolation: str, cgroups_root: str) -> int:
    sock = socket.socket(fileno=fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the agent decides when we stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # `systemctl kill -s SIGUSR1` (a drain) reaches every process of the agent's unit:
    # the launcher must outlive it. Caught, not ignored, so nothing forked inherits it.
    for stray in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP):
        signal.signal(stray, lambda signum, frame: None)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    isolator = detect_isolator(cgroups_root, isolation)
    children: dict[int, tuple[str, str]] = {}
    spent: list[str] = []
    while True:
        try:
            ready, _, _ = select.select([sock.fileno(), wake_r], [], [],
                                        0.0 if spent else 1.0)
        except InterruptedError:
            ready = []
        if wake_r in ready:
            os.read(wake_r, 4096)
        if sock.fileno() in ready:
            data = sock.recv(MAX_PACKET)
            if not data:
                _linger(sock, isolator, children, spent)
                return 0  # the agent is gone
            _launch(sock, isolator, data, children)
        _reap(sock, children, spent)
        if sock.fileno() not in ready:
            _release(isolator, spent, 4)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m mesos_zmq.agent.launcher FD ISOLATION CGROUPS_ROOT",
              file=sys.stderr)
        return 2
    try:
        return serve(int(args[0]), args[1], args[2])
    except (BrokenPipeError, ConnectionResetError):
        return 0


if __name__ == "__main__":
    sys.exit(main())
