"""The sync store agent: im.inbox → ClickHouse, the sync timelines devices pull from.

* the sink writes ``sync_timeline`` and ``sync_heads`` idempotently, keyed by
  (user, sync_seq), so a replayed batch folds into the same rows;
* retention: every ``retention_check_s`` it drops the ``sync_timeline`` days
  older than the sync lifetime (the topics expire by their ``retention.ms``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from agents.runtime.sink import ClickHouseSink
from pipeline.errors import StoreUnavailableError
from pipeline.log.topics import Topics
from pipeline.model.events import InboxEntry, limits_from
from pipeline.model.framing import EventCache
from pipeline.observe.sensor import Sensor
from pipeline.read import read_latency, sync_timeline
from pipeline.settings import Settings
from pipeline.store.clickhouse import ClickHouse
from pipeline.store.rows import SyncRows

log = logging.getLogger(__name__)
RETENTION_CHECK_S = 3600.0


async def write_entries(store: ClickHouse, entries: list[InboxEntry]) -> None:
    rows = SyncRows()
    for entry in entries:
        rows.add(entry)
    for insert, values in rows.inserts():
        await store.insert(insert.sql, values)


def sink(
    settings: Settings, topics: Topics, sensor: Sensor | None = None
) -> ClickHouseSink[InboxEntry]:
    limits = limits_from(settings.pipeline)
    return ClickHouseSink(
        settings,
        name="sync-store",
        topic=topics.inbox,
        dead_letter=topics.dead_letter,
        decode=EventCache(limits).inbox,
        write=write_entries,
        sensor=sensor,
    )


class Retention:
    """The sync store's upkeep, at start and every ``every_s`` until stopped: drops
    expired sync_timeline days, and recomputes the read-latency rollup of the last
    hours (pipeline/read/read_latency.py)."""

    def __init__(self, settings: Settings, every_s: float = RETENTION_CHECK_S) -> None:
        self.settings = settings
        self.every_s = every_s
        self.dropped: list[str] = []
        self.last_run_ms = 0
        self.rolled_up_ms = 0

    def status(self) -> dict[str, Any]:
        return {
            "dropped_days": self.dropped,
            "last_run_ms": self.last_run_ms,
            "read_latency_ms": self.rolled_up_ms,
        }

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
        try:
            await read_latency.roll_up(store, self.last_run_ms)
        except StoreUnavailableError as exc:
            log.warning("read latency: ClickHouse unavailable (%s); next try later", exc)
            return
        except Exception:  # a failed roll-up must not stop the retention
            log.exception("read latency: the roll-up failed; next try later")
            return
        self.rolled_up_ms = self.last_run_ms
