"""An agent's re-registration repeated on the connection bound to it (its retry, sent
before the first answer arrived) is answered again and changes nothing; the shell takes
it without validating its task reports (issue 13: after a 10,000-agent failover the new
leader received 31,000 re-registrations)."""

from __future__ import annotations

import msgpack

from mesos_zmq.master.server import MasterConfig, MasterServer
from mesos_zmq.protocol import (
    PROTOCOL_VERSION,
    AgentRegistered,
    Error,
    RegisterAgent,
    ReregisterAgent,
    StatusUpdate,
    TaskReport,
    TaskStatus,
    encode,
    peek_reregistration,
)
from tests.unit.fake_router import turn
from tests.unit.test_master_core import AGENT, Harness, launch


def _reregister(h: Harness, peer: bytes, agent_id: str, reports: list[TaskReport],
                now: float, rid: str = "") -> list[object]:
    return h.send(peer, ReregisterAgent(agent_id=agent_id, hostname="h1",
                                        resources="cpus:4;mem:4096", tasks=reports), now, rid)


def _running(h: Harness) -> tuple[str, str, TaskReport]:
    agent_id, fid, _ = launch(h)
    h.send(AGENT, StatusUpdate(status=TaskStatus(
        task_id="t1", framework_id=fid, agent_id=agent_id, state="TASK_RUNNING",
        uuid="u1", timestamp=0.5)), 0.5)
    rec = h.core.state.task(fid, "t1")
    assert rec is not None
    return agent_id, fid, TaskReport(task=rec.task, framework_id=fid, state="TASK_RUNNING")


def test_a_repeat_on_the_bound_connection_is_answered_again_and_changes_nothing() -> None:
    h = Harness()
    agent_id, fid, report = _running(h)
    (first,) = _reregister(h, b"agent-2", agent_id, [report], 1.0)
    assert isinstance(first, AgentRegistered) and first.reregistered
    records = len(h.log.records)
    sent = len(h.sent)
    # The retry was sent before the task list changed on the agent; what changed since
    # travels as status updates, so the repeat (here without the task) loses nothing.
    (again,) = _reregister(h, b"agent-2", agent_id, [], 1.5, rid="r2")
    assert isinstance(again, AgentRegistered) and again.reregistered
    assert again.agent_id == agent_id
    assert len(h.log.records) == records and len(h.sent) == sent + 1
    rec = h.core.state.task(fid, "t1")
    assert rec is not None and rec.state.value == "TASK_RUNNING"
    assert h.core.counters["repeated_reregistrations"] == 1


def test_the_fast_path_answers_only_a_repeat_as_handle_would() -> None:
    h = Harness()
    agent_id, _fid, report = _running(h)
    core = h.core
    assert core.reregistered_again(b"agent-2", agent_id, "r", 1.0) is None  # not bound
    _reregister(h, b"agent-2", agent_id, [report], 1.0)
    assert core.reregistered_again(b"agent-2", "another-agent", "r", 1.1) is None
    assert core.reregistered_again(b"agent-3", agent_id, "r", 1.1) is None
    assert core.reregistered_again(AGENT, agent_id, "r", 1.1) is None  # rebound: old conn
    ready = core.reregistered_again(b"agent-2", agent_id, "r", 1.2)
    assert ready is not None and not ready.records
    ((peer, reply, rid),) = ready.messages
    assert peer == b"agent-2" and rid == "r" and isinstance(reply, AgentRegistered)
    assert reply == core.handle(b"agent-2", ReregisterAgent(
        agent_id=agent_id, hostname="h1", resources="cpus:4;mem:4096"), "r", 1.3).messages[0][1]


def test_a_reregistration_on_a_new_connection_is_reconciled_in_full() -> None:
    """A restarted agent (or one that reconnected) has a new connection: its report is
    the truth, and a task it no longer has is lost."""
    h = Harness()
    agent_id, _fid, report = _running(h)
    _reregister(h, b"agent-2", agent_id, [report], 1.0)
    _reregister(h, b"agent-3", agent_id, [], 2.0)
    lost = [m for _, m, _ in h.sent
            if isinstance(m, StatusUpdate) and m.status.state == "TASK_LOST"]
    assert lost and lost[-1].status.task_id == "t1"


def test_the_shell_takes_a_repeat_without_decoding_its_reports() -> None:
    server = MasterServer(MasterConfig(registry="in_memory", port=0))
    try:
        turn(server, [
            (b"a", encode(RegisterAgent(hostname="h1", resources="cpus:4;mem:4096"), "r1"))],
            1.0)
        agent_id = server.core.peers[b"a"].id

        def reregistration(reports: object) -> bytes:
            body = {"agent_id": agent_id, "hostname": "h1", "resources": "cpus:4;mem:4096",
                    "tasks": reports}
            frame: bytes = msgpack.packb([PROTOCOL_VERSION, "reregister_agent", "r2", body])
            return frame

        fake = turn(server, [(b"a", reregistration([])),
                             (b"b", reregistration("not a list"))], 2.0)
        replies = dict(fake.sent_messages())
        # The bound connection's repeat is answered as before; nothing else is read
        # from it, so nothing in it can change anything.
        assert isinstance(replies[b"a"], AgentRegistered) and replies[b"a"].agent_id == agent_id
        assert server.core.counters["repeated_reregistrations"] == 1
        # Anyone else's is validated in full.
        assert isinstance(replies[b"b"], Error) and replies[b"b"].code == "bad_field"
    finally:
        server.close()


def test_a_reregistration_is_peeked_as_far_as_its_agent_id_and_nothing_else_is() -> None:
    frame = encode(ReregisterAgent(agent_id="A1", hostname="h", resources="cpus:1"), "r9")
    assert peek_reregistration(frame) == ("r9", "A1")
    # the agent id after a large value, as a hostile or other client may order it
    body = {"tasks": [{"x": "y" * 1000}] * 50, "hostname": "h", "agent_id": "A2"}
    assert peek_reregistration(msgpack.packb(
        [PROTOCOL_VERSION, "reregister_agent", "", body])) == ("", "A2")
    assert peek_reregistration(encode(RegisterAgent(hostname="h", resources="cpus:1"))) is None
    assert peek_reregistration(frame[:-3]) is None  # cut short: the full decode says why
    for bad in ({"agent_id": 5}, {"hostname": "h"}, ["not", "a", "map"]):
        assert peek_reregistration(msgpack.packb(
            [PROTOCOL_VERSION, "reregister_agent", "", bad])) is None
    assert peek_reregistration(msgpack.packb(
        [PROTOCOL_VERSION, "reregister_agent", 7, {"agent_id": "A1"}])) is None
    assert peek_reregistration(b"") is None and peek_reregistration(b"\x94") is None
