"""The store agent: im.timeline → the roaming store in ClickHouse.

Messages go to ``messages`` keyed by (conversation_id, seq); conversation
creation and membership changes to ``conversations`` and ``membership``, so
history reads can check who is a member. Written in batches, idempotently.
"""

from __future__ import annotations

from agents.sink import ClickHouseSink
from pipeline.clickhouse import ClickHouse
from pipeline.events import TimelineEvent, decode_timeline, limits_from
from pipeline.queries import INSERT_CONVERSATIONS, INSERT_MEMBERSHIP, INSERT_MESSAGES
from pipeline.rows import store_rows
from pipeline.settings import Settings
from pipeline.topics import Topics


async def write_events(store: ClickHouse, events: list[TimelineEvent]) -> None:
    rows = store_rows(events)
    await store.insert(INSERT_CONVERSATIONS.sql, rows.conversations)
    await store.insert(INSERT_MEMBERSHIP.sql, rows.membership)
    await store.insert(INSERT_MESSAGES.sql, rows.messages)


def sink(settings: Settings, topics: Topics) -> ClickHouseSink[TimelineEvent]:
    limits = limits_from(settings)
    return ClickHouseSink(
        settings,
        name="store",
        topic=topics.timeline,
        dead_letter=topics.dead_letter,
        decode=lambda raw: decode_timeline(raw, limits),
        write=write_events,
    )
