"""Authorization: who may do what, from an ACL file in the shape of Mesos's ``--acls``.

Pure (no I/O but :meth:`Acls.load`): the master core asks :meth:`Acls.allows` inside
its handlers, where a unit test or the simulator can reach the rule.

The file is JSON::

    {
      "permissive": false,
      "register_frameworks": [
        {"principals": {"values": ["analytics"]}, "roles": {"values": ["analytics"]}},
        {"principals": {"type": "ANY"}, "roles": {"type": "NONE"}}
      ],
      "run_tasks": [{"principals": {"values": ["analytics"]}, "users": {"values": ["nobody"]}}],
      "view_tasks": [{"principals": {"values": ["alice"]}, "framework_principals": {"type": "ANY"}}]
    }

Each action holds rules tried in order. A rule applies when its subject
(``principals``) names the requester (a list of ``values``, or ``{"type": "ANY"}``)
and its object names the thing acted on (or is ``ANY`` or ``NONE``). The first rule that
applies decides: allowed, unless its subject or object is ``NONE``. When no rule
applies, ``permissive`` decides (true by default, as in Mesos; set it false to allow
only what is listed).

Actions, and what their object names (the key to use in a rule):

====================  ======================  =========================================
action                object key              asked when
====================  ======================  =========================================
register_frameworks   roles                   a framework subscribes, for each role
run_tasks             users                   a task is launched, for the user it runs as
                                              (root, or no user, needs a rule naming
                                              root: permissive is not enough)
teardown_frameworks   framework_principals    an operator tears a framework down
kill_tasks            framework_principals    an operator kills another's task
view_frameworks       framework_principals    state lists a framework
view_tasks            framework_principals    state lists a task
access_sandboxes      framework_principals    a sandbox file is read
update_weights        roles                   weights are set, for each role
update_quotas         roles                   quota is set or removed
reserve_resources     roles                   resources are reserved, for each role
unreserve_resources   roles                   resources are unreserved, for each role
drain_agents          agents                  an agent is drained or reactivated
                                              (by host name)
====================  ======================  =========================================
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from mesos_zmq.auth.json_file import load_json
from mesos_zmq.errors import AuthError

#: action -> the key of its object in a rule
ACTIONS: Final[dict[str, str]] = {
    "register_frameworks": "roles",
    "run_tasks": "users",
    "teardown_frameworks": "framework_principals",
    "kill_tasks": "framework_principals",
    "view_frameworks": "framework_principals",
    "view_tasks": "framework_principals",
    "access_sandboxes": "framework_principals",
    "update_weights": "roles",
    "update_quotas": "roles",
    "reserve_resources": "roles",
    "unreserve_resources": "roles",
    "drain_agents": "agents",
}


@dataclass(frozen=True, slots=True)
class Entity:
    """ANY, NONE, or a set of names."""

    kind: str  # ANY | NONE | SOME
    values: frozenset[str] = frozenset()

    def names(self, value: str) -> bool:
        return self.kind != "SOME" or value in self.values

    @classmethod
    def parse(cls, raw: Any, where: str) -> Entity:
        if not isinstance(raw, dict) or not raw:
            raise AuthError(f"{where}: expected {{\"values\": [...]}} or "
                            "{\"type\": \"ANY\"} or {\"type\": \"NONE\"}")
        if set(raw) == {"type"} and raw["type"] in ("ANY", "NONE"):
            return cls(raw["type"])
        values = raw.get("values")
        if set(raw) != {"values"} or not isinstance(values, list) or not all(
                isinstance(v, str) for v in values):
            raise AuthError(f"{where}: expected {{\"values\": [names]}} or a type of ANY "
                            f"or NONE, got {json.dumps(raw)[:80]}")
        return cls("SOME", frozenset(values))


@dataclass(frozen=True, slots=True)
class Rule:
    subject: Entity
    object: Entity

    def applies(self, principal: str, obj: str) -> bool:
        return self.subject.names(principal) and self.object.names(obj)

    def allows(self) -> bool:
        return self.subject.kind != "NONE" and self.object.kind != "NONE"


class Acls:
    """Rules per action; :meth:`allows` answers one question."""

    def __init__(self, rules: Mapping[str, Iterable[Rule]], permissive: bool = True) -> None:
        self.permissive = permissive
        self._rules = {action: tuple(found) for action, found in rules.items()}

    @classmethod
    def from_json(cls, data: Any, where: str = "ACLs") -> Acls:
        if not isinstance(data, dict):
            raise AuthError(f"{where}: expected a JSON object of actions")
        permissive = data.get("permissive", True)
        if not isinstance(permissive, bool):
            raise AuthError(f"{where}: permissive is true or false")
        rules: dict[str, list[Rule]] = {}
        for action, entries in data.items():
            if action == "permissive":
                continue
            key = ACTIONS.get(action)
            if key is None:
                raise AuthError(f"{where}: unknown action {action[:40]!r} (known: "
                                f"{', '.join(sorted(ACTIONS))})")
            if not isinstance(entries, list):
                raise AuthError(f"{where}: {action} is a list of rules")
            for number, entry in enumerate(entries, 1):
                at = f"{where}: {action} rule {number}"
                if not isinstance(entry, dict) or set(entry) != {"principals", key}:
                    raise AuthError(f"{at}: give exactly \"principals\" and \"{key}\"")
                rules.setdefault(action, []).append(Rule(
                    Entity.parse(entry["principals"], f"{at} principals"),
                    Entity.parse(entry[key], f"{at} {key}")))
        return cls(rules, permissive)

    @classmethod
    def load(cls, path: Path | str) -> Acls:
        data = load_json(path, "ACL file")
        return cls.from_json(data, str(path))

    def allows_explicitly(self, action: str, principal: str, obj: str) -> bool:
        """Like :meth:`allows`, but only a rule allows: ``permissive`` does not (root)."""
        for rule in self._rules.get(action, ()):
            if rule.applies(principal, obj):
                return rule.allows()
        return False

    def allows(self, action: str, principal: str, obj: str) -> bool:
        """May ``principal`` do ``action`` to ``obj``? The first rule that applies
        decides; with none, ``permissive`` does."""
        for rule in self._rules.get(action, ()):
            if rule.applies(principal, obj):
                return rule.allows()
        return self.permissive
