"""Keys on a real cluster (issue 12, point 1): the handshake decides who may talk to
the master, clients pin the masters' key, and a refused client says so at once."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

from mesos_zmq.auth.keys import generate, load_public, load_secret
from mesos_zmq.cli.local import any_free_port
from tests.cluster import Cluster, wait_until

NO_KEYS = {"MESOS_ZMQ_KEY": "", "MESOS_ZMQ_MASTER_KEY": ""}


@pytest.fixture
def secure(tmp_path: Path) -> Cluster:
    cluster = Cluster(tmp_path, secure=True)
    try:
        cluster.start_master()
        cluster.start_agent(resources="cpus:2;mem:512;disk:256")
        cluster.wait_agents(1)
        yield cluster  # type: ignore[misc]
    finally:
        cluster.stop()


def test_a_framework_with_its_key_runs_a_task(secure: Cluster, tmp_path: Path) -> None:
    assert secure.keys is not None
    marker = tmp_path / "ran"
    out = secure.cli("run", "--master", secure.master_url, "--quiet", "--",
                     f"echo secret-ok > {marker}; echo hi",
                     env=secure.keys.client_env("framework"))
    assert out.returncode == 0, out.stderr + secure.logs()
    assert marker.read_text().strip() == "secret-ok" and "hi" in out.stdout


def test_a_client_without_an_accepted_key_gets_a_clear_error_at_once(
        secure: Cluster, tmp_path: Path) -> None:
    assert secure.keys is not None
    master_key = str(secure.keys.keys_dir / "master.key")
    generate("stranger", tmp_path / "mine")
    cases = [
        (NO_KEYS, "the master requires keys"),
        ({"MESOS_ZMQ_KEY": str(tmp_path / "mine" / "stranger.key_secret"),
          "MESOS_ZMQ_MASTER_KEY": master_key}, "the master did not accept this key"),
        # the right key, a wrong master key pinned: the handshake cannot complete
        ({**secure.keys.client_env("operator"),
          "MESOS_ZMQ_MASTER_KEY": str(tmp_path / "mine" / "stranger.key")},
         "handshake with the master failed"),
        (secure.keys.client_env("agent"), "may not send get_state"),
    ]
    for env, needle in cases:
        started = time.monotonic()
        out = secure.cli("state", "--master", secure.master_url, env=env)
        took = time.monotonic() - started
        assert out.returncode == 2 and needle in out.stderr, (env, out.stderr)
        assert took < 5.0, f"{needle}: {took:.1f}s (the connect timeout is 5 s)"
    ok = secure.cli("state", "--master", secure.master_url,
                    env=secure.keys.client_env("operator"))
    assert ok.returncode == 0, ok.stderr
    # a framework (run, through the SDK) stops at once too: no waiting for a subscription
    for env, needle in ((NO_KEYS, "the master requires keys"),
                        (secure.keys.client_env("agent"), "may not send subscribe")):
        started = time.monotonic()
        out = secure.cli("run", "--master", secure.master_url, "--", "true", env=env)
        assert out.returncode != 0 and needle in out.stderr, out.stderr
        assert time.monotonic() - started < 10.0


def test_a_fake_master_cannot_steer_a_pinned_agent(secure: Cluster, tmp_path: Path) -> None:
    """A forged leader (or a process on the master's address) without the masters'
    secret never completes a handshake with an agent that pins the real key."""
    generate("fake", tmp_path / "fake")
    fake = load_secret(tmp_path / "fake" / "fake.key_secret")
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.CURVE_SERVER, 1)
    router.setsockopt(zmq.CURVE_SECRETKEY, fake.secret)
    router.setsockopt(zmq.CURVE_PUBLICKEY, fake.public)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    try:
        secure.start_agent(index=7, extra=["--master", f"tcp://127.0.0.1:{port}"])
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            assert not router.poll(100), "the fake master heard from a pinned agent"
        wait_until(lambda: "cannot register" in (tmp_path / "agent7.log").read_text(),
                   10.0, what="the agent to say why it cannot register")
    finally:
        router.close(linger=0)
        context.term()


def test_the_master_refuses_to_listen_in_the_open_without_keys(tmp_path: Path) -> None:
    host = socket.gethostbyname(socket.gethostname())
    ip = "0.0.0.0" if host.startswith("127.") else host
    port = any_free_port()
    args = [sys.executable, "-m", "mesos_zmq", "master", "--ip", ip, "--port", str(port),
            "--work-dir", str(tmp_path / "m"), "--registry", "in_memory"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=30,
                         stdin=subprocess.DEVNULL)
    assert out.returncode != 0 and "without keys" in out.stderr, out.stderr
    assert "--insecure" in out.stderr
    generate("m", tmp_path / "k")
    out = subprocess.run([*args, "--key", str(tmp_path / "k" / "m.key_secret")],
                         capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert out.returncode != 0 and "--credentials" in out.stderr, out.stderr
    assert load_public(tmp_path / "k" / "m.key")  # the pair itself was fine
