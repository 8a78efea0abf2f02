"""Reading sync timelines: pull after a cursor, cursor acks, expiry, retention.

A pull page never shows a hole: it holds the entries ``after+1, after+2, ...``
up to the first one that is not (yet) in the store, at most ``limit``. A page
that stops early is retried later, never skipped. A cursor whose next entry
was dropped by retention gets :class:`~pipeline.errors.CursorExpiredError`:
the device re-syncs from the roaming store and continues from the head.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.errors import CursorExpiredError, ValidationError
from pipeline.model.events import InboxEntry, TimelineEvent, entry_columns
from pipeline.store import queries
from pipeline.store.clickhouse import ClickHouse

MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class SyncEntry:
    """One entry of a user's sync timeline as devices see it (pull and push alike)."""

    sync_seq: int
    conversation_id: str
    event_no: int
    seq: int
    kind: str
    event_id: str
    sender_id: str
    subject_id: str
    client_msg_id: str
    content_type: str
    body: str
    ts_ms: int
    large: bool = False
    """A large group's membership change: its messages after ``seq`` are read
    diffused (pulled in ``groups``, pushed as group messages), not in this timeline."""

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> SyncEntry:
        values = list(row)
        values[5] = str(values[5])  # UUID
        return cls(*values)

    @classmethod
    def from_inbox(cls, entry: InboxEntry) -> SyncEntry:
        e = entry.event
        large = isinstance(e, TimelineEvent) and e.large
        return cls(entry.sync_seq, *entry_columns(e), entry.ts_ms, large)

    def to_json(self) -> dict[str, Any]:
        """The entry as a dict (orjson also encodes the dataclass itself, faster)."""
        return {name: getattr(self, name) for name in _FIELDS}


_FIELDS = tuple(f.name for f in fields(SyncEntry))


@dataclass(frozen=True, slots=True)
class SyncPage:
    entries: list[SyncEntry]
    cursor: int
    head: int

    @property
    def caught_up(self) -> bool:
        return self.cursor >= self.head


def contiguous(after: int, entries: Iterable[SyncEntry]) -> list[SyncEntry]:
    """The entries after ``after`` up to the first missing sync_seq (never past a hole)."""
    run = []
    expected = after + 1
    for entry in entries:
        if entry.sync_seq != expected:
            break
        run.append(entry)
        expected += 1
    return run


async def pull(
    store: ClickHouse, user_id: str, after: int, limit: int, retention_days: int
) -> SyncPage:
    if after < 0:
        raise ValidationError("cursor 'after' must be >= 0")
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit must be between 1 and {MAX_PAGE}")
    rows, head = await asyncio.gather(  # two queries at once: a pull costs one round trip
        store.execute(
            queries.SYNC_RANGE, {"user_id": user_id, "after": after, "high": after + limit}
        ),
        _head(store, user_id),
    )
    entries = await mark_large(store, contiguous(after, (SyncEntry.from_row(r) for r in rows)))
    if not entries and head > after:
        await _check_not_expired(store, user_id, after, head, retention_days)
    cursor = entries[-1].sync_seq if entries else after
    return SyncPage(entries, cursor, max(head, cursor))


async def _head(store: ClickHouse, user_id: str) -> int:
    rows = await store.execute(queries.SYNC_HEAD, {"user_id": user_id})
    return int(rows[0][0]) if rows else 0


async def _check_not_expired(
    store: ClickHouse, user_id: str, after: int, head: int, retention_days: int
) -> None:
    floor, count = (await store.execute(queries.SYNC_FLOOR, {"user_id": user_id}))[0]
    # head >= floor: every insert up to the one that wrote ``floor`` has finished,
    # so entries below the floor are gone, not still on their way
    if count == 0 or (floor > after + 1 and head >= floor):
        raise CursorExpiredError(
            f"cursor {after} is older than the sync retention ({retention_days} days): "
            "re-sync from history, then continue from the head",
            head=head,
        )


async def ack(store: ClickHouse, user_id: str, device_id: str, cursor: int) -> None:
    """Store a device's cursor (the last sync_seq it applied); it only moves forward."""
    if cursor < 0:
        raise ValidationError("cursor must be >= 0")
    await store.insert(
        queries.INSERT_DEVICE_CURSOR.sql, [(user_id, device_id, cursor, int(time.time() * 1000))]
    )


async def device_cursors(store: ClickHouse, user_id: str) -> dict[str, int]:
    rows = await store.execute(queries.DEVICE_CURSORS, {"user_id": user_id})
    return {device: int(cursor) for device, cursor, _ in rows}


def expired_days(partition_ids: Iterable[str], retention_days: int, now_s: float) -> list[str]:
    """The day partitions (YYYYMMDD) wholly older than the sync lifetime at ``now_s``."""
    cutoff = (datetime.fromtimestamp(now_s, UTC) - timedelta(days=retention_days)).date()
    limit = cutoff.strftime("%Y%m%d")
    return sorted(p for p in partition_ids if p.isdigit() and len(p) == 8 and p < limit)


async def drop_expired(store: ClickHouse, retention_days: int, now_s: float) -> list[str]:
    rows = await store.execute(queries.SYNC_PARTITIONS, {"database": store.database})
    doomed = expired_days((r[0] for r in rows), retention_days, now_s)
    for partition_id in doomed:
        await store.execute(queries.DROP_SYNC_PARTITION, {"partition_id": partition_id})
    return doomed


async def mark_large(store: ClickHouse, entries: list[SyncEntry]) -> list[SyncEntry]:
    """Pulled sync entries with ``large`` set as it was on their event: a large
    group's membership changes from the one where it became large on."""
    convs = tuple(sorted({e.conversation_id for e in entries if e.kind != "message"}))
    if not convs:
        return entries
    rows = await store.execute(queries.LARGE_GROUPS_IN, {"conversation_ids": convs})
    since = {conv: int(event_no) for conv, event_no, _ in rows}
    return [
        replace(e, large=True)
        if e.kind != "message" and e.event_no >= since.get(e.conversation_id, 2**64)
        else e
        for e in entries
    ]
