"""The read-latency rollup on the real stack: each message counted once per reader,
by the reader's first marker covering it, never the reader's own, never one from
before the reader's join; recomputing an hour changes nothing."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from pipeline.ops.reports import Period, read_latency_days
from pipeline.read import read_latency
from pipeline.sdk.producer import Producer
from pipeline.settings import Settings
from pipeline.store.clickhouse import ClickHouse
from tests.support import converged, eventually, running_worker


async def _read_entries(store: ClickHouse) -> int:
    rows = await store.execute("SELECT count() FROM sync_timeline WHERE kind = 'read'")
    return int(rows[0][0])


async def test_each_message_is_counted_once_per_reader(settings: Settings) -> None:
    async with running_worker(settings), Producer(settings) as producer:
        await producer.create_conversation("g", "alice", ["bob", "carol"])
        for i in range(1, 4):
            await producer.send_message("g", "alice", f"m{i}")
        await producer.mark_read("g", "bob", 2, device="pc")
        await producer.mark_read("g", "bob", 3, device="pc")  # covers 3 only
        await producer.mark_read("g", "carol", 3, device="pc")  # 1, 2 and 3
        await producer.send_message("g", "bob", "m4")
        await producer.mark_read("g", "bob", 4, device="pc")  # his own: nothing
        await producer.join("g", "alice", "dave")
        await producer.send_message("g", "alice", "m5")
        await producer.mark_read("g", "dave", 5, device="pc")  # 5: 1-4 were before he joined
        await producer.mark_read("g", "alice", 5, device="pc")  # 4, bob's; the rest hers
        report = await converged(settings)
        assert report.ok, report.summary()
        store = ClickHouse(settings, size=1)
        try:
            await eventually(lambda: _read_entries(store), lambda n: n >= 4, within=30)
            today = datetime.now(UTC).date()
            period = Period(today, today)
            for _ in range(2):  # a second roll-up of the same hours changes nothing
                await read_latency.roll_up(store, int(time.time() * 1000))
                (day,) = read_latency_days(store, period).rows
                assert day[:2] == (today, 3 + 3 + 1 + 1)
            assert 0 < day[2] <= day[3] <= day[4] <= 2**20  # bucket bounds, ms
        finally:
            store.close()
