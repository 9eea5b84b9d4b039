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
the end of ``inserted``, which so holds the keys the dict appended and still holds, in
its order (a key removed is taken out of it again); one removed or moved to the end
also goes into ``gone``: it left its place. The listener's order is then its own less
``gone``, plus ``inserted``: set operations on keys whose hashes the set and dicts
keep, where looking each changed key up at read time (a tuple's hash is worked out
afresh, its objects long out of the CPU's caches) cost 20-40 ms a read under churn.
All three belong to the cache, which empties them. ``dirty`` None: nobody is
listening, and a change costs one attribute test. Reads are the dict's own.
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
    #: None: the order of this dict does not matter to the listener (usage figures);
    #: a plain dict (in order of insertion), each of its keys in this dict
    inserted: dict[Any, None] | None = None
    #: keys that left their place (removed, or moved to the end); None with ``inserted``
    gone: set[Any] | None = None
    #: the base class (dict or OrderedDict), whose methods do the changes
    _base: Any = dict

    def _note(self, key: Any, inserting: bool) -> None:
        dirty = self.dirty
        if dirty is None:
            return
        dirty.add(key)
        inserted = self.inserted
        if inserted is not None:
            # removed, or moved to the end: it left its place either way
            self.gone.add(key)  # type: ignore[union-attr]
            inserted.pop(key, None)
            if inserting:
                inserted[key] = None

    def __setitem__(self, key: Any, value: Any) -> None:
        dirty = self.dirty
        if dirty is not None:  # as _note(key, key not in self), inline
            dirty.add(key)
            inserted = self.inserted
            if inserted is not None and key not in self:  # type: ignore[operator]
                inserted[key] = None  # not in ``inserted``: it holds keys of the dict
        self._base.__setitem__(self, key, value)

    def __delitem__(self, key: Any) -> None:
        self._base.__delitem__(self, key)
        dirty = self.dirty
        if dirty is not None:  # as _note(key, False), inline
            dirty.add(key)
            inserted = self.inserted
            if inserted is not None:
                self.gone.add(key)  # type: ignore[union-attr]
                inserted.pop(key, None)

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        dirty = self.dirty
        if dirty is not None and key in self:  # type: ignore[operator]
            dirty.add(key)  # as _note(key, False), inline
            inserted = self.inserted
            if inserted is not None:
                self.gone.add(key)  # type: ignore[union-attr]
                inserted.pop(key, None)
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
            if self.inserted is not None:
                self.gone.update(self)  # type: ignore[union-attr, arg-type]
                self.inserted.clear()
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
