"""Hierarchical DRF over the role tree (``eng``, ``eng/ml``, ``eng/ml/train``).

Every role is a node; a node's allocation is the sum over its subtree. At each node a
sorter (:class:`DRFSorter` unless another :class:`SorterFactory` is given) orders the
node's children by weighted share, plus a ``.`` entry for the node's own frameworks
(the role used directly, not through a child). Walking the tree from the root, always
into the least-served child first, yields roles in the order hierarchical DRF serves
them: siblings compete with siblings, so ``eng/ml`` and ``eng/web`` split what ``eng``
wins against ``ops``. With :class:`RandomSorter` the same walk is Mesos's hierarchical
random order: each node's children are shuffled (weighted), then visited depth first.

Weights belong to roles and apply where the role competes with its siblings. The
unreserved role ``*`` is an ordinary top-level role here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from mesos_zmq.allocator.sorter import DRFSorter, Pool, Sorter, SorterFactory

SELF = "."


def _parent(role: str) -> str:
    return role.rsplit("/", 1)[0] if "/" in role else ""


def _child_role(child: str) -> str | None:
    return child


def _self_role(node: str) -> Callable[[str], str | None]:
    """In ``node``'s sorter a child key is a role path, and SELF stands for the node."""

    def role_of(child: str) -> str | None:
        return node if child == SELF else child

    return role_of


def ancestors(role: str) -> list[str]:
    """``eng/ml/train`` -> ``["eng", "eng/ml"]`` (root excluded, role excluded)."""
    parts = role.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


class RoleTree:
    def __init__(self, pool: Pool, excluded: frozenset[str] = frozenset(),
                 sorter_factory: SorterFactory = DRFSorter) -> None:
        """``sorter_factory`` makes every node's sorter (the role-ordering policy)."""
        self._pool = pool
        self._excluded = excluded
        self._sorter_factory = sorter_factory
        # node path ("" is the root) -> sorter over its children and SELF
        self._nodes: dict[str, Sorter] = {
            "": sorter_factory(excluded=excluded, pool=pool, role_of=_child_role)}
        self._weights: dict[str, float] = {}
        self._roles: set[str] = set()
        self._paths: dict[str, list[tuple[str, str]]] = {}

    # ----------------------------------------------------------------- structure
    def add_role(self, role: str) -> None:
        """Make ``role`` (and its ancestors) known; idempotent."""
        if role in self._roles:
            return
        self._roles.add(role)
        chain = [*ancestors(role), role] if role != "*" else [role]
        parent = ""
        for node in chain:
            if node not in self._nodes:
                self._nodes[node] = self._sorter_factory(
                    excluded=self._excluded, pool=self._pool, role_of=_self_role(node))
                self._nodes[parent].add(node)
                if node in self._weights:
                    self._nodes[parent].set_weight(node, self._weights[node])
            parent = node
        self._nodes[role].add(SELF)

    def remove_role(self, role: str) -> bool:
        """Forget ``role`` if nothing is allocated to it; nodes left without roles below
        them go too (as Mesos prunes its role tree), so roles that frameworks named
        once and left do not pile up. Returns whether it was removed."""
        if role not in self._roles or any(self._nodes[role].allocation(SELF).values()):
            return False
        self._roles.discard(role)
        self._nodes[role].remove(SELF)
        self._paths.clear()  # cheap to rebuild; some went through removed nodes
        node = role
        while node and node not in self._roles and len(self._nodes[node]) == 0:
            parent = "" if node == "*" else _parent(node)
            if any(self._nodes[parent].allocation(node).values()):
                break
            self._nodes[parent].remove(node)
            del self._nodes[node]
            node = parent
        return True

    def roles(self) -> set[str]:
        return set(self._roles)

    def set_weight(self, role: str, weight: float) -> None:
        if not weight > 0:
            raise ValueError(f"weight of role {role!r} must be positive, got {weight}")
        self._weights[role] = weight
        parent = "" if role == "*" else _parent(role)
        if role in self._nodes:
            self._nodes[parent].set_weight(role, weight)

    def weight(self, role: str) -> float:
        return self._weights.get(role, 1.0)

    def weights(self) -> dict[str, float]:
        return dict(self._weights)

    # ----------------------------------------------------------------- accounting
    def _path(self, role: str) -> list[tuple[str, str]]:
        """(node, child key) pairs from the root down to the role's SELF entry."""
        cached = self._paths.get(role)
        if cached is None:
            cached = self._paths[role] = self._compute_path(role)
        return cached

    def _compute_path(self, role: str) -> list[tuple[str, str]]:
        chain = [*ancestors(role), role] if role != "*" else [role]
        pairs = []
        parent = ""
        for node in chain:
            pairs.append((parent, node))
            parent = node
        pairs.append((role, SELF))
        return pairs

    def allocated(self, role: str, scalars: Mapping[str, float]) -> None:
        self.add_role(role)
        for node, child in self._path(role):
            self._nodes[node].allocated(child, scalars)

    def unallocated(self, role: str, scalars: Mapping[str, float]) -> None:
        if role not in self._roles:
            return
        for node, child in self._path(role):
            self._nodes[node].unallocated(child, scalars)

    # ----------------------------------------------------------------- queries
    def share(self, role: str) -> float:
        """Dominant share of the role's whole subtree."""
        if role not in self._nodes:
            return 0.0
        parent = "" if role == "*" else _parent(role)
        return self._nodes[parent].share(role)

    def allocation(self, role: str) -> dict[str, float]:
        if role not in self._nodes:
            return {}
        parent = "" if role == "*" else _parent(role)
        return self._nodes[parent].allocation(role)

    def iter_sorted(self) -> Iterator[str]:
        """Roles that have frameworks, in hierarchical DRF order."""
        yield from self._walk("")

    def _walk(self, node: str) -> Iterator[str]:
        for child in self._nodes[node].iter_sorted():
            if child == SELF:
                yield node
            else:
                yield from self._walk(child)
