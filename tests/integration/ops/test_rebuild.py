"""``imstream rebuild``: the ClickHouse tables again from the log, identical,
and never over data without being asked."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.ops import reports
from pipeline.read import sync_timeline
from pipeline.sdk.producer import Producer
from pipeline.settings import Settings
from pipeline.store import clickhouse
from pipeline.store.clickhouse import ClickHouse
from tests.conftest import unique_name
from tests.support import converged, imstream, running_worker
from tests.traffic import publish, script

SNAPSHOT = {
    "messages": "SELECT DISTINCT * FROM messages ORDER BY conversation_id, seq",
    "conversations": "SELECT DISTINCT * FROM conversations ORDER BY conversation_id",
    "membership": "SELECT DISTINCT * FROM membership ORDER BY conversation_id, event_no, user_id",
    "membership_by_user": "SELECT DISTINCT * FROM membership_by_user"
    " ORDER BY user_id, conversation_id, event_no",
    "large_groups": "SELECT DISTINCT * FROM large_groups ORDER BY conversation_id, event_no",
    "large_group_heads": "SELECT conversation_id, max(seq), max(event_no) FROM large_group_heads"
    " GROUP BY conversation_id ORDER BY conversation_id",
    "sync_timeline": "SELECT DISTINCT * FROM sync_timeline ORDER BY user_id, sync_seq",
    # a sink writes a head per batch; what counts is the highest
    "sync_heads": "SELECT user_id, max(head) FROM sync_heads GROUP BY user_id ORDER BY user_id",
    "conversation_days": "SELECT day, conversation_id, minMerge(first_seq), maxMerge(last_seq)"
    " FROM conversation_days GROUP BY day, conversation_id ORDER BY day, conversation_id",
    "sender_days": "SELECT day, uniqExactMerge(senders) FROM sender_days GROUP BY day ORDER BY day",
    "user_sync_days": "SELECT day, user_id, minMerge(first_sync_seq), maxMerge(last_sync_seq)"
    " FROM user_sync_days GROUP BY day, user_id ORDER BY day, user_id",
}


def snapshot(settings: Settings, database: str | None = None) -> dict[str, list[Any]]:
    store = ClickHouse(settings, database, size=1)
    try:
        return {table: store.execute_sync(sql) for table, sql in SNAPSHOT.items()}
    finally:
        store.close()


@pytest.fixture
def scratch(settings: Settings) -> Iterator[list[str]]:
    """Names of databases a test creates besides its own; dropped afterwards."""
    created: list[str] = []
    yield created
    for name in created:
        clickhouse.drop_database(settings, name)


async def produce(settings: Settings) -> int:
    model = script(seed=11, messages=120)
    async with running_worker(settings), Producer(settings) as producer:
        await publish(producer, model)
        report = await converged(settings, model.accepted)
    assert report.ok, report.summary()
    return model.messages


async def test_a_dropped_store_comes_back_identical(settings: Settings) -> None:
    sent = await produce(settings)
    before = snapshot(settings)
    assert len(before["messages"]) == sent
    clickhouse.drop_database(settings, settings.clickhouse.database)

    result = imstream(settings, "rebuild")
    assert result.returncode == 0, result.stderr
    assert f"{sent} messages" in result.stdout
    assert "im.timeline [" in result.stderr
    assert "100%" in result.stderr  # the progress bar got to the end
    assert "Traceback" not in result.stderr

    assert snapshot(settings) == before
    report = await converged(settings, within=5)
    assert report.ok, report.summary()


async def test_rebuild_never_writes_over_data(settings: Settings, scratch: list[str]) -> None:
    await produce(settings)
    before = snapshot(settings)
    store = ClickHouse(settings, size=1)
    await sync_timeline.ack(store, "u00", "phone", 3)
    store.close()

    refused = imstream(settings, "rebuild")
    assert refused.returncode == 2
    assert f"database {settings.clickhouse.database} already holds" in refused.stderr
    assert "--into NAME" in refused.stderr
    assert snapshot(settings) == before

    other = unique_name("rb")
    scratch.append(other)
    into = imstream(settings, "rebuild", "--into", other)
    assert into.returncode == 0, into.stderr
    assert snapshot(settings, other) == before
    assert imstream(settings, "rebuild", "--into", other).returncode == 2  # not twice

    replaced = imstream(settings, "rebuild", "--replace")
    assert replaced.returncode == 0, replaced.stderr
    found = re.search(r"kept in database (\w+)", replaced.stdout)
    assert found, replaced.stdout
    scratch.append(found[1])
    assert snapshot(settings) == before
    assert snapshot(settings, found[1]) == before  # the previous tables, moved, not dropped
    store = ClickHouse(settings, size=1)
    assert await sync_timeline.device_cursors(store, "u00") == {"phone": 3}  # stays in place
    store.close()
    period = reports.Period.ending()
    store = ClickHouse(settings, found[1], size=1)
    assert reports.fanout_ratio(store, period).rows != []
    store.close()
