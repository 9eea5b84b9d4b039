"""Dicts that note which keys changed, and which were inserted in which order, for the
loop's read cache.

The read cache (:mod:`mesos_zmq.master.read_cache`) keeps each task's encoded view,
in the order of the state's own dict, and the agents' and frameworks' totals up to
date change by change, so that a ``state`` read costs the loop what changed since the
last one plus one join, not passes over 100,000 tasks (looking each of them up alone
takes 40-55 ms). It learns what changed from the maps it reads: the state's active and
completed tasks and the core's usage figures, which it swaps for these subclasses while
it is in use (their owners still see a dict and change it as before; nothing is
logged or decided from here).

Every way of changing the dict is overridden: a key set, removed or moved goes into
``dirty``; one that was not in the dict before (or was moved to the end) also goes to
the end of ``inserted``, which so holds the keys the dict appended, in its order. Both
belong to the cache, which empties them. ``dirty`` None: nobody is listening, and a
change costs one attribute test. Reads are the dict's own.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

_MISSING: Any = object()


class _Journal:
    """The overrides, for a dict or an OrderedDict (see the module docstring).

    Each override notes the change inline and calls the base class's own method
    through ``_base`` (set by each subclass): the state changes these maps several
    times per task, and a call to a ``_note`` helper and a ``super()`` each time were
    most of what keeping the read cache warm cost the master under churn."""

    dirty: set[Any] | None = None
    #: None: the order of this dict does not matter to the listener (usage figures)
    inserted: OrderedDict[Any, None] | None = None
    #: the base class (dict or OrderedDict), whose methods do the changes
    _base: Any = dict

    def _note(self, key: Any, inserting: bool) -> None:
        dirty = self.dirty
        if dirty is None:
            return
        dirty.add(key)
        inserted = self.inserted
        if inserting and inserted is not None:
            inserted[key] = None
            inserted.move_to_end(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        dirty = self.dirty
        if dirty is not None:  # as _note(key, key not in self), inline
            dirty.add(key)
            inserted = self.inserted
            if inserted is not None and key not in self:  # type: ignore[operator]
                inserted[key] = None
                inserted.move_to_end(key)
        self._base.__setitem__(self, key, value)

    def __delitem__(self, key: Any) -> None:
        self._base.__delitem__(self, key)
        dirty = self.dirty
        if dirty is not None:
            dirty.add(key)

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        dirty = self.dirty
        if dirty is not None and key in self:  # type: ignore[operator]
            dirty.add(key)
        if default is _MISSING:
            return self._base.pop(self, key)
        return self._base.pop(self, key, default)

    def popitem(self, *args: Any, **kwargs: Any) -> Any:
        key, value = self._base.popitem(self, *args, **kwargs)
        self._note(key, False)
        return key, value

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:  # type: ignore[operator]
            self[key] = default
        return self[key]  # type: ignore[index]

    def update(self, other: Any = (), /, **more: Any) -> None:
        pairs = other.items() if isinstance(other, Mapping) else other
        for key, value in pairs:
            self[key] = value
        for key, value in more.items():
            self[key] = value

    def clear(self) -> None:
        if self.dirty is not None:
            self.dirty.update(self)  # type: ignore[arg-type]
        self._base.clear(self)

    def __ior__(self, other: Any) -> Any:
        self.update(other)
        return self


class JournaledDict(_Journal, dict):  # type: ignore[type-arg]
    """A dict that notes its changes (see the module docstring)."""

    _base = dict


class JournaledOrderedDict(_Journal, OrderedDict):  # type: ignore[type-arg]
    """An OrderedDict that notes its changes; a key moved to the end counts as
    inserted there, one moved to the front as a change of every key's place."""

    _base = OrderedDict
    #: a key was moved to the front: the listener must take the whole order again
    reordered = False

    def move_to_end(self, key: Any, last: bool = True) -> None:
        OrderedDict.move_to_end(self, key, last)
        if self.dirty is not None:
            if last:
                self._note(key, True)
            else:
                self.reordered = True
                self.dirty.add(key)
