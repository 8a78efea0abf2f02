"""Key-value state of one partition of a stateful stage, with its changelog.

A stage reads and writes plain JSON-able values (ints, strings, lists) by
string key. The keys changed since the last commit become the changelog
records written in the stage's Kafka transaction, together with its output and
input offsets. If a transaction fails, the stage throws the partition's state
away and restores it from the changelog, so there is no undo here. Values must
be treated as immutable: replace them, never mutate them in place.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson


class StateStore:
    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self._dirty: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def put(self, key: str, value: Any) -> None:
        self._data[key] = value
        self._dirty.add(key)

    def delete(self, key: str) -> None:
        if self._data.pop(key, None) is not None:
            self._dirty.add(key)

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
