"""Health checks: the pure policy, validation, and the runners against real endpoints."""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mesos_zmq.agent.health import HealthPolicy, HealthVerdict, check_health_check, run_check
from mesos_zmq.protocol import HealthCheck

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def policy(**kw: object) -> HealthPolicy:
    fields: dict[str, object] = {
        "kind": "TCP",
        "port": 80,
        "delay": 5.0,
        "interval": 10.0,
        "grace_period": 30.0,
        "consecutive_failures": 3,
    }
    fields.update(kw)
    return HealthPolicy(HealthCheck(**fields), started_at=100.0)  # type: ignore[arg-type]


def verdicts(p: HealthPolicy, results: list[tuple[bool, float]]) -> list[tuple[bool | None, bool]]:
    out = []
    for ok, now in results:
        v = p.record(ok, "x", now)
        assert isinstance(v, HealthVerdict)
        out.append((v.healthy, v.kill))
    return out


# --------------------------------------------------------------------------- policy


def test_first_check_after_delay_then_every_interval() -> None:
    p = policy()
    assert p.next_check_at() == 105.0
    p.record(True, "ok", 105.5)
    assert p.next_check_at() == 115.5
    p.record(False, "bad", 116.0)
    assert p.next_check_at() == 126.0


def test_zero_delay_checks_at_launch() -> None:
    assert policy(delay=0.0).next_check_at() == 100.0


def test_failures_inside_grace_period_before_success_are_ignored() -> None:
    p = policy(consecutive_failures=1)
    for now in (105.0, 115.0, 129.9):
        v = p.record(False, "refused", now)
        assert v.healthy is None and not v.kill
        assert "grace period" in v.message
    assert p.next_check_at() == 139.9
    # Past the grace period, the first failure counts, and with a limit of 1 kills.
    v = p.record(False, "refused", 130.0)
    assert v == HealthVerdict(False, True, v.message)
    assert "refused" in v.message
    assert p.next_check_at() is None


def test_failures_inside_grace_period_count_after_a_success() -> None:
    p = policy(consecutive_failures=2)
    assert verdicts(p, [(True, 105.0), (False, 106.0), (False, 107.0)]) == [
        (True, False),
        (False, False),
        (False, True),
    ]


def test_success_then_failures_kill_at_limit() -> None:
    p = policy(grace_period=0.0, consecutive_failures=3)
    got = verdicts(p, [(True, 105.0), (False, 115.0), (False, 125.0), (False, 135.0)])
    assert got == [(True, False), (False, False), (False, False), (False, True)]
    assert p.next_check_at() is None
    # Late results after the kill decision change nothing.
    assert p.record(True, "ok", 140.0).healthy is None
    assert not p.record(False, "bad", 141.0).kill


def test_zero_consecutive_failures_never_kills() -> None:
    p = policy(grace_period=0.0, consecutive_failures=0)
    got = verdicts(p, [(False, 105.0 + 10 * i) for i in range(50)])
    assert all(healthy is False and not kill for healthy, kill in got)
    assert p.next_check_at() == 105.0 + 10 * 49 + 10


def test_success_resets_the_count() -> None:
    p = policy(grace_period=0.0, consecutive_failures=3)
    results = [(False, 105.0), (False, 115.0), (True, 125.0), (False, 135.0), (False, 145.0)]
    got = verdicts(p, results)
    assert not any(kill for _, kill in got)
    assert p.record(False, "bad", 155.0).kill


def test_health_changes_are_reported_once() -> None:
    p = policy(grace_period=0.0, consecutive_failures=0)
    got = verdicts(
        p,
        [(True, 105.0), (True, 115.0), (True, 125.0), (False, 135.0), (True, 145.0), (True, 155.0)],
    )
    assert [healthy for healthy, _ in got] == [True, None, None, False, True, None]


def test_first_success_after_ignored_failures_reports_healthy() -> None:
    p = policy()
    assert verdicts(p, [(False, 105.0), (True, 115.0), (True, 125.0)]) == [
        (None, False),
        (True, False),
        (None, False),
    ]


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"kind": "PING"}, "kind 'PING' is unknown"),
        ({"kind": "COMMAND"}, "needs a non-empty command"),
        ({"kind": "COMMAND", "command": "   "}, "needs a non-empty command"),
        ({"kind": "TCP"}, "port between 1 and 65535"),
        ({"kind": "HTTP", "port": 70000}, "port between 1 and 65535"),
        ({"kind": "HTTP", "port": 80, "path": "health"}, "must start with '/'"),
        ({"kind": "TCP", "port": 80, "delay": -1.0}, "delay must be"),
        ({"kind": "TCP", "port": 80, "grace_period": -0.5}, "grace_period must be"),
        ({"kind": "TCP", "port": 80, "interval": 0.0}, "interval must be"),
        ({"kind": "TCP", "port": 80, "timeout": -2.0}, "timeout must be"),
        ({"kind": "TCP", "port": 80, "timeout": float("nan")}, "timeout must be"),
        ({"kind": "TCP", "port": 80, "consecutive_failures": -1}, "consecutive_failures"),
    ],
)
def test_invalid_health_checks_are_explained(fields: dict[str, object], expected: str) -> None:
    problem = check_health_check(HealthCheck(**fields))  # type: ignore[arg-type]
    assert problem is not None and expected in problem


@pytest.mark.parametrize(
    "hc",
    [
        HealthCheck(kind="COMMAND", command="true"),
        HealthCheck(kind="TCP", port=1),
        HealthCheck(kind="HTTP", port=65535, path="/health", delay=0.0, grace_period=0.0),
        HealthCheck(kind="TCP", port=8080, consecutive_failures=0),
    ],
)
def test_valid_health_checks_pass(hc: HealthCheck) -> None:
    assert check_health_check(hc) is None


def test_run_check_reports_an_invalid_check() -> None:
    ok, message = run_check(HealthCheck(kind="PING"), cwd="/", env=ENV)
    assert not ok and "invalid health check" in message


# --------------------------------------------------------------------------- runners


class _Handler(BaseHTTPRequestHandler):
    status = 200
    paths: list[str] = []

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[tuple[int, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"status": 200, "paths": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_http_check_follows_the_status(http_server: tuple[int, type[_Handler]]) -> None:
    port, handler = http_server
    hc = HealthCheck(kind="HTTP", port=port, path="/health?x=1", timeout=2.0)
    assert run_check(hc, cwd="/", env=ENV) == (True, "HTTP 200")
    handler.status = 500
    assert run_check(hc, cwd="/", env=ENV) == (False, "HTTP 500")
    handler.status = 302
    assert run_check(hc, cwd="/", env=ENV) == (True, "HTTP 302")
    handler.status = 404
    assert run_check(hc, cwd="/", env=ENV) == (False, "HTTP 404")
    assert handler.paths == ["/health?x=1"] * 4


def test_http_check_on_a_closed_port_fails() -> None:
    hc = HealthCheck(kind="HTTP", port=free_port(), timeout=2.0)
    ok, message = run_check(hc, cwd="/", env=ENV)
    assert not ok and message.startswith("connection refused")


def test_http_check_times_out_on_a_silent_server() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        hc = HealthCheck(kind="HTTP", port=listener.getsockname()[1], timeout=0.3)
        start = time.monotonic()
        ok, message = run_check(hc, cwd="/", env=ENV)
        assert time.monotonic() - start < 2.0
    assert not ok and "timed out after 0.3s" in message


def test_tcp_check_on_a_closed_port_fails() -> None:
    ok, message = run_check(
        HealthCheck(kind="TCP", port=free_port(), timeout=2.0), cwd="/", env=ENV
    )
    assert not ok and message.startswith("connection refused")


def test_tcp_check_on_a_listening_socket_succeeds() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        ok, message = run_check(HealthCheck(kind="TCP", port=port, timeout=2.0), cwd="/", env=ENV)
    assert ok and str(port) in message


def test_command_check_exit_codes(tmp_path: Path) -> None:
    def run(command: str) -> tuple[bool, str]:
        hc = HealthCheck(kind="COMMAND", command=command, timeout=5.0)
        return run_check(hc, cwd=str(tmp_path), env={**ENV, "WHO": "task"})

    assert run("true") == (True, "command exited 0")
    assert run("false") == (False, "command exited 1")
    ok, message = run("echo not ready for $WHO in $(pwd) >&2; exit 3")
    assert not ok
    assert message.startswith("command exited 3") and f"not ready for task in {tmp_path}" in message
    ok, message = run("kill -9 $$")
    assert (ok, message) == (False, "command killed by signal 9")


def test_command_check_in_a_missing_directory_fails(tmp_path: Path) -> None:
    hc = HealthCheck(kind="COMMAND", command="true", timeout=5.0)
    ok, message = run_check(hc, cwd=str(tmp_path / "absent"), env=ENV)
    assert not ok and "could not start" in message


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"  # a zombie nobody has reaped yet


def test_command_check_timeout_kills_the_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    hc = HealthCheck(kind="COMMAND", command=f"sleep 5 & echo $! > {pidfile}; sleep 5", timeout=0.3)
    start = time.monotonic()
    ok, message = run_check(hc, cwd=str(tmp_path), env=ENV)
    assert time.monotonic() - start < 2.0
    assert (ok, message) == (False, "command timed out after 0.3s")
    background = int(pidfile.read_text())
    deadline = time.monotonic() + 2.0
    while not _gone(background) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _gone(background)


def test_command_check_does_not_wait_for_background_children(tmp_path: Path) -> None:
    hc = dataclasses.replace(HealthCheck(kind="COMMAND", command="sleep 5 & exit 0"), timeout=3.0)
    start = time.monotonic()
    assert run_check(hc, cwd=str(tmp_path), env=ENV) == (True, "command exited 0")
    assert time.monotonic() - start < 1.0
