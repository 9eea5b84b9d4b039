"""Ordering clients (roles or frameworks): weighted Dominant Resource Fairness by default.

A client's dominant share is the largest fraction it holds of any resource in the
pool; DRF serves the client with the smallest share first. Weights divide the share,
so a client with weight 3 is served until it holds three times what a weight-1
client holds. The sorter only orders: it knows nothing of agents or offers.

Shares are computed from scalars only (cpus, mem, disk, gpus...); ranges and sets
(ports) do not count, as in Mesos. Names in ``excluded`` (for example ``gpus``) are
left out so that a scarce resource does not dominate.

Speed: the order is kept sorted incrementally. A change to one client's allocation
moves only that client (two binary searches), so an allocation round that touches
every agent costs O(agents * log clients) instead of a full sort per agent. The move
waits until the order is next looked at (``_moved``): under churn every task's end
changes its framework's and its roles' allocations, thousands of times between two
reads of the order, and each move is the same one client put back in its place by its
current share, so doing it once at the read gives the same order. A change to the pool
total changes every share; the order is then rebuilt lazily, once, the next time it
is read. Sorters that share one :class:`Pool` see the same totals.

The policy is pluggable, as in Mesos (``--role_sorter``/``--framework_sorter``): the
allocator sees sorters only through the :class:`Sorter` protocol and makes them with a
:class:`SorterFactory`. :class:`RandomSorter` is Mesos's alternative to DRF: the same
accounting, but each read of the order is a fresh weighted random shuffle.
:func:`sorter_factory` looks a policy up by its flag name.
"""

from __future__ import annotations

import random
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator, Mapping
from heapq import heapify, heappop
from math import log
from typing import Protocol

from mesos_zmq.errors import ConfigError
from mesos_zmq.resources import Resources

#: the policy names :func:`sorter_factory` knows (Mesos's flag values)
SORTER_NAMES = ("drf", "random")


class Sorter(Protocol):
    """What the allocator and its role tree use of a sorter, and nothing more.

    A sorter keeps each client's (role's or framework's) allocation, because quota and
    the reported shares are measured from it whatever the policy, and yields the order
    in which clients are offered resources, which is the policy. Keeping the protocol
    to what the allocator calls is what lets a policy be swapped without touching it.
    """

    def add(self, client: str) -> None:
        """Make ``client`` known (idempotent); it starts visible with nothing allocated."""

    def remove(self, client: str) -> None:
        """Forget ``client`` and its allocation (unknown clients are ignored)."""

    def hide(self, client: str, hidden: bool = True) -> None:
        """Keep accounting for ``client`` but leave it out of (or put it back in) the order."""

    def set_weight(self, client: str, weight: float) -> None:
        """Bias the order toward ``client`` (positive; 1 by default, even before add)."""

    def allocated(self, client: str, scalars: Mapping[str, float]) -> None:
        """Count ``scalars`` as held by ``client`` (adding it if unknown)."""

    def unallocated(self, client: str, scalars: Mapping[str, float]) -> None:
        """Count ``scalars`` as given back by ``client``."""

    def allocation(self, client: str) -> dict[str, float]:
        """A copy of what ``client`` holds (empty for an unknown client)."""

    def share(self, client: str) -> float:
        """Unweighted dominant share of ``client``: a measurement, whatever the policy."""

    def iter_sorted(self) -> Iterator[str]:
        """Visible clients in the order to serve them. Do not mutate meanwhile."""

    def __len__(self) -> int:
        """How many clients are known (hidden ones included)."""


class SorterFactory(Protocol):
    """Makes the sorter of one node of the role tree, or of one role's frameworks.

    ``pool`` is shared by every sorter of one allocator; ``role_of`` maps a client to
    the role whose share denominator applies (see :meth:`Pool.totals_for`). The
    :class:`DRFSorter` class itself is a factory.
    """

    def __call__(self, excluded: Iterable[str], pool: Pool,
                 role_of: Callable[[str], str | None]) -> Sorter: ...


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
        """Count an agent's resources in (sign 1) or out (-1), reservations included;
        ``sign`` may count several agents of one shape at once."""
        _add_into(self.totals, resources.scalar_amounts(), sign)
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
        #: clients whose allocation changed since the order was last put right: their
        #: ``_keys`` and places in ``_order`` are stale until :meth:`_settle`
        self._moved: set[str] = set()

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
        if client not in self._alloc:
            return
        self._settle()
        del self._alloc[client]
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
        self._settle()
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
        totals = (self._pool.totals if self._role_of is None
                  else self._pool.totals_for(self._role_of(client)))
        return _dominant_share(self._alloc.get(client, {}), totals, self._excluded)

    def weighted_share(self, client: str) -> float:
        return self.share(client) / self._weights.get(client, 1.0)

    def _reposition(self, client: str) -> None:
        """``client``'s share changed: its place is put right at the next read (see
        the module docstring), or the whole order rebuilt then if the pool changed."""
        if self._built_version == self._pool.version:
            self._moved.add(client)

    def _settle(self) -> None:
        """Put the clients whose allocation changed in their places, by their shares
        now (what moving each at each change would have come to)."""
        moved = self._moved
        if not moved:
            return
        if self._built_version == self._pool.version:
            order, keys, hidden = self._order, self._keys, self._hidden
            for client in moved:
                if client not in self._alloc:
                    continue  # removed meanwhile (remove settles first: not expected)
                visible = client not in hidden
                old = keys.get(client)
                if old is not None and visible:
                    order.pop(bisect_left(order, old))
                key = (self.weighted_share(client), client)
                keys[client] = key
                if visible:
                    insort(order, key)
        moved.clear()

    def _rebuild(self) -> None:
        self._moved.clear()
        self._keys = {c: (self.weighted_share(c), c) for c in self._alloc}
        self._order = sorted(k for c, k in self._keys.items() if c not in self._hidden)
        self._built_version = self._pool.version

    def iter_sorted(self) -> Iterator[str]:
        """Clients by ascending weighted share, ties by name. Do not mutate meanwhile."""
        if self._built_version != self._pool.version:
            self._rebuild()
        elif self._moved:
            self._settle()
        for _, client in self._order:
            yield client

    def sort(self) -> list[str]:
        return list(self.iter_sorted())


class RandomSorter:
    """Mesos's random sorter: every read of the order is a fresh weighted shuffle.

    Accounting is the DRF sorter's (allocations, hidden clients, the dominant share
    reported by :meth:`share`), because quota and the operator's view depend on it;
    only the order differs. It ignores shares: a client with weight ``w`` comes first
    with probability ``w / sum(weights)`` of the visible clients, and the rest of the
    order is drawn the same way among those left (weighted sampling without
    replacement). Weights therefore bias who is served first instead of how much each
    ends up holding.

    Randomness comes only from the ``rng`` given (one :class:`random.Random`, seeded by
    the caller), never from the module's global state or the clock, so an allocator
    built on it stays a pure function of its inputs and a seed replays exactly.

    Speed: a read draws one number per visible client and heapifies (O(n)); clients
    are then popped lazily, so the allocator, which usually stops at the first
    eligible client, does not pay for a full sort.
    """

    def __init__(self, excluded: Iterable[str] = (), pool: Pool | None = None,
                 role_of: Callable[[str], str | None] | None = None, *,
                 rng: random.Random) -> None:
        """``rng`` is required: a default would have to be seeded from somewhere impure."""
        self._rng = rng
        self._role_of = role_of
        self._alloc: dict[str, dict[str, float]] = {}
        self._weights: dict[str, float] = {}
        self._pool = pool if pool is not None else Pool()
        self._excluded = frozenset(excluded)
        #: clients in the order, in the order they were added (so draws are reproducible)
        self._visible: dict[str, None] = {}

    # ----------------------------------------------------------------- membership
    def add(self, client: str) -> None:
        if client in self._alloc:
            return
        self._alloc[client] = {}
        self._visible[client] = None

    def remove(self, client: str) -> None:
        if self._alloc.pop(client, None) is not None:
            self._visible.pop(client, None)

    def __len__(self) -> int:
        return len(self._alloc)

    def hide(self, client: str, hidden: bool = True) -> None:
        """As :meth:`DRFSorter.hide`: suppressed or inactive clients cost no draw."""
        if client not in self._alloc:
            return
        if hidden:
            self._visible.pop(client, None)
        elif client not in self._visible:
            self._visible[client] = None

    def __contains__(self, client: object) -> bool:
        return client in self._alloc

    def set_weight(self, client: str, weight: float) -> None:
        if not weight > 0:
            raise ValueError(f"weight of {client!r} must be positive, got {weight}")
        self._weights[client] = weight

    def weight(self, client: str) -> float:
        return self._weights.get(client, 1.0)

    # ----------------------------------------------------------------- accounting
    def allocated(self, client: str, scalars: Mapping[str, float]) -> None:
        self.add(client)
        _add_into(self._alloc[client], scalars, 1)

    def unallocated(self, client: str, scalars: Mapping[str, float]) -> None:
        if client in self._alloc:
            _add_into(self._alloc[client], scalars, -1)

    def allocation(self, client: str) -> dict[str, float]:
        return dict(self._alloc.get(client, {}))

    def share(self, client: str) -> float:
        """Unweighted dominant share, measured as :meth:`DRFSorter.share` does."""
        totals = (self._pool.totals if self._role_of is None
                  else self._pool.totals_for(self._role_of(client)))
        return _dominant_share(self._alloc.get(client, {}), totals, self._excluded)

    # ----------------------------------------------------------------- ordering
    def iter_sorted(self) -> Iterator[str]:
        """Visible clients in a fresh weighted random order. Do not mutate meanwhile.

        Each client draws an exponential clock ``-log(U) / weight``; serving clocks in
        ascending order is weighted sampling without replacement (the smallest of
        independent exponentials with rates ``w_i`` is ``i`` with probability
        ``w_i / sum(w)``), the same distribution as Mesos's Efraimidis-Spirakis keys
        ``U ** (1 / w)`` taken largest first. Ties (probability zero) go by name.
        """
        visible = self._visible
        if len(visible) <= 1:
            yield from list(visible)  # a shuffle of one draws nothing
            return
        draw = self._rng.random
        weights = self._weights
        # 1 - random() is in (0, 1], so the logarithm is defined.
        heap = [(-log(1.0 - draw()) / weights.get(c, 1.0), c) for c in visible]
        heapify(heap)
        while heap:
            yield heappop(heap)[1]

    def sort(self) -> list[str]:
        """One draw of the whole order (tests and tools; the allocator iterates)."""
        return list(self.iter_sorted())


def sorter_factory(name: str, *, seed: int = 0) -> SorterFactory:
    """The sorter policy called ``name`` (Mesos's flag values ``drf`` and ``random``).

    ``seed`` seeds the random policy (DRF ignores it). Every sorter made by one random
    factory draws from the one :class:`random.Random` it owns, so an allocator's whole
    run is reproducible from the seed; give each allocator its own factory, or two
    allocators would interleave draws. The default seed is fixed, as Mesos's random
    sorter's generator is default-constructed (fixed seed), not seeded from the clock.

    Raises :class:`~mesos_zmq.errors.ConfigError` for an unknown name, because the name
    comes from a flag and the operator must be told what is accepted.
    """
    if name == "drf":
        return DRFSorter
    if name == "random":
        rng = random.Random(seed)

        def make_random(excluded: Iterable[str], pool: Pool,
                        role_of: Callable[[str], str | None]) -> Sorter:
            return RandomSorter(excluded, pool, role_of, rng=rng)

        return make_random
    raise ConfigError(
        f"unknown allocator sorter {name!r}: expected one of {', '.join(SORTER_NAMES)}"
    )


def _dominant_share(allocation: Mapping[str, float], totals: Mapping[str, float],
                    excluded: frozenset[str]) -> float:
    """The largest fraction of any (non-excluded) scalar total that ``allocation`` holds."""
    best = 0.0
    for name, amount in allocation.items():
        total = totals.get(name, 0.0)
        if total > 0 and name not in excluded:
            fraction = amount / total
            if fraction > best:
                best = fraction
    return best


def _add_into(target: dict[str, float], scalars: Mapping[str, float], sign: int) -> None:
    for name, amount in scalars.items():
        value = round(target.get(name, 0.0) + sign * amount, 3)
        if value <= 0:
            target.pop(name, None)
        else:
            target[name] = value
