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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson
from rocksdict import Options, Rdict, WriteBatch

from pipeline.errors import ImstreamError

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

    def records(self) -> Iterable[Record]:
        """Every (key, value) it holds, in key order (the checkpoint left out)."""
        assert self._db is not None
        for key, value in self._db.items():
            if key != CHECKPOINT_KEY:
                assert isinstance(key, bytes)
                assert isinstance(value, bytes)
                yield key, value

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
