"""The analytics benchmark, small: its synthetic history keeps the invariants the
rollups rely on, and it times every report and every documented query."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import analytics
from pipeline.ops import reports
from pipeline.settings import Settings
from pipeline.store import clickhouse
from pipeline.store.clickhouse import ClickHouse
from tests.conftest import unique_name

ROWS, DAYS = 6_000, 12

CHECKS = {
    # seqs dense per conversation, in ts order
    "conversations whose seqs are not 1..n in time order": """
        SELECT count() FROM (
            SELECT groupArray(seq) AS seqs, groupArray(ts_ms) AS times
            FROM (SELECT conversation_id, seq, ts_ms FROM messages ORDER BY conversation_id, seq)
            GROUP BY conversation_id
            HAVING seqs != arrayEnumerate(seqs) OR arraySort(times) != times)""",
    # sync_seqs dense per user, in ts order (the days retention dropped aside)
    "users whose sync entries go back in time": """
        SELECT count() FROM (
            SELECT groupArray(sync_seq) AS seqs, groupArray(ts_ms) AS times
            FROM (SELECT user_id, sync_seq, ts_ms FROM sync_timeline ORDER BY user_id, sync_seq)
            GROUP BY user_id
            HAVING arraySort(times) != times OR seqs[-1] - seqs[1] + 1 != length(seqs))""",
    # the rollup counts what is stored
    "days where the rollup and the stored rows disagree": """
        SELECT count() FROM (
            SELECT day, sum(high - low + 1) AS rolled FROM (
                SELECT day, conversation_id, minMerge(first_seq) AS low, maxMerge(last_seq) AS high
                FROM conversation_days GROUP BY day, conversation_id)
            GROUP BY day) AS r
        ANY FULL OUTER JOIN (
            SELECT toDate(created_at) AS day, count() AS stored FROM messages GROUP BY day) AS s
        USING day
        WHERE rolled != stored""",
}


@pytest.fixture
def database(stack: Settings) -> Iterator[str]:
    name = unique_name("bench")
    yield name
    clickhouse.drop_database(stack, name)


def test_the_benchmark_runs_small(stack: Settings, database: str, tmp_path: Path) -> None:
    output = tmp_path / "analytics.json"
    args = ["--rows", str(ROWS), "--days", str(DAYS), "--runs", "2", "--settle-s", "0"]
    assert analytics.main([*args, "--database", database, "--output", str(output), "--keep"]) == 0
    result = json.loads(output.read_text())
    assert result["tables"]["messages"]["rows"] == ROWS
    assert result["shape"]["rows"] == ROWS
    timed = {t["name"]: t for t in result["timings"]}
    assert set(timed) == {
        f"stats {r}" for r in reports.REPORTS if r not in analytics.NOT_TIMED
    } | set(analytics.documented_queries())
    assert all(t["result_rows"] > 0 for t in timed.values()), timed
    assert all(0 < t["median_ms"] <= t["max_ms"] for t in timed.values())

    store = ClickHouse(stack, database, size=1)
    for problem, sql in CHECKS.items():
        assert store.execute_sync(sql) == [(0,)], problem
    # the rollup still counts the days retention dropped from sync_timeline
    fanout = reports.fanout_ratio(store, reports.Period.ending(days=DAYS)).rows
    assert len(fanout) == DAYS
    store.close()

    # a second run finds the history in place and does not fill it again
    assert analytics.main([*args, "--database", database, "--output", str(output)]) == 0
    assert json.loads(output.read_text())["populate_s"] is None
