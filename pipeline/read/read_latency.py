"""Read latency: from a message to the reader's first read marker covering it.

A marker covers the messages after the reader's previous marker (and after their
join) up to its seq, other than the reader's own. ``roll_up`` recomputes the
hourly histograms of the last hours (``read_latency_hours``, migration 0008);
the worker's retention agent runs it with its upkeep. ``days`` makes per-day
counts and percentiles of ``queries.REPORT_READ_LATENCY``. Bucket b holds
latencies in [2^b, 2^(b+1)) ms, so a percentile is known to within a factor of
2: it is reported as its bucket's upper bound.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from pipeline.store import queries
from pipeline.store.clickhouse import ClickHouse

HOUR_MS = 3_600_000
HOURS = 2
"""Hours recomputed by each roll-up: the current one and the one before (whose
last markers may have been stored after it ended)."""


async def roll_up(store: ClickHouse, now_ms: int, hours: int = HOURS) -> None:
    until = (now_ms // HOUR_MS + 1) * HOUR_MS
    await store.execute(
        queries.ROLLUP_READ_LATENCY,
        {"since_ms": until - hours * HOUR_MS, "until_ms": until, "computed_ms": now_ms},
    )


@dataclass(frozen=True, slots=True)
class DayLatency:
    day: date
    reads: int
    p50_ms: int
    p90_ms: int
    p99_ms: int


def upper_ms(bucket: int) -> int:
    return int(2 ** (bucket + 1))


def quantile_ms(buckets: dict[int, int], q: float) -> int:
    """The upper bound of the bucket holding the ``q`` quantile (0 when empty)."""
    total = sum(buckets.values())
    if not total:
        return 0
    seen = 0
    for bucket in sorted(buckets):
        seen += buckets[bucket]
        if seen >= q * total:
            return upper_ms(bucket)
    return upper_ms(max(buckets))


def days(rows: Iterable[tuple[date, int, int]]) -> list[DayLatency]:
    """Per day, from the rows of ``queries.REPORT_READ_LATENCY`` (day, bucket, reads)."""
    days: dict[date, dict[int, int]] = defaultdict(dict)
    for day, bucket, reads in rows:
        days[day][int(bucket)] = int(reads)
    return [
        DayLatency(
            day,
            sum(b.values()),
            quantile_ms(b, 0.5),
            quantile_ms(b, 0.9),
            quantile_ms(b, 0.99),
        )
        for day, b in sorted(days.items())
    ]
