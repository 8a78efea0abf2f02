"""Key-value state of one partition of a stateful stage, with its changelog.

A stage reads and writes plain JSON-able values (ints, strings, lists) by
string key. The keys changed since the last commit become the changelog
records written in the stage's Kafka transaction, together with its output and
input offsets. If a transaction fails, the stage throws the partition's state
away and restores it from the changelog. Within a transaction, the changes of
one input record can be undone (``savepoint`` / ``rollback``): the runtime does
that for a record whose output or state could never be written, which goes to
the dead-letter topic instead. Values must be treated as immutable: replace
them, never mutate them in place.

A *set* value (a conversation's members) is a sorted list in memory, but its
changelog holds one record per element, ``<key>\x00<element>`` (a tombstone
when it leaves), so adding or removing one element writes O(1) bytes however
large the set. A set restored from a record of the whole list (as stages wrote
them before) is rewritten element by element at its first change, after a
tombstone for the old record.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, cast

import orjson

_ABSENT = object()
ELEMENT = "\x00"  # between a set's key and an element in its changelog records


class Values(Protocol):
    """Where a store's current values live: a dict (:class:`MemoryValues`), or the
    local disk with a cache (agents/runtime/local_state.py)."""

    whole: set[str]
    """Set keys whose value is a whole-list record, not yet rewritten by element."""

    def get(self, key: str, default: Any = None) -> Any: ...
    def __contains__(self, key: object) -> bool: ...
    def __setitem__(self, key: str, value: Any) -> None: ...
    def pop(self, key: str, default: Any = None) -> Any: ...
    def __len__(self) -> int: ...
    def scan(self, prefix: str) -> Iterator[tuple[str, Any]]: ...
    def committed(self) -> None:
        """The changes since the last call are committed (and saved, if on disk)."""


class MemoryValues(dict[str, Any]):
    def __init__(self) -> None:
        super().__init__()
        self.whole: set[str] = set()

    def scan(self, prefix: str) -> Iterator[tuple[str, Any]]:
        return ((k, v) for k, v in self.items() if k.startswith(prefix))

    def committed(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class _Before:
    """A key as it was at the savepoint."""

    value: Any
    dirty: bool
    elements: dict[str, bool] | None
    whole: bool


class StateStore:
    def __init__(self, sets: tuple[str, ...] = (), values: Values | None = None) -> None:
        self.sets = sets
        """Key prefixes whose values are sets (changelogged by element)."""
        # a dict as it is (its pop and get are the protocol's, typed more narrowly)
        self._data: Values = cast(Values, MemoryValues()) if values is None else values
        self._whole = self._data.whole
        self._dirty: set[str] = set()
        self._elements: dict[str, dict[str, bool]] = {}
        """Set keys changed since the last commit: element → present."""
        self._drop_whole: set[str] = set()
        self._restoring: dict[str, set[str]] = {}
        self._journal: dict[str, _Before] | None = None
        """Since the savepoint: each changed key as it was."""

    def get(self, key: str, default: Any = None) -> Any:
        self._settle()
        return self._data.get(key, default)

    def __contains__(self, key: str) -> bool:
        self._settle()
        return key in self._data

    def __len__(self) -> int:
        self._settle()
        return len(self._data)

    def _remember(self, key: str) -> None:
        if self._journal is None or key in self._journal:
            return
        elements = self._elements.get(key)
        self._journal[key] = _Before(
            self._data.get(key, _ABSENT),
            key in self._dirty,
            None if elements is None else dict(elements),
            key in self._whole,
        )

    def put(self, key: str, value: Any) -> None:
        self._settle()
        self._remember(key)
        self._data[key] = value
        self._dirty.add(key)

    def delete(self, key: str) -> None:
        self._settle()
        if key not in self._data:
            return
        self._remember(key)
        if key.startswith(self.sets) and self.sets:  # a set: every element goes
            self._set_elements(key, self._data.get(key), [])
        else:
            self._dirty.add(key)
        self._data.pop(key)

    def set_replace(self, key: str, elements: list[str]) -> None:
        """Make the set at ``key`` exactly ``elements``."""
        self._settle()
        self._remember(key)
        after = sorted(set(elements))
        self._set_elements(key, self._data.get(key, []), after)
        self._data[key] = after

    def set_add(self, key: str, element: str) -> None:
        self._settle()
        before: list[str] = self._data.get(key, [])
        position = bisect.bisect_left(before, element)
        if position < len(before) and before[position] == element:
            return
        self._remember(key)
        self._set_elements(key, before, None)
        self._data[key] = [*before[:position], element, *before[position:]]
        self._elements[key][element] = True

    def set_discard(self, key: str, element: str) -> None:
        self._settle()
        before: list[str] = self._data.get(key, [])
        position = bisect.bisect_left(before, element)
        if position == len(before) or before[position] != element:
            return
        self._remember(key)
        self._set_elements(key, before, None)
        self._data[key] = [*before[:position], *before[position + 1 :]]
        self._elements[key][element] = False

    def _set_elements(self, key: str, before: list[str], after: list[str] | None) -> None:
        """Note the element changes from ``before`` to ``after`` (None: the caller
        notes them); a set still in its old whole-list form is rewritten in full."""
        changes = self._elements.setdefault(key, {})
        if key in self._whole:
            self._whole.discard(key)
            self._drop_whole.add(key)
            changes.update(dict.fromkeys(before, True))
        if after is None:
            return
        kept, was = set(after), set(before)
        changes.update({e: False for e in before if e not in kept})
        changes.update({e: True for e in after if e not in was})

    def savepoint(self) -> None:
        """Start remembering changes, to undo them with ``rollback``."""
        self._journal = {}

    def since_savepoint(self) -> list[str]:
        """The keys changed since the savepoint."""
        return list(self._journal or ())

    def rollback(self) -> None:
        """Undo every change since the savepoint."""
        for key, before in (self._journal or {}).items():
            if before.value is _ABSENT:
                self._data.pop(key, None)
            else:
                self._data[key] = before.value
            if not before.dirty:
                self._dirty.discard(key)
            if before.elements is None:
                self._elements.pop(key, None)
            else:
                self._elements[key] = before.elements
            if before.whole:
                self._whole.add(key)
                self._drop_whole.discard(key)
        self._journal = None

    def release(self) -> None:
        """Keep the changes since the savepoint; stop remembering."""
        self._journal = None

    def maybe_larger_than(self, key: str, limit: int) -> bool:
        """A cheap pre-check for ``encoded_size``: values hold ids and numbers (under
        1 KiB each), so only a value of more than ``limit // 1024`` items (or chars)
        can encode to more than ``limit`` bytes. A set's records are its elements."""
        if key in self._elements:
            return False
        value = self._data.get(key)
        return isinstance(value, list | dict | str) and len(value) > limit // 1024

    def encoded_size(self, key: str) -> int:
        """Bytes of ``key``'s changelog record (key and value); of a set, its largest."""
        if key in self._elements:
            return max(
                (len(f"{key}{ELEMENT}{e}".encode()) + 1 for e in self._elements[key]), default=0
            )
        value = self._data.get(key)
        return len(key.encode()) + (0 if value is None else len(orjson.dumps(value)))

    def items(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        self._settle()
        return self._data.scan(prefix)

    def changelog(self) -> list[tuple[bytes, bytes | None]]:
        """(key, value) records for the keys changed since the last commit; None deletes.
        An old whole-list record's tombstone comes before the elements that replace it."""
        records: list[tuple[bytes, bytes | None]] = [(k.encode(), None) for k in self._drop_whole]
        for key in self._dirty:
            value = self._data.get(key, _ABSENT)
            records.append((key.encode(), None if value is _ABSENT else orjson.dumps(value)))
        for key, changes in self._elements.items():
            records += [
                (f"{key}{ELEMENT}{element}".encode(), b"1" if present else None)
                for element, present in changes.items()
            ]
        return records

    def commit(self) -> None:
        self._data.committed()
        self._dirty.clear()
        self._elements.clear()
        self._drop_whole.clear()

    def restore(self, key: bytes, value: bytes | None) -> None:
        """Apply one changelog record while restoring (nothing becomes dirty)."""
        name = key.decode()
        if ELEMENT in name:
            name, element = name.split(ELEMENT, 1)
            members = self._restoring.get(name)
            if members is None:
                members = self._restoring[name] = set(self._data.get(name, ()))
            if value is None:
                members.discard(element)
            else:
                members.add(element)
            return
        self._settle()
        self._whole.discard(name)
        if value is None:
            self._data.pop(name, None)
        else:
            self._data[name] = orjson.loads(value)
            if self.sets and name.startswith(self.sets):
                self._whole.add(name)

    def _settle(self) -> None:
        """Turn the sets being restored into sorted lists (restore is done with them
        once anything else is asked)."""
        if not self._restoring:
            return
        for name, members in self._restoring.items():
            if members:
                self._data[name] = sorted(members)
            else:
                self._data.pop(name, None)
        self._restoring.clear()
