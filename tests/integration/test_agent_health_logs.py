"""Issue 5, acceptance 3 (HTTP health checks) and 6 (logs through the agent, no escape)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from mesos_zmq.protocol import FrameworkInfo, HealthCheck, Offer, TaskInfo
from mesos_zmq.scheduler import SchedulerDriver
from tests.cluster import Cluster, wait_until
from tests.integration.recording import Recorder

# Serves 200 on /health until a file named 'sick' appears in its sandbox, then 500.
SERVER = """
import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 500 if os.path.exists('sick') else 200
        self.send_response(code); self.end_headers(); self.wfile.write(b'ok')
    def log_message(self, *a):
        sys.stderr.write('check %s\\n' % (a[2],)); sys.stderr.flush()
http.server.HTTPServer(('127.0.0.1', int(os.environ['PORT0'])), H).serve_forever()
"""


@pytest.mark.integration
def test_failing_http_health_check_kills_the_task(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_master()
    cluster.start_agent(resources="cpus:2;mem:1024;ports:[31500-31510]")
    cluster.wait_agents(1)
    (tmp_path / "server.py").write_text(SERVER)
    rec = Recorder()

    def make(offer: Offer) -> list[TaskInfo]:
        agent_id = offer.agent_id
        check = HealthCheck(kind="HTTP", port=31505, path="/health", delay=0.0,
                            interval=1.0, timeout=1.0, grace_period=5.0,
                            consecutive_failures=3)
        return [TaskInfo(task_id="web", agent_id=agent_id,
                         resources="cpus:0.1;mem:64;ports:[31505-31505]",
                         command=f"exec {sys.executable} {tmp_path / 'server.py'}",
                         health_check=check, kill_grace_period=1.0)]

    rec.want(lambda o: True, make)
    driver = SchedulerDriver(rec, FrameworkInfo(name="health"), cluster.master_url)
    driver.start()
    try:
        wait_until(lambda: any(s.task_id == "web" and s.healthy is True
                               for _, s in rec.updates), 20, what="healthy")
        time.sleep(1.0)
        assert rec.states("web")[-1] == "TASK_RUNNING"  # stays up while healthy
        sandbox = next((tmp_path / "agent0" / "frameworks").glob("*/tasks/web"))
        sick_at = time.monotonic()
        (sandbox / "sick").touch()
        wait_until(lambda: rec.states("web")[-1:] == ["TASK_KILLED"], 15, what="web killed")
        print(f"killed {time.monotonic() - sick_at:.2f}s after the check started failing "
              "(3 failures x 1 s interval)")
        with rec.lock:
            web = [s for _, s in rec.updates if s.task_id == "web"]
        assert [s.healthy for s in web if s.state == "TASK_RUNNING"][-2:] == [True, False]
        final = web[-1]
        assert final.healthy is False
        assert final.reason == "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
        assert "HTTP 500" in final.message
        stderr = (sandbox / "stderr").read_text()
        assert stderr.count("check 500") >= 3
    finally:
        driver.stop()
        driver.join()


@pytest.mark.integration
def test_logs_reads_task_files_and_refuses_to_leave_the_sandbox(cluster: Cluster,
                                                                tmp_path: Path) -> None:
    cluster.start_master()
    cluster.start_agent(resources="cpus:2;mem:1024")
    cluster.wait_agents(1)
    secret = tmp_path / "agent0" / "meta" / "secret"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text("do not read me\n")
    rec = Recorder()
    rec.want(lambda o: True, lambda offer: [TaskInfo(
        task_id="chatty", agent_id=offer.agent_id, resources="cpus:0.1;mem:32",
        command=f"echo to-out; echo to-err >&2; ln -s {secret} link; "
                "for i in 1 2 3; do echo line $i; sleep 0.3; done")])
    driver = SchedulerDriver(rec, FrameworkInfo(name="logs"), cluster.master_url)
    driver.start()
    url = cluster.master_url
    try:
        wait_until(lambda: rec.states("chatty")[-1:] == ["TASK_RUNNING"], 15, what="running")
        follow = cluster.cli("logs", "--master", url, "--follow", "--interval", "0.1",
                             "chatty", timeout=30)
        assert follow.returncode == 0, follow.stderr
        assert follow.stdout.splitlines() == ["to-out", "line 1", "line 2", "line 3"]
        err = cluster.cli("logs", "--master", url, "--stderr", "chatty")
        assert err.stdout == "to-err\n"
        for bad in ("../../../../meta/secret", "/etc/passwd", "link", "a/../../stdout"):
            out = cluster.cli("logs", "--master", url, "--path", bad, "chatty")
            assert out.returncode == 2, (bad, out)
            assert "do not read me" not in out.stdout
            assert "sandbox" in out.stderr or "'..'" in out.stderr, out.stderr
            print(f"logs --path {bad!r}: {out.stderr.strip()}")
        missing = cluster.cli("logs", "--master", url, "no-such-task")
        assert missing.returncode == 2 and "no task" in missing.stderr
    finally:
        driver.stop()
        driver.join()
