"""Who may do what in the master: ids owned by principals, and the ACLs.

Ownership
---------
Framework and agent ids belong to the principal that created them.

With keys, every message comes with the principal its connection's handshake proved
(:attr:`MasterContext.principal`). The first principal to create a framework (subscribe
without an id) or an agent (register) owns that id, recorded in the log
(:class:`~mesos_zmq.master.records.OwnerSet`), so the rule survives failovers: nobody
else can subscribe or re-register under it, which is what stops one framework from
taking over another's tasks and updates, and a stranger from replacing a real agent.

Without keys (``principal`` is None) nothing here applies. An id created before the
cluster had keys has no owner: the first principal to use it adopts it (logged), so
that turning keys on does not lock every running framework out.

ACLs
----
With ``--acls`` (:mod:`mesos_zmq.auth.acls`), handlers ask :func:`authorized` before
they act; a refusal is an ``unauthorized`` error naming the action, and changes
nothing. ``may`` asks silently (what ``state`` shows). Without keys there is no
principal, and no ACL applies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from mesos_zmq.master.records import OwnerSet

if TYPE_CHECKING:
    from mesos_zmq.master.context import MasterContext

log = structlog.get_logger()


def may_use(core: MasterContext, kind: str, ident: str, peer: bytes, rid: str) -> bool:
    """Whether the sender may act as framework/agent ``ident``; refuses (with an error
    to ``peer``) when another principal owns it."""
    principal = core.principal
    if principal is None:
        return True
    owner = core.state.owner(kind, ident)
    if owner is None or owner == principal.name:
        return True
    core.count(f"refused_{kind}_owner")
    log.warning("refused: id owned by another principal", kind=kind, id=ident,
                principal=principal.name)
    core.error(peer, "unauthorized",
               f"{kind} {ident} belongs to another principal than {principal.name!r}", rid)
    return False


def claim(core: MasterContext, kind: str, ident: str) -> None:
    """Record the sender as owner of ``ident`` unless it has one (call after may_use)."""
    principal = core.principal
    if principal is None or core.state.owner(kind, ident) is not None:
        return
    core.commit(OwnerSet(kind=kind, ident=ident, principal=principal.name))


def authorized(core: MasterContext, action: str, obj: str, peer: bytes, rid: str) -> bool:
    """Whether the ACLs let the sender do ``action`` to ``obj``; refuses (with an error
    to ``peer``) when they do not."""
    if may(core, action, obj):
        return True
    principal = core.principal
    assert principal is not None
    core.count(f"unauthorized_{action}")
    core.error(peer, "unauthorized", f"principal {principal.name!r} is not allowed to "
               f"{action.replace('_', ' ')} for {obj[:100]!r} (ACL {action})", rid)
    return False


def may(core: MasterContext, action: str, obj: str) -> bool:
    principal = core.principal
    acls = core.config.acls
    if principal is None or acls is None:
        return True
    return acls.allows(action, principal.name, obj)


def framework_principal(core: MasterContext, framework_id: str) -> str:
    """The principal owning a framework ("" for one from before keys), the object of
    the ACL actions about frameworks."""
    return core.state.owner("framework", framework_id) or ""


def may_run_as(core: MasterContext, user: str) -> bool:
    """The ACLs' ``run_tasks`` for the user a task runs as. Root (or no user: the agent's
    own, root on a system agent) needs a rule that names it: ``permissive`` does not
    hand out root."""
    principal = core.principal
    acls = core.config.acls
    if principal is None or acls is None:
        return True
    if user in ("", "root"):
        return acls.allows_explicitly("run_tasks", principal.name, user or "root")
    return acls.allows("run_tasks", principal.name, user)
