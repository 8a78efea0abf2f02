from __future__ import annotations

from datetime import UTC, datetime

import orjson

from pipeline.read.sync_timeline import SyncEntry, contiguous, expired_days


def entry(n: int) -> SyncEntry:
    return SyncEntry(n, "c1", n, n, "message", "id", "alice", "", "m", "text/plain", "x", 0)


def test_a_page_stops_before_the_first_hole() -> None:
    entries = [entry(n) for n in (6, 7, 9, 10)]
    assert [e.sync_seq for e in contiguous(5, entries)] == [6, 7]
    assert contiguous(4, entries) == []  # 5 is missing: nothing, never a jump
    assert [e.sync_seq for e in contiguous(8, entries[2:])] == [9, 10]


def test_expired_days_are_wholly_older_than_the_lifetime() -> None:
    now = datetime(2026, 11, 27, 12, tzinfo=UTC).timestamp()
    parts = ["20261118", "20261119", "20261120", "20261121", "20261127", "tuple()"]
    # 7 days before 2026-11-27 12:00 is 2026-11-20 12:00: day 20 still holds live entries
    assert expired_days(parts, 7, now) == ["20261118", "20261119"]
    assert expired_days(parts, 30, now) == []


def test_a_pushed_entry_encodes_as_a_pulled_one() -> None:
    """The gateway hands the dataclass to orjson (fast); pulls use to_json(): the
    devices must get the same object either way."""
    entry = SyncEntry(7, "c:1", 3, 2, "message", "e-1", "ann", "", "m-1", "text/plain", "hé", 5)
    assert orjson.loads(orjson.dumps(entry)) == entry.to_json()
    assert list(orjson.loads(orjson.dumps(entry))) == list(entry.to_json())
