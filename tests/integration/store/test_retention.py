"""Sync timelines live for the configured lifetime, in the topics and in the table."""

from __future__ import annotations

import time

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from pipeline.errors import CursorExpiredError
from pipeline.log import kafka
from pipeline.log.topics import catalogue
from pipeline.read import history, sync_timeline
from pipeline.sdk.producer import Producer, message
from pipeline.settings import Settings
from pipeline.store.clickhouse import ClickHouse
from tests.support import eventually, running_worker

DAY_S = 86_400


async def test_sync_topics_expire_after_the_lifetime(settings: Settings) -> None:
    topics = catalogue(settings)
    async with kafka.admin(settings) as admin:
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, t.name)
            for t in (topics.sync, topics.inbox, topics.messages)
        ]
        described = await admin.describe_configs(resources)
    retention = {}
    for response in described:
        for _, _, _, name, entries in response.resources:
            values = {entry[0]: entry[1] for entry in entries}
            retention[name] = int(values["retention.ms"])
    lifetime_ms = settings.pipeline.sync_retention_days * DAY_S * 1000
    assert retention[topics.sync.name] == lifetime_ms
    assert retention[topics.inbox.name] == lifetime_ms
    assert retention[topics.messages.name] == -1  # the event log is kept


async def test_expired_days_are_dropped_and_old_cursors_told_so(settings: Settings) -> None:
    store = ClickHouse(settings)
    days = settings.pipeline.sync_retention_days
    async with running_worker(settings), Producer(settings) as producer:
        await producer.create_conversation("g", "alice", ["bob"])
        await producer.publish_many([message("g", "alice", f"m{i}") for i in range(5)])
        await eventually(
            lambda: sync_timeline.pull(store, "bob", 0, 100, days),
            lambda page: len(page.entries) == 6,
        )

    # nothing is old enough today
    assert await sync_timeline.drop_expired(store, days, time.time()) == []
    # a lifetime and a day later, today's entries are gone
    later = time.time() + (days + 1) * DAY_S
    dropped = await sync_timeline.drop_expired(store, days, later)
    assert dropped == [time.strftime("%Y%m%d", time.gmtime())]
    with pytest.raises(CursorExpiredError, match="re-sync from history"):
        await sync_timeline.pull(store, "bob", 0, 100, days)
    # the head survives retention: a device at the head is simply caught up
    page = await sync_timeline.pull(store, "bob", 6, 100, days)
    assert (page.entries, page.caught_up) == ([], True)
    # the roaming store keeps everything, at any age
    assert len((await history.page(store, "g", "bob")).messages) == 5
    store.close()
