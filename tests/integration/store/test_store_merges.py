"""The roaming store survives ClickHouse's background merges.

ReplacingMergeTree folds rows with the same sorting key when it merges parts,
which may happen at any time; a merge must only ever fold copies of one row.
OPTIMIZE ... FINAL forces the merges a long-running server would do anyway.
"""

from __future__ import annotations

from pipeline.read import history
from pipeline.sdk.producer import Producer, message
from pipeline.settings import Settings
from pipeline.store.clickhouse import ClickHouse
from tests.support import converged, running_worker


async def test_initial_members_keep_access_after_merges(settings: Settings) -> None:
    store = ClickHouse(settings, size=1)
    async with running_worker(settings), Producer(settings) as producer:
        await producer.create_conversation("g", "alice", ["bob", "carol"])
        await producer.publish_many([message("g", "bob", f"m{i}") for i in range(3)])
        report = await converged(settings)
    assert report.ok, report.summary()
    for table in ("membership", "messages", "conversations", "sync_timeline"):
        await store.execute(f"OPTIMIZE TABLE {table} FINAL")
    rows = await store.execute("SELECT user_id FROM membership ORDER BY user_id")
    assert [r[0] for r in rows] == ["alice", "bob", "carol"]
    for member in ("alice", "bob", "carol"):
        page = await history.page(store, "g", member)
        assert [m.seq for m in page.messages] == [3, 2, 1]
    store.close()
