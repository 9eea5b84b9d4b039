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
