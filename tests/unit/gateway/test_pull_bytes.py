"""A pull page ends once its message bodies pass the byte budget: whole entries
only, at least one, the cursor at the last one given (the device pulls on). The
sync page spends the budget first, then each large group's page in turn."""

from __future__ import annotations

from pipeline.gateway.pull_bytes import groups_within_bytes, within_bytes
from pipeline.read.history import StoredMessage
from pipeline.read.large_groups import GroupPage
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


def message(seq: int, body: str) -> StoredMessage:
    return StoredMessage("g", seq, "e", "alice", "m", "text/plain", body, 0, 0)


def group(conv: str, after: int, bodies: list[str]) -> GroupPage:
    messages = [message(after + 1 + i, b) for i, b in enumerate(bodies)]
    return GroupPage(conv, after, after + len(bodies), messages)


def test_large_groups_share_what_the_sync_page_left() -> None:
    groups = [group("g1", 0, ["a" * 10] * 5), group("g2", 7, ["b" * 10] * 5)]
    cut = groups_within_bytes(groups, 100, spent=60)  # 40 left: 4 of g1, 1 of g2
    assert [len(g.messages) for g in cut] == [4, 1]
    assert [(g.after, g.caught_up) for g in cut] == [(0, False), (7, False)]
    assert [m.seq for m in cut[1].messages] == [8]  # from its cursor, no hole


def test_every_group_moves_even_when_the_budget_is_spent() -> None:
    groups = [group("g1", 0, ["a" * 10] * 3), group("g2", 0, ["x" * 500])]
    cut = groups_within_bytes(groups, 100, spent=250)
    assert [[m.body for m in g.messages] for g in cut] == [["a" * 10], ["x" * 500]]


def test_groups_within_the_budget_or_without_one_are_unchanged() -> None:
    groups = [group("g1", 0, ["a"] * 3)]
    assert groups_within_bytes(groups, 100, spent=10)[0] is groups[0]
    assert groups_within_bytes(groups, 0, spent=10**9) is groups
