"""The store agent: im.timeline → the roaming store in ClickHouse.

Messages go to ``messages`` keyed by (conversation_id, seq); conversation
creation and membership changes to ``conversations`` and ``membership``, so
history reads can check who is a member (a view copies membership into
``membership_by_user``); large groups' membership changes and heads to
``large_groups`` and ``large_group_heads``, for read diffusion. Written in
batches, idempotently, in the order of ``StoreRows.inserts``.
"""

from __future__ import annotations

from typing import Any

from aiokafka import ConsumerRecord

from agents.runtime.sink import ClickHouseSink
from pipeline.log.topics import Topics
from pipeline.model import hops
from pipeline.model.events import TimelineEvent, decode_timeline, limits_from
from pipeline.observe.sensor import Sensor
from pipeline.settings import Settings
from pipeline.store.clickhouse import ClickHouse
from pipeline.store.rows import store_rows


async def write_events(store: ClickHouse, events: list[TimelineEvent]) -> None:
    for insert, rows in store_rows(events).inserts():
        await store.insert(insert.sql, rows)


def sink(
    settings: Settings, topics: Topics, sensor: Sensor | None = None
) -> ClickHouseSink[TimelineEvent]:
    limits = limits_from(settings.pipeline)
    return ClickHouseSink(
        settings,
        name="store",
        topic=topics.timeline,
        dead_letter=topics.dead_letter,
        decode=lambda raw: decode_timeline(raw, limits),
        write=write_events,
        sensor=sensor,
        stamps=stamps,
    )


def stamps(record: ConsumerRecord[Any, Any], event: TimelineEvent) -> bytes:
    """Hop stamps of a timeline event: its send (the command's ts_ms), the log (its
    ts_ms) and the sequencer (the record's timestamp)."""
    return hops.first(event.command.ts_ms, event.ts_ms, record.timestamp)
