"""``imstream rebuild``: the ClickHouse projections again, replayed from the log.

    roaming store   messages, conversations, membership,  <- im.timeline (kept forever)
                    large_groups, large_group_heads
                    (membership_by_user: its view)
    sync tables     sync_timeline, sync_heads             <- im.inbox (the sync lifetime)

The rows come from pipeline/store/rows.py, the very functions the store and
sync-store agents write with, so a rebuilt table holds the rows the original
held. Sync tables are not recomputed from the timeline: the order of a user's
sync_seqs depends on how the partitions of im.sync interleaved live, and
im.inbox is where that order was recorded. The rollups of migration 0003 fill
themselves through their materialized views as the rows go in.

A rebuild never writes over data. It writes only into a database whose
derived tables (DERIVED) are empty or missing:

    imstream rebuild                  the configured database (say, after it was dropped)
    imstream rebuild --into NAME      another database
    imstream rebuild --replace        first move the derived tables of the target
                                      to NAME_backup_<UTC time>, then rebuild

What the log no longer holds cannot come back: sync entries older than the
sync lifetime (im.inbox retention), the sync heads of users without an entry
in that window (their devices then read as caught up) and the fan-out rollup
of those days. ``--replace`` keeps all of it in the backup database.
Read markers, mutes and pins (migration 0007) come back from the sync
entries, so only those within the sync lifetime: a user's older markers are
in the backup, and their unread counts read high until they next mark read.
``device_cursors`` and ``device_group_cursors`` are not derived from the log
and stay where they are; nor is ``read_latency_hours`` (the retention agent
recomputes only its last hours, so a rebuild keeps the older ones as they are).
Stop the store and sync-store agents during ``--replace``: an insert that finds
its table moved fails and their worker exits; it loses nothing (the batch is
replayed when it restarts), but it needs restarting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from pipeline.errors import EventError, RefusedError
from pipeline.log import kafka
from pipeline.log.topics import TopicSpec, catalogue
from pipeline.model.events import decode_inbox, decode_timeline, limits_from
from pipeline.ops.progress import Progress
from pipeline.settings import Settings
from pipeline.store import queries, schema
from pipeline.store.clickhouse import ClickHouse, client, create_database, drop_table, move_tables
from pipeline.store.rows import StoreRows, SyncRows

DERIVED = (
    "messages",
    "conversations",
    "membership",
    "membership_by_user",
    "large_groups",
    "large_group_heads",
    "sync_timeline",
    "sync_heads",
    "conversation_days",
    "sender_days",
    "user_sync_days",
    "conversation_heads",
    "user_conversations",
    "read_points",
)
FLUSH_ROWS = 20_000
FETCH_RECORDS = 5_000


@dataclass
class Outcome:
    database: str
    backup: str | None = None
    conversations: int = 0
    messages: int = 0
    membership: int = 0
    sync_entries: int = 0
    users: set[str] = field(default_factory=set)
    skipped: int = 0

    def summary(self) -> list[str]:
        lines = [
            f"rebuilt database {self.database}:",
            f"  from the timeline: {self.messages} messages, {self.conversations} "
            f"conversations, {self.membership} membership changes",
            f"  from the inbox: {self.sync_entries} sync entries of {len(self.users)} users",
        ]
        if self.skipped:
            lines.append(f"  skipped {self.skipped} records that are not valid events")
        if self.backup:
            lines.append(f"  the previous tables are kept in database {self.backup}")
        return lines


async def rebuild(
    settings: Settings, progress: Progress, *, into: str | None = None, replace: bool = False
) -> Outcome:
    target = into or settings.clickhouse.database
    if not target.isidentifier() or target in ("system", "default"):
        raise RefusedError(f"{target!r} cannot be rebuilt into: name a database of your own")
    outcome = Outcome(target)
    held = await asyncio.to_thread(rows_held, settings, target)
    if held and not replace:
        listed = ", ".join(f"{table} ({rows} rows)" for table, rows in sorted(held.items()))
        raise RefusedError(
            f"database {target} already holds {listed}. Rebuild into a new database with "
            "--into NAME, or pass --replace to move these tables to a backup database first"
        )
    if held:
        outcome.backup = await asyncio.to_thread(move_aside, settings, target)
    await asyncio.to_thread(schema.migrate, settings, target, rerun=True)
    store = ClickHouse(settings, target, size=1)
    try:
        await replay_store(settings, store, progress, outcome)
        await replay_sync(settings, store, progress, outcome)
    finally:
        store.close()
    return outcome


def rows_held(settings: Settings, database: str) -> dict[str, int]:
    """Rows in the derived tables of ``database`` (none if it does not exist)."""
    conn = client(settings, "default")
    try:
        rows = conn.execute(queries.ROWS_IN, {"database": database})
    finally:
        conn.disconnect()
    return {table: int(n) for table, n, _ in rows if table in DERIVED and n}


def move_aside(settings: Settings, database: str) -> str:
    """Move the derived tables to a new backup database; return its name."""
    backup = f"{database}_backup_{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
    conn = client(settings, "default")
    try:
        tables = conn.execute(queries.TABLES_IN, {"database": database})
    finally:
        conn.disconnect()
    create_database(settings, backup)
    # the views name their source and target tables: drop them (they hold no
    # data), the migrations create them again next to the new tables
    for name, engine in tables:
        if engine == "MaterializedView":
            drop_table(settings, database, name)
    move_tables(settings, database, backup, [name for name, _ in tables if name in DERIVED])
    return backup


async def replay_store(
    settings: Settings, store: ClickHouse, progress: Progress, outcome: Outcome
) -> None:
    limits = limits_from(settings.pipeline)
    rows = StoreRows()

    async def flush() -> None:
        nonlocal rows
        for insert, values in rows.inserts():
            await store.insert(insert.sql, values)
        outcome.conversations += len(rows.conversations)
        outcome.membership += len(rows.membership)
        outcome.messages += len(rows.messages)
        rows = StoreRows()

    async def take(values: list[bytes]) -> None:
        for value in values:
            try:
                rows.add(decode_timeline(value, limits))
            except EventError:
                outcome.skipped += 1
        if len(rows) >= FLUSH_ROWS:
            await flush()

    await replay(settings, catalogue(settings).timeline, progress, take)
    await flush()


async def replay_sync(
    settings: Settings, store: ClickHouse, progress: Progress, outcome: Outcome
) -> None:
    limits = limits_from(settings.pipeline)
    rows = SyncRows()

    async def flush() -> None:
        nonlocal rows
        for insert, values in rows.inserts():
            await store.insert(insert.sql, values)
        outcome.sync_entries += len(rows.timeline)
        outcome.users.update(rows.heads)
        rows = SyncRows()

    async def take(values: list[bytes]) -> None:
        for value in values:
            try:
                rows.add(decode_inbox(value, limits))
            except EventError:
                outcome.skipped += 1
        if len(rows) >= FLUSH_ROWS:
            await flush()

    await replay(settings, catalogue(settings).inbox, progress, take)
    await flush()


async def replay(
    settings: Settings,
    topic: TopicSpec,
    progress: Progress,
    take: Callable[[list[bytes]], Awaitable[None]],
) -> None:
    """Hand every committed record of ``topic`` to ``take``, in batches, each
    partition in order, up to the end offsets as they were at the start."""
    consumer = kafka.consumer(settings)
    tps = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
    consumer.assign(tps)
    await consumer.start()
    try:
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        progress.start(topic.name, sum(end[tp] - begin[tp] for tp in tps))
        pending = {tp for tp in tps if end[tp] > begin[tp]}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=1000, max_records=FETCH_RECORDS)
            await take([r.value or b"" for records in batch.values() for r in records])
            positions = {tp: min(await consumer.position(tp), end[tp]) for tp in tps}
            pending = {tp for tp in pending if positions[tp] < end[tp]}
            progress.update(sum(positions[tp] - begin[tp] for tp in tps))
        progress.finish()
    finally:
        await consumer.stop()
