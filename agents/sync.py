"""The sync agent: per-user sync timelines.

Two loops and a chore:

* the sync stage (im.sync → im.inbox): gives every delivery its user's next
  dense ``sync_seq`` (see pipeline/syncing.py), exactly once;
* the sync store (im.inbox → ClickHouse ``sync_timeline`` and ``sync_heads``):
  the timeline devices pull from, written idempotently by (user, sync_seq);
* retention: every ``retention_check_s`` it drops the ``sync_timeline`` days
  older than the sync lifetime (the topics expire by their ``retention.ms``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiokafka import ConsumerRecord

from agents.sink import ClickHouseSink
from agents.transactional import Output, StageSpec, dead_letter
from pipeline import sync_timeline
from pipeline.clickhouse import ClickHouse
from pipeline.errors import EventError, StoreUnavailableError
from pipeline.events import InboxEntry, limits_from
from pipeline.framing import EventCache, inbox_record
from pipeline.rows import SyncRows
from pipeline.settings import Settings
from pipeline.state import StateStore
from pipeline.syncing import SyncSequencer
from pipeline.topics import Topics

log = logging.getLogger(__name__)
STAGE = "sync"
RETENTION_CHECK_S = 3600.0


class SyncProcessor:
    def __init__(self, settings: Settings, topics: Topics, state: StateStore) -> None:
        self.events = EventCache(limits_from(settings))
        self.topics = topics
        self.sequencer = SyncSequencer(state)

    def process(self, record: ConsumerRecord[Any, Any], out: Output) -> None:
        try:
            delivery, event = self.events.delivery(record.value)
        except EventError as exc:
            dead_letter(out, self.topics.dead_letter.name, record, STAGE, str(exc))
            return
        if record.key != delivery.user_id.encode():
            dead_letter(
                out,
                self.topics.dead_letter.name,
                record,
                STAGE,
                "record key is not the delivery's user_id",
            )
            return
        entry = self.sequencer.assign(delivery)
        out.send(
            self.topics.inbox.name,
            record.key,
            inbox_record(entry.user_id, entry.sync_seq, entry.ts_ms, event),
        )

    def end_batch(self, now_ms: int, out: Output) -> None:
        return None


def stage(settings: Settings, topics: Topics) -> StageSpec:
    return StageSpec(
        name=STAGE,
        input=topics.sync,
        changelog=topics.sync_state,
        dead_letter=topics.dead_letter,
        make_processor=lambda state: SyncProcessor(settings, topics, state),
    )


async def write_entries(store: ClickHouse, entries: list[InboxEntry]) -> None:
    rows = SyncRows()
    for entry in entries:
        rows.add(entry)
    for insert, values in rows.inserts():
        await store.insert(insert.sql, values)


def store_sink(settings: Settings, topics: Topics) -> ClickHouseSink[InboxEntry]:
    limits = limits_from(settings)
    return ClickHouseSink(
        settings,
        name="sync-store",
        topic=topics.inbox,
        dead_letter=topics.dead_letter,
        decode=EventCache(limits).inbox,
        write=write_entries,
    )


class Retention:
    """Drops expired sync_timeline days at start and every ``every_s`` until stopped."""

    def __init__(self, settings: Settings, every_s: float = RETENTION_CHECK_S) -> None:
        self.settings = settings
        self.every_s = every_s
        self.dropped: list[str] = []
        self.last_run_ms = 0

    def status(self) -> dict[str, Any]:
        return {"dropped_days": self.dropped, "last_run_ms": self.last_run_ms}

    async def run(self, stopping: asyncio.Event) -> None:
        store = ClickHouse(self.settings, size=1)
        try:
            while not stopping.is_set():
                await self.once(store)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), self.every_s)
        finally:
            store.close()

    async def once(self, store: ClickHouse) -> None:
        try:
            dropped = await sync_timeline.drop_expired(
                store, self.settings.pipeline.sync_retention_days, time.time()
            )
        except StoreUnavailableError as exc:
            log.warning("retention: ClickHouse unavailable (%s); next try later", exc)
            return
        self.last_run_ms = int(time.time() * 1000)
        if dropped:
            self.dropped += dropped
            log.info("retention: dropped sync_timeline days %s", ", ".join(dropped))
