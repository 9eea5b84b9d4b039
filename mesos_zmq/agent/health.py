"""Task health checks: blocking runners that probe a task on 127.0.0.1.

Run by the task's supervisor (:mod:`mesos_zmq.agent.supervisor`), which asks a
:class:`~mesos_zmq.agent.health_policy.HealthPolicy` when the next check is due, runs it
with :func:`run_check` (it blocks for up to ``timeout`` seconds) and feeds the outcome
back. The runners use only the standard library, never raise for a failing check, and
return ``(ok, message)``. A command check runs as the task's user when the task has
one (``run_as``): it is the task's code, and must not run with the agent's rights.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import tempfile
import time
from typing import TYPE_CHECKING

from mesos_zmq.agent.health_policy import (
    COMMAND,
    HTTP,
    KINDS,
    TCP,
    HealthPolicy,
    HealthVerdict,
    check_health_check,
)
from mesos_zmq.protocol import HealthCheck

if TYPE_CHECKING:
    from mesos_zmq.agent.run_as import RunAs

__all__ = ["COMMAND", "HTTP", "KINDS", "TCP", "HealthPolicy", "HealthVerdict",
           "check_health_check", "run_check"]

_HOST = "127.0.0.1"
_OUTPUT_TAIL = 200  # characters of a failing command's output kept in the message

# --------------------------------------------------------------------------- runners


def run_check(hc: HealthCheck, *, cwd: str, env: dict[str, str],
              run_as: RunAs | None = None) -> tuple[bool, str]:
    """Run ``hc`` once, blocking for at most about ``hc.timeout`` seconds; a command
    as ``run_as`` when given (the task's user).

    Never raises for a failing or invalid check; returns ``(ok, message)``.
    """
    problem = check_health_check(hc)
    if problem is not None:
        return False, f"invalid health check: {problem}"
    if hc.kind == COMMAND:
        return _run_command(hc, cwd=cwd, env=env, run_as=run_as)
    if hc.kind == TCP:
        return _run_tcp(hc)
    return _run_http(hc)


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _tail(output: bytes) -> str:
    text = output.decode("utf-8", "replace").strip()
    if len(text) > _OUTPUT_TAIL:
        text = "..." + text[-_OUTPUT_TAIL:]
    return text


def _run_command(hc: HealthCheck, *, cwd: str, env: dict[str, str],
                 run_as: RunAs | None = None) -> tuple[bool, str]:
    # Output goes to a file rather than a pipe so that a background process that keeps
    # the descriptor open cannot hold us past the shell's exit. The file is unlinked at
    # once (O_TMPFILE where possible): the command gets only the descriptor.
    uid, gid, groups = run_as.ids() if run_as is not None else (None, None, None)
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", hc.command],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=uid,
                group=gid,
                extra_groups=groups,
            )
        except OSError as e:
            return False, f"command could not start: {e}"
        try:
            code = proc.wait(timeout=hc.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait()
            return False, f"command timed out after {_seconds(hc.timeout)}"
        # The shell is reaped, but the group id stays reserved while any member lives:
        # kill whatever the check left running in the background.
        _kill_group(proc.pid)
        out.seek(0)
        output = _tail(out.read(64 * 1024))
    if code == 0:
        return True, "command exited 0"
    what = f"command killed by signal {-code}" if code < 0 else f"command exited {code}"
    return False, f"{what}: {output}" if output else what


def _connect_error(e: OSError, port: int, timeout: float) -> str:
    where = f"{_HOST}:{port}"
    if isinstance(e, ConnectionRefusedError):
        return f"connection refused on {where}"
    if isinstance(e, TimeoutError):
        return f"timed out after {_seconds(timeout)} on {where}"
    return f"connection to {where} failed: {e}"


def _run_tcp(hc: HealthCheck) -> tuple[bool, str]:
    try:
        with socket.create_connection((_HOST, hc.port), timeout=hc.timeout):
            pass
    except OSError as e:
        return False, _connect_error(e, hc.port, hc.timeout)
    return True, f"connected to {_HOST}:{hc.port}"


def _run_http(hc: HealthCheck) -> tuple[bool, str]:
    deadline = time.monotonic() + hc.timeout
    conn = http.client.HTTPConnection(_HOST, hc.port, timeout=hc.timeout)
    try:
        conn.request("GET", hc.path, headers={"User-Agent": "mesos-zmq-health-check"})
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        if conn.sock is not None:
            conn.sock.settimeout(remaining)
        response = conn.getresponse()
        status = response.status
    except OSError as e:
        return False, _connect_error(e, hc.port, hc.timeout)
    except http.client.HTTPException as e:
        return False, f"bad HTTP response from {_HOST}:{hc.port}: {e!r}"
    finally:
        conn.close()
    message = f"HTTP {status}"
    return 200 <= status <= 399, message
