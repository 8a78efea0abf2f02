"""A partition's state on local disk, and the changelog offset it reflects.

The local store (RocksDB, through rocksdict) is a compacted copy of one
partition of a stage's changelog: the same keys, the latest value of each (a
tombstone deletes), and a checkpoint saying up to which changelog offset it is
complete and which record stands just before that offset. A stage writes to it
after each committed transaction (never before: what it holds is always
committed), so opening a partition loads it and replays only the changelog past
the checkpoint, instead of all of it.

The checkpoint is trusted only if the changelog still has, at ``offset - 1``,
the record it names (same key, same value digest): a changelog recreated under
the same name (a wiped broker), or one compacted past that record, sends the
stage back to a full restore, which rewrites the local store. So is a
checkpoint older than the changelog's tombstone retention, since a tombstone
past it may be gone. Losing the local store only ever costs time.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from rocksdict import Options, Rdict, WriteBatch

from pipeline.errors import ImstreamError
from pipeline.model.state import ELEMENT

CHECKPOINT_KEY = b"\x00imstream.checkpoint"  # state keys never start with NUL
# Kafka's default delete.retention.ms is a day: a tombstone younger than that is
# still in the changelog, so a checkpoint younger than this misses none
MAX_CHECKPOINT_AGE_MS = 20 * 3600 * 1000

Record = tuple[bytes, bytes | None]


class LocalStateBusy(ImstreamError):
    """The local store is open elsewhere (its previous owner has not let go yet)."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    offset: int
    """The changelog offset after the last record the store holds."""
    key: bytes
    digest: str
    saved_ms: int

    def names(self, key: bytes | None, value: bytes | None) -> bool:
        """Whether (key, value) is the record at ``offset - 1`` this checkpoint names."""
        return key == self.key and digest(value) == self.digest

    @property
    def fresh(self) -> bool:
        return int(time.time() * 1000) - self.saved_ms < MAX_CHECKPOINT_AGE_MS


def digest(value: bytes | None) -> str:
    return "" if value is None else hashlib.blake2b(value, digest_size=16).hexdigest()


class LocalState:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: Rdict | None = None

    def open(self) -> Checkpoint | None:
        """Open (or create) the store; its checkpoint, if it has one."""
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self._db = Rdict(str(self.path), options=Options(raw_mode=True))
        except Exception as exc:  # rocksdict raises a bare Exception for a held lock
            raise LocalStateBusy(f"local state {self.path}: {exc}") from exc
        raw = self._db.get(CHECKPOINT_KEY)
        if raw is None:
            return None
        data = orjson.loads(raw)
        return Checkpoint(data["offset"], bytes.fromhex(data["key"]), data["digest"], data["ms"])

    def get(self, key: bytes) -> bytes | None:
        assert self._db is not None
        value = self._db.get(key)
        assert value is None or isinstance(value, bytes)  # raw mode
        return value

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) of every key that starts with ``prefix``, in key order."""
        assert self._db is not None
        it = self._db.iter()
        it.seek(prefix)
        while it.valid():
            key = it.key()
            if not key.startswith(prefix):
                break
            yield key, it.value()
            it.next()

    def estimated_keys(self) -> int:
        assert self._db is not None
        return int(self._db.property_int_value("rocksdb.estimate-num-keys") or 0)

    def wipe(self) -> None:
        """Forget everything (a full restore rewrites it)."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)
        self.open()

    def save(self, records: list[Record], next_offset: int) -> None:
        """Apply changelog records (in changelog order) that end just before
        ``next_offset``, and move the checkpoint there, atomically."""
        if not records:
            return
        assert self._db is not None
        batch = WriteBatch(raw_mode=True)
        for key, value in records:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        last_key, last_value = records[-1]
        checkpoint = {
            "offset": next_offset,
            "key": last_key.hex(),
            "digest": digest(last_value),
            "ms": int(time.time() * 1000),
        }
        batch.put(CHECKPOINT_KEY, orjson.dumps(checkpoint))
        self._db.write(batch)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


_MISSING = object()
_GONE = object()  # known absent (cached too: most dedupe lookups miss)
CACHE_ENTRIES = 50_000
ELEMENT_BYTES = ELEMENT.encode()


class DiskValues:
    """A partition's state values read from its local store, for a
    :class:`~pipeline.model.state.StateStore` (the ``Values`` protocol): changes
    since the last commit in memory, then a cache of ``CACHE_ENTRIES`` committed
    values, then the disk. The runtime saves each committed transaction's
    changelog records to the store before calling ``committed``, so the disk and
    the cache always agree. State larger than memory works: only the cache and
    the uncommitted changes are held."""

    def __init__(self, local: LocalState, sets: tuple[str, ...]) -> None:
        self.local = local
        self.sets = sets
        self.whole: set[str] = set()
        self._changed: dict[str, Any] = {}
        self._cache: OrderedDict[str, Any] = OrderedDict()

    def get(self, key: str, default: Any = None) -> Any:
        value = self._changed.get(key, _MISSING)
        if value is _MISSING:
            value = self._cache.get(key, _MISSING)
            if value is _MISSING:
                value = self._load(key)
                self._cache[key] = value
                if len(self._cache) > CACHE_ENTRIES:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(key)
        return default if value is _GONE else value

    def _load(self, key: str) -> Any:
        name = key.encode()
        is_set = bool(self.sets) and key.startswith(self.sets)
        if is_set:
            prefix = name + ELEMENT_BYTES
            members = [k[len(prefix) :].decode() for k, _ in self.local.scan(prefix)]
            if members:
                return members  # in key order: sorted
        raw = self.local.get(name)
        if raw is None:
            return _GONE
        if is_set:
            self.whole.add(key)  # written whole, before sets went by element
        return orjson.loads(raw)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key, _GONE) is not _GONE

    def __setitem__(self, key: str, value: Any) -> None:
        self._changed[key] = value

    def pop(self, key: str, default: Any = None) -> Any:
        value = self.get(key, default)
        self._changed[key] = _GONE
        return value

    def __len__(self) -> int:
        """Roughly (RocksDB's estimate, plus what is not saved yet)."""
        return self.local.estimated_keys() + len(self._changed)

    def scan(self, prefix: str) -> Iterator[tuple[str, Any]]:
        seen = set()
        for raw, _ in list(self.local.scan(prefix.encode())):
            key = raw.decode().split(ELEMENT, 1)[0]
            if key not in seen:
                seen.add(key)
                value = self.get(key, _GONE)
                if value is not _GONE:
                    yield key, value
        for key, value in list(self._changed.items()):
            if key.startswith(prefix) and key not in seen and value is not _GONE:
                yield key, value

    def committed(self) -> None:
        for key, value in self._changed.items():
            self._cache[key] = value
            self._cache.move_to_end(key)
        self._changed.clear()
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
