"""Issue 10, the master's side: refused accepts and declines hold nothing, frameworks
subscribe suppressed (and stay so across a master failover), unknown ids are told."""

from __future__ import annotations

from mesos_zmq.protocol import (
    Accept,
    Decline,
    Error,
    FrameworkInfo,
    Offers,
    Operation,
    ReregisterAgent,
    Revive,
    StatusUpdate,
    Subscribe,
    Subscribed,
    Suppress,
)
from tests.unit.test_master_core import FW, Harness, task


def subscribe(h: Harness, info: FrameworkInfo, peer: bytes = FW, now: float = 0.0) -> Subscribed:
    replies = h.send(peer, Subscribe(framework=info), now)
    assert isinstance(replies[0], Subscribed), replies
    return replies[0]


# ----------------------------------------------------------------------------- item 1


def test_an_accept_refused_for_a_bad_operation_returns_its_offers_to_the_pool() -> None:
    """Before: the offer stayed held by the framework (until the 10 s offer resend)."""
    h = Harness()
    agent_id = h.register_agent()
    fid = h.subscribe(roles=("eng",))
    (offer,) = h.offers_to(FW, 0)
    replies = h.send(FW, Accept(framework_id=fid, offer_ids=[offer.offer_id],
                                operations=[Operation(kind="RESERVE",
                                                      resources="cpus(ops):1")],
                                tasks=[task("t1", agent_id)]), 0.1, rid="req-1")
    (error,) = [m for m in replies if isinstance(m, Error)]
    assert error.code == "invalid" and error.in_reply_to == "req-1"
    assert "returned to the pool" in error.message
    dropped = [m.status for m in replies if isinstance(m, StatusUpdate)]
    assert [(s.task_id, s.state) for s in dropped] == [("t1", "TASK_DROPPED")]
    assert offer.offer_id not in h.core.state.offers  # logged: a new leader agrees
    assert h.core.state.filters == {}  # returned without a decline filter
    (again,) = h.offers_to(FW, 0.2)  # the whole agent is offered again at once
    assert again.offer_id != offer.offer_id and again.resources == offer.resources
    assert not h.core.state.tasks


def test_a_stale_offer_in_an_accept_returns_the_other_offers_of_the_framework() -> None:
    h = Harness()
    agent_id = h.register_agent()
    fid = h.subscribe()
    (offer,) = h.offers_to(FW, 0)
    replies = h.send(FW, Accept(framework_id=fid, offer_ids=[offer.offer_id, "gone"],
                                tasks=[task("t1", agent_id)]), 0.1)
    assert [m.code for m in replies if isinstance(m, Error)] == ["invalid"]
    assert h.core.state.offers == {}
    assert len(h.offers_to(FW, 0.2)) == 1


def test_a_decline_refused_for_its_filter_still_gives_the_offers_back() -> None:
    h = Harness()
    h.register_agent()
    fid = h.subscribe()
    (offer,) = h.offers_to(FW, 0)
    (error,) = h.send(FW, Decline(framework_id=fid, offer_ids=[offer.offer_id],
                                  refuse_seconds=-1.0), 0.1, rid="d1")
    assert isinstance(error, Error) and error.code == "invalid" and error.in_reply_to == "d1"
    assert h.core.state.offers == {} and h.core.state.filters == {}
    assert len(h.offers_to(FW, 0.2)) == 1


def test_an_accept_naming_another_frameworks_offer_leaves_that_offer_alone() -> None:
    h = Harness()
    agent_id = h.register_agent(resources="cpus:1;mem:128")
    fid = h.subscribe()
    (offer,) = h.offers_to(FW, 0)
    other = h.subscribe(peer=b"fw-b")
    replies = h.send(b"fw-b", Accept(framework_id=other, offer_ids=[offer.offer_id],
                                     tasks=[task("t1", agent_id)]), 0.1)
    assert [m.code for m in replies if isinstance(m, Error)] == ["invalid"]
    assert h.core.state.offers[offer.offer_id]["framework_id"] == fid


# ----------------------------------------------------------------------------- item 4


def test_a_framework_subscribed_suppressed_gets_no_offers_until_it_revives() -> None:
    h = Harness()
    h.register_agent()
    fid = subscribe(h, FrameworkInfo(name="q", suppressed_roles=["*"])).framework_id
    assert h.offers_to(FW, 0) == [] and h.offers_to(FW, 5) == []
    assert h.core.state.frameworks[fid].suppressed_roles == ["*"]
    h.send(FW, Revive(framework_id=fid), 6)
    assert len(h.offers_to(FW, 6)) == 1
    assert h.core.state.frameworks[fid].suppressed_roles == []


def test_suppression_is_logged_and_a_recovered_framework_stays_suppressed() -> None:
    h = Harness()
    agent_id = h.register_agent()
    fid = h.subscribe(roles=("a", "b"), failover_timeout=60)
    h.send(FW, Suppress(framework_id=fid, roles=["a"]), 0)
    assert h.core.state.frameworks[fid].suppressed_roles == ["a"]
    h.send(FW, Suppress(framework_id=fid), 0)
    assert h.core.state.frameworks[fid].suppressed_roles == ["a", "b"]
    # The master fails over; the new leader knows the framework is suppressed ...
    h2 = Harness(log=h.log, now=50.0)
    info = h2.core.state.frameworks[fid]
    assert info.suppressed_roles == ["a", "b"]
    h2.send(b"agent2", ReregisterAgent(agent_id=agent_id, hostname="h1",
                                       resources="cpus:4;mem:4096"), 50)
    # ... and the SDK subscribes with what it knows (the same), so no offer is made.
    subscribe(h2, info, peer=b"fw2", now=50)
    assert h2.offers_to(b"fw2", 51) == [] and h2.offers_to(b"fw2", 60) == []
    # A subscription that no longer lists a role revives it.
    subscribe(h2, FrameworkInfo(name="test", roles=["a", "b"], framework_id=fid,
                                suppressed_roles=["a"]), peer=b"fw3", now=61)
    (offer,) = h2.offers_to(b"fw3", 62)
    assert offer.role == "b"
    assert Harness(log=h.log).core.state.frameworks[fid].suppressed_roles == ["a"]


def test_suppressed_roles_must_be_the_frameworks_own() -> None:
    h = Harness()
    (reply,) = h.send(FW, Subscribe(framework=FrameworkInfo(
        name="x", roles=["a"], suppressed_roles=["b"])), 0)
    assert isinstance(reply, Error) and reply.code == "invalid" and "'b'" in reply.message
    assert not h.core.state.frameworks


# ----------------------------------------------------------------------------- item 5


def test_subscribed_says_when_the_framework_id_was_unknown() -> None:
    """Before: an unknown id was silently taken as a new framework."""
    h = Harness()
    h.register_agent()
    new = subscribe(h, FrameworkInfo(name="x"))
    assert not new.unknown_id and not new.reregistered
    known = subscribe(h, FrameworkInfo(name="x", framework_id=new.framework_id), peer=b"fw2")
    assert known.reregistered and not known.unknown_id
    made_up = subscribe(h, FrameworkInfo(name="y", framework_id="F-typo"), peer=b"fw3")
    assert made_up.unknown_id and not made_up.reregistered
    assert made_up.framework_id == "F-typo" and "F-typo" in h.core.state.frameworks
    # Registered under that id (as Mesos does), so offers follow.
    assert [m for p, m, _ in h.tick(1) if p == b"fw3" and isinstance(m, Offers)]


def test_a_retried_first_subscription_applies_a_suppression_changed_meanwhile() -> None:
    """The SDK suppressed while the first Subscribed was lost; its retry says so."""
    h = Harness()
    h.register_agent()
    fid = subscribe(h, FrameworkInfo(name="q")).framework_id
    again = subscribe(h, FrameworkInfo(name="q", suppressed_roles=["*"]))
    assert again.framework_id == fid and not again.reregistered
    assert h.core.state.frameworks[fid].suppressed_roles == ["*"]
    assert h.offers_to(FW, 1) == []
