"""Large reads leave the loop (issue 13): with ``defer_reads`` the core admits a state
read (authentication, kind, rate, validation) and hands it over instead of building it;
the answer built later from an image of the core is the one it would have sent."""

from __future__ import annotations

from mesos_zmq.master.core import DeferredRead
from mesos_zmq.protocol import Error, GetState, GetTasks, State, Tasks
from tests.unit.test_master_core import Harness, launch


def test_a_state_read_is_handed_over_and_answered_the_same_from_an_image() -> None:
    inline = Harness()
    deferred = Harness(defer_reads=True)
    for h in (inline, deferred):
        launch(h)
    (expected,) = inline.send(b"cli", GetState(), 2.0, rid="r")
    ready = deferred.core.handle(b"cli", GetState(), "r", 2.0)
    assert ready and not ready.messages and not ready.records
    (read,) = ready.reads
    assert read == DeferredRead(b"cli", GetState(), "r", None)
    answer = deferred.core.answer_read(read, 2.0)
    assert not answer.reads and not answer.records  # built, not handed over again
    ((peer, msg, rid),) = answer.messages
    assert peer == b"cli" and rid == "r" and isinstance(msg, State)
    assert isinstance(expected, State)
    assert msg.state["tasks"] == expected.state["tasks"]
    assert msg.state["agents"] == expected.state["agents"]
    # task pages go the same way
    (page_read,) = deferred.core.handle(b"cli", GetTasks(limit=5), "p", 2.0).reads
    ((_, page, _),) = deferred.core.answer_read(page_read, 2.0).messages
    assert isinstance(page, Tasks) and page.total == 1


def test_a_refused_read_is_answered_at_once_not_handed_over() -> None:
    h = Harness(defer_reads=True)
    ready = h.core.handle(b"cli", GetState(tasks_limit=-1), "r", 1.0)
    assert not ready.reads
    ((_, reply, _),) = ready.messages
    assert isinstance(reply, Error) and reply.code == "invalid"


def test_a_recovered_core_counts_running_tasks_as_task_by_task_would() -> None:
    """A new leader counts its tasks in the allocator once per framework, role and
    agent (2.4 s of a takeover at 100,000 tasks went to one call per task): what it
    holds must be what adding them one by one gives."""
    from mesos_zmq.master.core import MasterCore
    from mesos_zmq.protocol import Accept
    from mesos_zmq.resources import Resources
    from tests.unit.test_master_core import FW, task

    h = Harness()
    agent_id, fid, _ = launch(h, resources="cpus:0.5;mem:64", task_id="t0")
    second = h.register_agent(peer=b"agent-2", resources="cpus:8;mem:8192")
    for offer in h.offers_to(FW, 1.0):
        tasks = [task(f"u{i}", offer.agent_id, "cpus:0.25;mem:32") for i in range(3)]
        tasks.append(task(f"w{offer.agent_id}", offer.agent_id, "cpus:1;mem:100"))
        h.send(FW, Accept(framework_id=fid, offer_ids=[offer.offer_id],
                          tasks=tasks,
                          refuse_seconds=0), 1.0)
    assert len(h.core.state.tasks) > 4
    recovered = MasterCore(h.core.config, lambda: "x", h.core.state, now=2.0)
    for aid, total in ((agent_id, "cpus:4;mem:4096"), (second, "cpus:8;mem:8192")):
        used = Resources.empty()
        for rec in h.core.state.active_tasks_on(aid):
            used = used + Resources.parse(rec.task.resources)
        assert recovered.allocator.free(aid) == Resources.parse(total) - used
    shares = recovered.allocator.role_shares()
    assert shares and all(share > 0 for share in shares.values())
