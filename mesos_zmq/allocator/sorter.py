"""Weighted Dominant Resource Fairness ordering of clients (roles or frameworks).

A client's dominant share is the largest fraction it holds of any resource in the
pool; DRF serves the client with the smallest share first. Weights divide the share,
so a client with weight 3 is served until it holds three times what a weight-1
client holds. The sorter only orders: it knows nothing of agents or offers.

Shares are computed from scalar totals only (cpus, mem, disk, gpus...); ranges and
sets (ports) do not count, as in Mesos. Names in ``excluded`` (for example ``gpus``)
are left out of the computation so that a scarce resource does not dominate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class DRFSorter:
    """Keeps each client's allocation and the pool total; ``sort()`` is ascending share."""

    def __init__(self, excluded: Iterable[str] = ()) -> None:
        self._alloc: dict[str, dict[str, float]] = {}
        self._weights: dict[str, float] = {}
        self._total: dict[str, float] = {}
        self._excluded = frozenset(excluded)

    # ----------------------------------------------------------------- membership
    def add(self, client: str) -> None:
        self._alloc.setdefault(client, {})

    def remove(self, client: str) -> None:
        self._alloc.pop(client, None)

    def __contains__(self, client: object) -> bool:
        return client in self._alloc

    def clients(self) -> list[str]:
        return list(self._alloc)

    def set_weight(self, client: str, weight: float) -> None:
        if not weight > 0:
            raise ValueError(f"weight of {client!r} must be positive, got {weight}")
        self._weights[client] = weight

    def weight(self, client: str) -> float:
        return self._weights.get(client, 1.0)

    # ----------------------------------------------------------------- accounting
    def add_total(self, scalars: Mapping[str, float]) -> None:
        _add_into(self._total, scalars, 1)

    def remove_total(self, scalars: Mapping[str, float]) -> None:
        _add_into(self._total, scalars, -1)

    def allocated(self, client: str, scalars: Mapping[str, float]) -> None:
        self.add(client)
        _add_into(self._alloc[client], scalars, 1)

    def unallocated(self, client: str, scalars: Mapping[str, float]) -> None:
        if client in self._alloc:
            _add_into(self._alloc[client], scalars, -1)

    def allocation(self, client: str) -> dict[str, float]:
        return dict(self._alloc.get(client, {}))

    def total(self) -> dict[str, float]:
        return dict(self._total)

    # ----------------------------------------------------------------- ordering
    def share(self, client: str) -> float:
        """Unweighted dominant share of ``client`` (0 for an unknown client)."""
        best = 0.0
        for name, amount in self._alloc.get(client, {}).items():
            if name in self._excluded:
                continue
            total = self._total.get(name, 0.0)
            if total > 0:
                best = max(best, amount / total)
        return best

    def weighted_share(self, client: str) -> float:
        return self.share(client) / self.weight(client)

    def sort(self) -> list[str]:
        """Clients by ascending weighted share; ties broken by name for determinism."""
        return sorted(self._alloc, key=lambda c: (self.weighted_share(c), c))


def _add_into(target: dict[str, float], scalars: Mapping[str, float], sign: int) -> None:
    for name, amount in scalars.items():
        value = round(target.get(name, 0.0) + sign * amount, 3)
        if value <= 0:
            target.pop(name, None)
        else:
            target[name] = value
