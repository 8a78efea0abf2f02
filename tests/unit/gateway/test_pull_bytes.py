"""A pull page ends once its message bodies pass the byte budget: whole entries
only, at least one, the cursor at the last one given (the device pulls on)."""

from __future__ import annotations

from pipeline.gateway.http import within_bytes
from pipeline.read.sync_timeline import SyncEntry, SyncPage


def entry(sync_seq: int, body: str) -> SyncEntry:
    return SyncEntry(
        sync_seq, "c", sync_seq, sync_seq, "message", "e", "alice", "", "m", "text/plain", body, 0
    )


def test_a_page_ends_at_the_budget_and_says_it_is_not_caught_up() -> None:
    page = SyncPage([entry(n, "é" * 10) for n in range(4, 9)], cursor=8, head=20)
    cut = within_bytes(page, 45)  # 20 bytes each: two fit
    assert [e.sync_seq for e in cut.entries] == [4, 5]
    assert (cut.cursor, cut.head, cut.caught_up) == (5, 20, False)


def test_an_entry_larger_than_the_budget_still_comes_whole() -> None:
    page = SyncPage([entry(1, "x" * 500), entry(2, "y")], cursor=2, head=2)
    cut = within_bytes(page, 100)
    assert [e.body for e in cut.entries] == ["x" * 500]
    assert (cut.cursor, cut.caught_up) == (1, False)


def test_a_page_within_the_budget_or_without_one_is_unchanged() -> None:
    page = SyncPage([entry(1, "a"), entry(2, "b")], cursor=2, head=2)
    assert within_bytes(page, 2) is page
    assert within_bytes(page, 0) is page
    empty = SyncPage([], cursor=7, head=7)
    assert within_bytes(empty, 10) is empty
