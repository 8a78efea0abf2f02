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
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

_ABSENT = object()


class StateStore:
    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self._dirty: set[str] = set()
        self._journal: dict[str, tuple[Any, bool]] | None = None
        """Since the savepoint: each changed key's value before it (or _ABSENT) and
        whether it was dirty then."""

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def put(self, key: str, value: Any) -> None:
        if self._journal is not None and key not in self._journal:
            self._journal[key] = (self._data.get(key, _ABSENT), key in self._dirty)
        self._data[key] = value
        self._dirty.add(key)

    def delete(self, key: str) -> None:
        if key not in self._data:
            return
        if self._journal is not None and key not in self._journal:
            self._journal[key] = (self._data[key], key in self._dirty)
        del self._data[key]
        self._dirty.add(key)

    def savepoint(self) -> None:
        """Start remembering changes, to undo them with ``rollback``."""
        self._journal = {}

    def since_savepoint(self) -> list[str]:
        """The keys changed since the savepoint."""
        return list(self._journal or ())

    def rollback(self) -> None:
        """Undo every change since the savepoint."""
        for key, (before, was_dirty) in (self._journal or {}).items():
            if before is _ABSENT:
                self._data.pop(key, None)
            else:
                self._data[key] = before
            if not was_dirty:
                self._dirty.discard(key)
        self._journal = None

    def release(self) -> None:
        """Keep the changes since the savepoint; stop remembering."""
        self._journal = None

    def maybe_larger_than(self, key: str, limit: int) -> bool:
        """A cheap pre-check for ``encoded_size``: values hold ids and numbers (under
        1 KiB each), so only a value of more than ``limit // 1024`` items (or chars)
        can encode to more than ``limit`` bytes."""
        value = self._data.get(key)
        return isinstance(value, list | dict | str) and len(value) > limit // 1024

    def encoded_size(self, key: str) -> int:
        """Bytes of ``key``'s changelog record (key and value)."""
        value = self._data.get(key)
        return len(key.encode()) + (0 if value is None else len(orjson.dumps(value)))

    def items(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        return ((k, v) for k, v in self._data.items() if k.startswith(prefix))

    def changelog(self) -> list[tuple[bytes, bytes | None]]:
        """(key, value) records for the keys changed since the last commit; None deletes."""
        return [
            (key.encode(), orjson.dumps(self._data[key]) if key in self._data else None)
            for key in self._dirty
        ]

    def commit(self) -> None:
        self._dirty.clear()

    def restore(self, key: bytes, value: bytes | None) -> None:
        """Apply one changelog record while restoring (nothing becomes dirty)."""
        name = key.decode()
        if value is None:
            self._data.pop(name, None)
        else:
            self._data[name] = orjson.loads(value)
