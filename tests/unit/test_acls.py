"""Authorization by ACLs in the shape of Mesos's --acls (issue 12, point 3)."""

from __future__ import annotations

from typing import Any

import pytest

from mesos_zmq.auth.acls import Acls
from mesos_zmq.auth.principal import Principal
from mesos_zmq.errors import AuthError
from mesos_zmq.protocol import (
    Error,
    FrameworkInfo,
    GetState,
    OperatorKill,
    ReadFile,
    RegisterAgent,
    SetQuota,
    SetWeights,
    State,
    Subscribe,
    Subscribed,
)
from tests.unit.test_master_core import Harness, task
from tests.unit.test_master_principals import send

ANALYTICS = Principal("analytics", "framework")
OTHER = Principal("other", "framework")
ALICE = Principal("alice", "operator")
BOB = Principal("bob", "operator")
AGENT = Principal("agent", "agent")

RULES = {
    "permissive": False,
    "register_frameworks": [
        {"principals": {"values": ["analytics"]}, "roles": {"values": ["analytics"]}},
        {"principals": {"values": ["other"]}, "roles": {"type": "ANY"}},
    ],
    "run_tasks": [{"principals": {"values": ["analytics", "other"]},
                   "users": {"values": ["root"]}}],
    "update_weights": [{"principals": {"values": ["alice"]}, "roles": {"type": "ANY"}}],
    "update_quotas": [{"principals": {"values": ["alice"]}, "roles": {"values": ["eng"]}}],
    "view_frameworks": [{"principals": {"values": ["alice"]}, "framework_principals": {
        "type": "ANY"}}],
    "view_tasks": [
        {"principals": {"values": ["bob"]}, "framework_principals": {"type": "NONE"}},
        {"principals": {"type": "ANY"}, "framework_principals": {"values": ["analytics"]}},
    ],
    "kill_tasks": [{"principals": {"values": ["alice"]}, "framework_principals": {
        "values": ["analytics"]}}],
    "access_sandboxes": [{"principals": {"type": "ANY"}, "framework_principals": {
        "values": ["analytics"]}}],
}


def test_the_first_rule_that_applies_decides_and_none_denies() -> None:
    acls = Acls.from_json(RULES)
    assert acls.allows("register_frameworks", "analytics", "analytics")
    assert not acls.allows("register_frameworks", "analytics", "prod")  # not permissive
    assert acls.allows("register_frameworks", "other", "prod")
    assert not acls.allows("view_tasks", "bob", "analytics")  # NONE wins for bob
    assert acls.allows("view_tasks", "alice", "analytics")
    assert Acls.from_json({}).allows("update_quotas", "anyone", "x")  # permissive default


@pytest.mark.parametrize("data,needle", [
    ({"register_framework": []}, "unknown action 'register_framework'"),
    ({"permissive": "no"}, "true or false"),
    ({"run_tasks": [{"principals": {"type": "ANY"}}]}, 'exactly "principals" and "users"'),
    ({"run_tasks": [{"principals": {"type": "SOME"}, "users": {"type": "ANY"}}]},
     "type of ANY or NONE"),
    ({"run_tasks": [{"principals": {"values": [1]}, "users": {"type": "ANY"}}]}, "values"),
])
def test_a_bad_acl_file_is_refused_with_the_reason(data: dict[str, Any], needle: str) -> None:
    with pytest.raises(AuthError, match=needle):
        Acls.from_json(data)


def harness() -> Harness:
    return Harness(acls=Acls.from_json(RULES))


def subscribe(h: Harness, peer: bytes, who: Principal, role: str) -> Any:
    (reply, *_) = send(h, peer, Subscribe(framework=FrameworkInfo(name="f", roles=[role])),
                       who)
    return reply


def test_frameworks_register_only_in_roles_the_acls_allow() -> None:
    h = harness()
    refused = subscribe(h, b"a", ANALYTICS, "prod")
    assert isinstance(refused, Error) and refused.code == "unauthorized"
    assert "register frameworks" in refused.message and "'prod'" in refused.message
    assert not h.core.state.frameworks
    assert isinstance(subscribe(h, b"a", ANALYTICS, "analytics"), Subscribed)


def test_operator_actions_follow_the_acls() -> None:
    h = harness()
    (no,) = send(h, b"b", SetWeights(weights={"eng": 2.0}), BOB)
    assert isinstance(no, Error) and no.code == "unauthorized"
    (no,) = send(h, b"a", SetQuota(role="ops", guarantee="cpus:0.1", force=True), ALICE)
    assert isinstance(no, Error) and no.code == "unauthorized"
    assert h.core.state.weights == {} and h.core.state.quotas == {}
    (yes,) = send(h, b"a", SetQuota(role="eng", guarantee="cpus:0.1", force=True), ALICE)
    assert not isinstance(yes, Error)


def test_state_shows_what_the_reader_may_see_and_kills_and_reads_are_checked() -> None:
    h = harness()
    (reg,) = send(h, b"ag", RegisterAgent(hostname="h", resources="cpus:4;mem:1024"), AGENT)
    fids = {}
    for who, role, peer in ((ANALYTICS, "analytics", b"fa"), (OTHER, "other", b"fo")):
        fids[who.name] = subscribe(h, peer, who, role).framework_id
    for when, (who, peer, tid) in enumerate(((ANALYTICS, b"fa", "ta"), (OTHER, b"fo", "to"))):
        offers = [m for p, m, _ in h.tick(5.0 * (when + 1))
                  if p == peer and hasattr(m, "offers")]
        offer = offers[0].offers[0]
        from mesos_zmq.protocol import Accept

        out = send(h, peer, Accept(framework_id=fids[who.name], offer_ids=[offer.offer_id],
                                   tasks=[task(tid, reg.agent_id, "cpus:1;mem:64")]), who)
        assert out == [], out
    assert {t.task_id for t in h.core.state.tasks.values()} == {"ta", "to"}

    def seen(who: Principal) -> tuple[set[str], set[str]]:
        (state,) = send(h, b"reader", GetState(), who)
        assert isinstance(state, State)
        return ({f["id"] for f in state.state["frameworks"]},
                {t["id"] for t in state.state["tasks"]})

    assert seen(ALICE) == (set(fids.values()), {"ta"})
    assert seen(BOB) == (set(), set())
    # what bob may not see does not show through the agents' figures or the roles
    (state,) = send(h, b"reader", GetState(), BOB)
    (agent,) = state.state["agents"]
    assert agent["active_tasks"] == 0 and agent["used_resources"] == ""
    assert [r["role"] for r in state.state["roles"]] == []
    # alice may kill analytics' task, not other's
    (no,) = send(h, b"a", OperatorKill(task_id="to"), ALICE)
    assert isinstance(no, Error) and no.code == "unauthorized"
    (yes,) = send(h, b"a", OperatorKill(task_id="ta"), ALICE)
    assert not isinstance(yes, Error)
    # sandboxes: other's are closed to everyone; a framework reads only its own
    (no,) = send(h, b"b", ReadFile(agent_id="", task_id="to", path="stdout"), BOB)
    assert isinstance(no, Error) and no.code == "unauthorized"
    (no,) = send(h, b"fo", ReadFile(agent_id="", task_id="ta", path="stdout"), OTHER)
    assert isinstance(no, Error) and "its own" in no.message
    assert send(h, b"b", ReadFile(agent_id="", task_id="ta", path="stdout"), BOB) == []  # forwarded


def test_tasks_run_as_root_only_where_a_rule_names_root() -> None:
    from dataclasses import replace

    from mesos_zmq.protocol import Accept, Offers, StatusUpdate

    rules = {"run_tasks": [
        {"principals": {"values": ["analytics"]}, "users": {"values": ["root"]}}]}
    for who, expected in ((ANALYTICS, {"": True, "root": True, "nobody": True}),
                          (OTHER, {"": False, "root": False, "nobody": True})):
        h = Harness(acls=Acls.from_json(rules))
        (reg,) = send(h, b"ag", RegisterAgent(hostname="h", resources="cpus:4;mem:1024"),
                      AGENT)
        (sub, *_) = send(h, b"f", Subscribe(framework=FrameworkInfo(name="f")), who)
        launched = {}
        for n, user in enumerate(("", "root", "nobody")):
            now = 10.0 * (n + 1)
            (offers,) = [m for p, m, _ in h.tick(now) if p == b"f" and isinstance(m, Offers)]
            info = replace(task(f"t{n}", reg.agent_id, "cpus:0.1;mem:8"), user=user)
            accept = Accept(framework_id=sub.framework_id, refuse_seconds=0,
                            offer_ids=[offers.offers[0].offer_id], tasks=[info])
            out = [m for p, m, _ in h._apply(h.core.handle(b"f", accept, f"r{n}", now, who))
                   if p == b"f"]
            launched[user] = not [m for m in out if isinstance(m, StatusUpdate)
                                  and m.status.state == "TASK_ERROR"]
        # permissive: any user but root; root (or no user) only for the principal named
        assert launched == expected, who
        users = {rec.task_id: rec.task.user for rec in h.core.state.tasks.values()}
        assert users.get("t2") == "nobody"  # the agent gets the user to run as


def test_an_operator_tears_down_a_framework_the_acls_let_it() -> None:
    from mesos_zmq.protocol import OperatorReply, OperatorTeardown

    h = Harness(acls=Acls.from_json({"teardown_frameworks": [
        {"principals": {"values": ["alice"]}, "framework_principals": {
            "values": ["analytics"]}},
        {"principals": {"type": "ANY"}, "framework_principals": {"type": "NONE"}}]}))
    mine = subscribe(h, b"fa", ANALYTICS, "analytics").framework_id
    theirs = subscribe(h, b"fo", OTHER, "other").framework_id
    (no,) = send(h, b"b", OperatorTeardown(framework_id=mine), BOB)
    assert isinstance(no, Error) and no.code == "unauthorized"
    (no,) = send(h, b"a", OperatorTeardown(framework_id=theirs), ALICE)
    assert isinstance(no, Error) and no.code == "unauthorized"
    (no,) = send(h, b"fa", OperatorTeardown(framework_id=theirs), ANALYTICS)
    assert isinstance(no, Error) and "may not send operator_teardown" in no.message
    (yes,) = send(h, b"a", OperatorTeardown(framework_id=mine), ALICE)
    assert isinstance(yes, OperatorReply) and "torn down" in yes.message
    assert set(h.core.state.frameworks) == {theirs}
    assert mine in h.core.state.removed_frameworks
    again = subscribe(h, b"fa2", ANALYTICS, "analytics")
    assert isinstance(again, Subscribed)  # a new framework; the old id stays removed
    (gone,) = send(h, b"a", OperatorTeardown(framework_id="nope"), ALICE)
    assert isinstance(gone, Error) and gone.code == "invalid"


def test_reservations_inside_an_accept_follow_the_acls() -> None:
    from mesos_zmq.protocol import Accept, Offers, Operation

    h = Harness(acls=Acls.from_json({"reserve_resources": [
        {"principals": {"type": "ANY"}, "roles": {"type": "NONE"}}]}))
    (_reg,) = send(h, b"ag", RegisterAgent(hostname="h", resources="cpus:4;mem:1024"), AGENT)
    (sub, *_) = send(h, b"f", Subscribe(framework=FrameworkInfo(name="f", roles=["eng"])),
                     ANALYTICS)
    (offers,) = [m for p, m, _ in h.tick(5.0) if p == b"f" and isinstance(m, Offers)]
    accept = Accept(framework_id=sub.framework_id, offer_ids=[offers.offers[0].offer_id],
                    operations=[Operation(kind="RESERVE", resources="cpus(eng):1")])
    (no, *_) = send(h, b"f", accept, ANALYTICS, now=5.0)
    assert isinstance(no, Error) and "reserve resources" in no.message
    assert not h.core.state.reservations


def test_a_sandbox_the_master_forgot_needs_its_framework_named_with_keys() -> None:
    h = harness()
    (no,) = send(h, b"o", ReadFile(agent_id="some-agent", task_id="gone", path="stdout"),
                 ALICE)
    assert isinstance(no, Error) and "name its framework" in no.message
