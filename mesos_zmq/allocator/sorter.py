"""Weighted Dominant Resource Fairness ordering of clients (roles or frameworks).

A client's dominant share is the largest fraction it holds of any resource in the
pool; DRF serves the client with the smallest share first. Weights divide the share,
so a client with weight 3 is served until it holds three times what a weight-1
client holds. The sorter only orders: it knows nothing of agents or offers.

Shares are computed from scalars only (cpus, mem, disk, gpus...); ranges and sets
(ports) do not count, as in Mesos. Names in ``excluded`` (for example ``gpus``) are
left out so that a scarce resource does not dominate.

Speed: the order is kept sorted incrementally. A change to one client's allocation
moves only that client (two binary searches), so an allocation round that touches
every agent costs O(agents * log clients) instead of a full sort per agent. A change
to the pool total changes every share; the order is then rebuilt lazily, once, the
next time it is read. Sorters that share one :class:`Pool` see the same totals.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator, Mapping

from mesos_zmq.resources import Resources


class Pool:
    """Scalar totals of the resources being shared, with a version for cache checks.

    Reserved resources are also counted per role, so that a role's share can be
    measured against what the allocator may actually give it: everything unreserved
    plus what is reserved for the role itself, its ancestors or its descendants, but
    not what is reserved for unrelated roles (:meth:`totals_for`).
    """

    __slots__ = ("_for_cache", "reserved", "totals", "version")

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        #: role -> scalars reserved for exactly that role
        self.reserved: dict[str, dict[str, float]] = {}
        self.version = 0
        self._for_cache: dict[str, dict[str, float]] = {}

    def add(self, scalars: Mapping[str, float], sign: int = 1) -> None:
        _add_into(self.totals, scalars, sign)
        self._changed()

    def add_resources(self, resources: Resources, sign: int = 1) -> None:
        """Count an agent's resources in (sign 1) or out (-1), reservations included."""
        _add_into(self.totals, resources.scalar_totals(), sign)
        for role in resources.roles() - {"*"}:
            per_role = self.reserved.setdefault(role, {})
            _add_into(per_role, resources.reserved(role).scalar_totals(), sign)
            if not per_role:
                del self.reserved[role]
        self._changed()

    def _changed(self) -> None:
        self.version += 1
        self._for_cache.clear()

    def totals_for(self, role: str | None) -> dict[str, float]:
        """The denominator of ``role``'s share (see the class docstring)."""
        if role is None or not self.reserved:
            return self.totals
        cached = self._for_cache.get(role)
        if cached is None:
            cached = dict(self.totals)
            for other, amounts in self.reserved.items():
                related = (other == role or other.startswith(role + "/")
                           or role.startswith(other + "/"))
                if not related:
                    _add_into(cached, amounts, -1)
            self._for_cache[role] = cached
        return cached


class DRFSorter:
    """Keeps each client's allocation; iterates clients by ascending weighted share."""

    def __init__(self, excluded: Iterable[str] = (), pool: Pool | None = None,
                 role_of: Callable[[str], str | None] | None = None) -> None:
        """``role_of`` maps a client to the role whose share denominator applies."""
        self._role_of = role_of
        self._alloc: dict[str, dict[str, float]] = {}
        self._weights: dict[str, float] = {}
        self._pool = pool if pool is not None else Pool()
        self._excluded = frozenset(excluded)
        self._keys: dict[str, tuple[float, str]] = {}
        self._order: list[tuple[float, str]] = []
        self._built_version = -1
        #: clients kept for accounting but left out of the order (suppressed, inactive)
        self._hidden: set[str] = set()

    # ----------------------------------------------------------------- membership
    def add(self, client: str) -> None:
        if client in self._alloc:
            return
        self._alloc[client] = {}
        if self._built_version == self._pool.version:
            key = (0.0, client)
            self._keys[client] = key
            insort(self._order, key)

    def remove(self, client: str) -> None:
        if self._alloc.pop(client, None) is None:
            return
        key = self._keys.pop(client, None)
        hidden = client in self._hidden
        self._hidden.discard(client)
        if key is not None and not hidden and self._built_version == self._pool.version:
            self._order.pop(bisect_left(self._order, key))

    def hide(self, client: str, hidden: bool = True) -> None:
        """Keep accounting for ``client`` but leave it out of (or put it back in) the order.

        Iterating past many ineligible clients (suppressed frameworks) on every agent
        would make a round cost agents x clients; hiding them keeps it cheap.
        """
        if client not in self._alloc or (client in self._hidden) == hidden:
            return
        if hidden:
            self._hidden.add(client)
        else:
            self._hidden.discard(client)
        if self._built_version != self._pool.version:
            return
        key = self._keys.get(client)
        if hidden:
            if key is not None:
                self._order.pop(bisect_left(self._order, key))
        else:
            key = (self.weighted_share(client), client)
            self._keys[client] = key
            insort(self._order, key)

    def __contains__(self, client: object) -> bool:
        return client in self._alloc

    def __len__(self) -> int:
        return len(self._alloc)

    def clients(self) -> list[str]:
        return list(self._alloc)

    def set_weight(self, client: str, weight: float) -> None:
        if not weight > 0:
            raise ValueError(f"weight of {client!r} must be positive, got {weight}")
        self._weights[client] = weight
        self._built_version = -1

    def weight(self, client: str) -> float:
        return self._weights.get(client, 1.0)

    # ----------------------------------------------------------------- accounting
    def add_total(self, scalars: Mapping[str, float]) -> None:
        self._pool.add(scalars, 1)

    def remove_total(self, scalars: Mapping[str, float]) -> None:
        self._pool.add(scalars, -1)

    def allocated(self, client: str, scalars: Mapping[str, float]) -> None:
        self.add(client)
        _add_into(self._alloc[client], scalars, 1)
        self._reposition(client)

    def unallocated(self, client: str, scalars: Mapping[str, float]) -> None:
        if client in self._alloc:
            _add_into(self._alloc[client], scalars, -1)
            self._reposition(client)

    def allocation(self, client: str) -> dict[str, float]:
        return dict(self._alloc.get(client, {}))

    def total(self) -> dict[str, float]:
        return dict(self._pool.totals)

    # ----------------------------------------------------------------- ordering
    def share(self, client: str) -> float:
        """Unweighted dominant share of ``client`` (0 for an unknown client)."""
        best = 0.0
        totals = (self._pool.totals if self._role_of is None
                  else self._pool.totals_for(self._role_of(client)))
        excluded = self._excluded
        for name, amount in self._alloc.get(client, {}).items():
            total = totals.get(name, 0.0)
            if total > 0 and name not in excluded:
                fraction = amount / total
                if fraction > best:
                    best = fraction
        return best

    def weighted_share(self, client: str) -> float:
        return self.share(client) / self._weights.get(client, 1.0)

    def _reposition(self, client: str) -> None:
        if self._built_version != self._pool.version:
            return  # the whole order is rebuilt on the next read
        hidden = client in self._hidden
        old = self._keys.get(client)
        if old is not None and not hidden:
            self._order.pop(bisect_left(self._order, old))
        key = (self.weighted_share(client), client)
        self._keys[client] = key
        if not hidden:
            insort(self._order, key)

    def _rebuild(self) -> None:
        self._keys = {c: (self.weighted_share(c), c) for c in self._alloc}
        self._order = sorted(k for c, k in self._keys.items() if c not in self._hidden)
        self._built_version = self._pool.version

    def iter_sorted(self) -> Iterator[str]:
        """Clients by ascending weighted share, ties by name. Do not mutate meanwhile."""
        if self._built_version != self._pool.version:
            self._rebuild()
        for _, client in self._order:
            yield client

    def sort(self) -> list[str]:
        return list(self.iter_sorted())


def _add_into(target: dict[str, float], scalars: Mapping[str, float], sign: int) -> None:
    for name, amount in scalars.items():
        value = round(target.get(name, 0.0) + sign * amount, 3)
        if value <= 0:
            target.pop(name, None)
        else:
            target[name] = value
