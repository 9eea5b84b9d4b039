"""Offers: made from what the allocator hands out, sent again until answered, expired,
rescinded; and launches sent again while their agent stays silent.

Functions of the master core seen as a :class:`~mesos_zmq.master.context.MasterContext`
(a service the handlers share, below them and above the state). Write ahead: an offer
is logged before the framework hears of it, and its removal before its resources are
offered again.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

from mesos_zmq.master.records import OfferMade, OfferRemoved
from mesos_zmq.master.runtime import OfferRec
from mesos_zmq.protocol import Offer, Offers, Rescind, RunTasks, TaskInfo
from mesos_zmq.tasks import TaskState

if TYPE_CHECKING:
    from mesos_zmq.master.context import MasterContext


def allocate(core: MasterContext, now: float) -> None:
    """Turn what the allocator hands out into offers: logged, then sent."""
    by_framework: dict[str, list[Offer]] = {}
    for alloc in core.allocator.allocate(now):
        agent = core.state.agents.get(alloc.agent_id)
        fw_rt = core.framework_runtimes.get(alloc.framework_id)
        if agent is None or fw_rt is None or fw_rt.peer is None:
            core.allocator.recover(alloc.framework_id, alloc.role, alloc.agent_id,
                                   alloc.resources)
            continue
        offer_id = core.new_id()
        rec = OfferRec(
            offer_id, alloc.framework_id, alloc.agent_id, alloc.role, alloc.resources, now
        )
        core.offers[offer_id] = rec
        core.offer_resends[offer_id] = now + core.config.offer_resend_interval
        # Write ahead: the offer is in the log before the framework hears of it.
        core.commit(OfferMade(offer_id=offer_id, framework_id=alloc.framework_id,
                              agent_id=alloc.agent_id, role=alloc.role,
                              resources=str(alloc.resources)))
        fw_rt.offers.add(offer_id)
        core.agent_runtimes[alloc.agent_id].offers.add(offer_id)
        by_framework.setdefault(alloc.framework_id, []).append(offer_message(core, rec))
    for fid, offers in by_framework.items():
        core.count("offers")
        core.send_framework(fid, Offers(offers=offers))


def offer_message(core: MasterContext, rec: OfferRec) -> Offer:
    agent = core.state.agents[rec.agent_id]
    return Offer(offer_id=rec.offer_id, framework_id=rec.framework_id,
                 agent_id=rec.agent_id, hostname=agent.hostname, role=rec.role,
                 resources=str(rec.resources), attributes=agent.attributes)


def resend_offers(core: MasterContext, framework_id: str, now: float) -> None:
    """Offers a previous leader made (or logged and never sent) go out again.

    Same ids, so the framework can use or decline them; the framework may never
    have heard of them, and an offer nobody knows of would be held for good. Their
    offer timeout starts again now (kept in creation order for expiry).
    """
    rt = core.framework_runtimes.get(framework_id)
    if rt is None or rt.peer is None or not rt.offers:
        return
    offers = []
    for offer_id in sorted(rt.offers):
        rec = core.offers.pop(offer_id, None)
        if rec is None or rec.agent_id not in core.state.agents:
            continue
        rec.created = now
        core.offers[offer_id] = rec
        offers.append(_offer_sent(core, rec, now))
    if offers:
        core.count("offers_resent")
        core.send(rt.peer, Offers(offers=offers))


def _offer_sent(core: MasterContext, rec: OfferRec, now: float) -> Offer:
    core.offer_resends.pop(rec.offer_id, None)
    core.offer_resends[rec.offer_id] = now + core.config.offer_resend_interval
    return offer_message(core, rec)


def resend_due(core: MasterContext, now: float) -> None:
    """Offers unanswered for a while go out again (a lost message, say)."""
    due: dict[str, list[Offer]] = {}
    while core.offer_resends:
        offer_id, when = next(iter(core.offer_resends.items()))
        if when > now:
            break
        rec = core.offers.get(offer_id)
        if rec is None:
            del core.offer_resends[offer_id]
            continue
        fw_rt = core.framework_runtimes.get(rec.framework_id)
        if fw_rt is None or fw_rt.peer is None or rec.agent_id not in core.state.agents:
            core.offer_resends.move_to_end(offer_id)
            core.offer_resends[offer_id] = now + core.config.offer_resend_interval
            continue
        due.setdefault(rec.framework_id, []).append(_offer_sent(core, rec, now))
    for fid, offers in due.items():
        core.count("offers_resent")
        core.send_framework(fid, Offers(offers=offers))


def launch_sent(core: MasterContext, framework_id: str, task_id: str, now: float) -> None:
    """A task went to its agent: send it again if the agent stays silent about it."""
    heapq.heappush(core.launch_retries, (now + core.config.launch_retry,
                                    core.config.launch_retry, framework_id, task_id))


def retry_launches(core: MasterContext, now: float) -> None:
    """Send launches again, with back-off, while their agent says nothing of them."""
    resend: dict[tuple[str, str], list[TaskInfo]] = {}
    while core.launch_retries and core.launch_retries[0][0] <= now:
        _, interval, fid, task_id = heapq.heappop(core.launch_retries)
        rec = core.state.tasks.get((fid, task_id))
        if rec is None or rec.state != TaskState.STAGING:
            continue  # the agent spoke of it (or it ended)
        if core.agent_connected(rec.agent_id):
            resend.setdefault((fid, rec.agent_id), []).append(rec.task)
            core.count("launches_retried")
        interval = min(interval * 2, 60.0)
        heapq.heappush(core.launch_retries, (now + interval, interval, fid, task_id))
    for (fid, agent_id), tasks in resend.items():
        info = core.state.frameworks.get(fid)
        core.send_agent(agent_id, RunTasks(framework_id=fid, tasks=tasks,
                                            framework_name=info.name if info else ""))


def expire(core: MasterContext, now: float) -> None:
    """Rescind offers held past the offer timeout (oldest first: dicts keep order)."""
    timeout = core.config.offer_timeout
    if timeout is None:
        return
    expired = []
    for offer_id, offer in core.offers.items():
        if offer.created + timeout > now:
            break
        expired.append(offer_id)
    for offer_id in expired:
        core.count("offers_timed_out")
        rescind(core, offer_id)


def remove_offer(core: MasterContext, offer_id: str, recover: bool = True) -> OfferRec | None:
    """Forget an offer (logged); ``recover`` gives its resources back to the allocator."""
    offer = core.offers.pop(offer_id, None)
    if offer is None:
        return None
    core.offer_resends.pop(offer_id, None)
    core.commit(OfferRemoved(offer_id=offer_id))
    fw_rt = core.framework_runtimes.get(offer.framework_id)
    if fw_rt is not None:
        fw_rt.offers.discard(offer_id)
    ag_rt = core.agent_runtimes.get(offer.agent_id)
    if ag_rt is not None:
        ag_rt.offers.discard(offer_id)
    if recover:
        core.allocator.recover(offer.framework_id, offer.role, offer.agent_id, offer.resources)
        core.request_allocation()
    return offer


def rescind(core: MasterContext, offer_id: str) -> None:
    offer = remove_offer(core, offer_id)
    if offer is not None:
        core.count("offers_rescinded")
        core.send_framework(offer.framework_id, Rescind(offer_id=offer_id))
