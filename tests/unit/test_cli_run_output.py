"""What ``mesos-zmq run`` says (frameworks/execute.py), without a cluster."""

from __future__ import annotations

import io
from typing import Any

from mesos_zmq.frameworks.execute import ExecuteFramework, _Stream, explain_wait
from mesos_zmq.protocol import Offer, TaskStatus
from mesos_zmq.resources import Resources


def agent(host: str, resources: str, used: str = "", reserved: str = "",
          connected: bool = True, drain: str = "") -> dict[str, Any]:
    return {"id": f"id-{host}", "hostname": host, "resources": resources,
            "used_resources": used, "reserved": reserved, "connected": connected,
            "drain": drain}


def need(text: str) -> Resources:
    return Resources.parse(text)


def test_explain_wait_tells_never_from_busy() -> None:
    state = {"agents": [agent("a1", "cpus:4;mem:1024"), agent("a2", "cpus:2;mem:4096")]}
    assert explain_wait(state, need("cpus:8;mem:32")) == \
        "no agent has cpus:8; largest is cpus:4 (a1)"
    assert explain_wait(state, need("cpus:0.1;gpus:1")) == \
        "no agent has gpus (this run needs gpus:1)"
    assert explain_wait(state, need("cpus:4;mem:2048")) == \
        "no single agent has cpus:4;mem:2048 together"
    assert explain_wait(state, need("cpus:1"), ports=2) == "no agent has 2 ports; most is 0 (a1)"
    assert explain_wait(state, need("cpus:1")).startswith("an agent has room")
    busy = {"agents": [agent("a1", "cpus:4;mem:1024", used="cpus:4;mem:32")]}
    assert explain_wait(busy, need("cpus:1")) == \
        "the 1 agent(s) that can run it are busy: waiting for resources to be freed"
    gone = {"agents": [agent("a1", "cpus:4", connected=False), agent("a2", "cpus:4",
                                                                     drain="DRAINED")]}
    assert explain_wait(gone, need("cpus:1")) == "no agent is connected (or all are drained)"


def test_explain_wait_counts_only_what_the_role_may_use() -> None:
    state = {"agents": [agent("a1", "cpus:4;mem:64", reserved="cpus(ops):3")]}
    assert explain_wait(state, need("cpus:2"), role="eng") == \
        "no agent has cpus:2; largest is cpus:1 (a1)"
    assert explain_wait(state, need("cpus:2"), role="ops").startswith("an agent has room")
    static = {"agents": [agent("a1", "cpus:1;cpus(eng):3;mem:64")]}
    assert explain_wait(static, need("cpus:3"), role="*").startswith("no agent has cpus:3")
    assert explain_wait(static, need("cpus:3"), role="eng/ml").startswith("an agent has room")


def test_prefixed_streams_write_whole_lines() -> None:
    out = io.BytesIO()
    stream = _Stream("stdout", out, b"task-1 | ")
    stream.write(b"one\ntw")
    stream.write(b"o\nthree")
    assert out.getvalue() == b"task-1 | one\ntask-1 | two\n"
    stream.close()
    assert out.getvalue().endswith(b"task-1 | three\n") and stream.drained
    raw = io.BytesIO()
    plain = _Stream("stdout", raw)
    plain.write(b"as is, no newline")
    plain.close()
    assert raw.getvalue() == b"as is, no newline"


class Driver:
    """Records what the framework asks of the driver."""

    def __init__(self) -> None:
        self.launched: list[Any] = []

    def launch_tasks(self, offer_ids: list[str], tasks: list[Any],
                     refuse_seconds: float = 5.0) -> None:
        self.launched += tasks

    def decline_offer(self, offer_id: str, refuse_seconds: float = 5.0) -> None:
        pass

    def suppress_offers(self) -> None:
        pass


def framework(instances: int = 1, mem: float = 64) -> tuple[ExecuteFramework, io.BytesIO]:
    progress = io.BytesIO()
    fw = ExecuteFramework("true", instances=instances,
                          resources=Resources.from_scalars({"cpus": 0.1, "mem": mem}),
                          stdout=io.BytesIO(), stderr=io.BytesIO(), progress=progress,
                          clock=lambda: 100.0)
    return fw, progress


def status(task_id: str, state: str, reason: str = "", message: str = "",
           exit_code: int | None = None) -> TaskStatus:
    return TaskStatus(task_id=task_id, framework_id="F1", agent_id="A1", state=state,
                      uuid="u", timestamp=1.0, reason=reason, message=message,
                      exit_code=exit_code)


def lines(progress: io.BytesIO) -> list[str]:
    return progress.getvalue().decode().splitlines()


def test_run_says_where_it_launched_and_why_each_task_ended() -> None:
    fw, progress = framework()
    driver: Any = Driver()
    fw.registered(driver, "F1", {})
    fw.resource_offers(driver, [Offer("O1", "F1", "A1", "host1", "*", "cpus:1;mem:128")])
    task_id = fw.instances[0].task_id
    fw.status_update(driver, status(task_id, "TASK_FAILED", "REASON_CONTAINER_LIMITATION_MEMORY",
                                    "memory limit exceeded: the task was killed by the OOM "
                                    "killer", 137))
    assert lines(progress) == [
        "run: waiting for an offer of cpus:0.1;mem:64 (framework F1)",
        f"run: launched {task_id} on host1 (agent A1)",
        f"run: {task_id} TASK_FAILED: memory limit 64 MB exceeded (exit code 137)",
    ]


def test_end_reasons_in_words() -> None:
    fw, progress = framework(instances=3)
    driver: Any = Driver()
    fw.resource_offers(driver, [Offer("O1", "F1", "A1", "host1", "*", "cpus:1;mem:1024")])
    a, b, c = (inst.task_id for inst in fw.instances)
    fw.status_update(driver, status(a, "TASK_KILLED", "REASON_TASK_KILLED",
                                    "Command terminated with signal SIGTERM", 143))
    fw.status_update(driver, status(b, "TASK_FAILED", "REASON_COMMAND_EXECUTOR_FAILED",
                                    "Command exited with status 3", 3))
    fw.status_update(driver, status(c, "TASK_FINISHED", "", "Command exited with status 0", 0))
    said = lines(progress)
    assert said[0] == f"run: launched task-0..task-2 ({a}..2) on host1 (agent A1)"
    assert said[1:] == ["run: task-0 TASK_KILLED: killed by operator (exit code 143)",
                        "run: task-1 TASK_FAILED: command exited with status 3"]
    fw.report_progress(final=True)
    assert lines(progress)[-1] == "run: 3 tasks: 1 finished, 2 failed"
    assert fw.exit_code() == 143


def test_wait_reasons_are_said_once_and_again_when_they_change() -> None:
    fw, progress = framework()
    big = {"agents": [agent("a1", "cpus:0.05;mem:1024")]}
    fit = {"agents": [agent("a1", "cpus:4;mem:1024", used="cpus:4")]}
    for state in (big, big, big, fit, fit):
        fw.explain_wait(state)
    assert lines(progress) == [
        "run: still waiting: no agent has cpus:0.1; largest is cpus:0.05 (a1)",
        "run: still waiting: the 1 agent(s) that can run it are busy: waiting for resources "
        "to be freed",
    ]


def test_quiet_keeps_only_failures() -> None:
    progress = io.BytesIO()
    fw = ExecuteFramework("true", resources=Resources.parse("cpus:1"), stdout=io.BytesIO(),
                          stderr=io.BytesIO(), progress=progress, quiet=True)
    driver: Any = Driver()
    fw.registered(driver, "F1", {})
    fw.resource_offers(driver, [Offer("O1", "F1", "A1", "h", "*", "cpus:1")])
    task_id = fw.instances[0].task_id
    fw.status_update(driver, status(task_id, "TASK_LOST", "REASON_AGENT_REMOVED", "agent gone"))
    assert lines(progress) == [f"run: {task_id} TASK_LOST: agent gone"]
