"""Read diffusion's pure logic: fan-out, membership periods, group pages (no broker)."""

from __future__ import annotations

from pipeline.model.diffusion import Fanout
from pipeline.model.events import (
    ConversationCreated,
    MemberJoined,
    MemberLeft,
    MessageSent,
    TimelineEvent,
    new_event_id,
)
from pipeline.model.state import StateStore
from pipeline.ops.checker import expected_periods, expected_sync
from pipeline.read.history import StoredMessage
from pipeline.read.large_groups import contiguous, window
from pipeline.read.periods import Period, periods


def event(command, n: int, seq: int, large: bool = False) -> TimelineEvent:  # type: ignore[no-untyped-def]
    return TimelineEvent(command, event_no=n, seq=seq, ts_ms=0, large=large)


def msg(sender: str) -> MessageSent:
    return MessageSent(new_event_id(), "c1", sender, new_event_id(), "text/plain", "x", 0)


def joined(user: str, actor: str = "alice") -> MemberJoined:
    return MemberJoined(new_event_id(), "c1", actor, user, 0)


def left(user: str, actor: str | None = None) -> MemberLeft:
    return MemberLeft(new_event_id(), "c1", actor or user, user, 0)


def created(*members: str) -> ConversationCreated:
    return ConversationCreated(new_event_id(), "c1", members[0], "group", "", members, 0)


def test_large_groups_get_no_message_deliveries_and_the_switch_reaches_everyone() -> None:
    f = Fanout(StateStore())
    assert f.recipients(event(created("alice", "bob"), 1, 0)) == ["alice", "bob"]
    assert f.recipients(event(msg("bob"), 2, 1)) == ["alice", "bob"]
    # the join that crosses the threshold: every member, the newcomer included
    assert f.recipients(event(joined("carol"), 3, 1, large=True)) == ["alice", "bob", "carol"]
    assert f.recipients(event(msg("carol"), 4, 2, large=True)) == []
    assert f.recipients(event(msg("alice"), 5, 3, large=True)) == []
    # after the switch a membership change reaches the member it is about (and the actor)
    assert f.recipients(event(joined("dave", actor="bob"), 6, 3, large=True)) == ["bob", "dave"]
    assert f.recipients(event(left("bob"), 7, 3, large=True)) == ["bob"]
    assert f.recipients(event(left("carol", actor="alice"), 8, 3, large=True)) == [
        "alice",
        "carol",
    ]
    assert f.recipients(event(msg("alice"), 9, 4, large=True)) == []


def test_a_group_created_large_tells_every_member_once_then_only_subjects() -> None:
    f = Fanout(StateStore())
    everyone = ("alice", "bob", "carol", "dave")
    assert f.recipients(event(created(*everyone), 1, 0, large=True)) == list(everyone)
    assert f.recipients(event(msg("bob"), 2, 1, large=True)) == []
    assert f.recipients(event(joined("erin"), 3, 1, large=True)) == ["alice", "erin"]


def test_fanout_state_restored_from_its_changelog_keeps_the_switch() -> None:
    f = Fanout(StateStore())
    f.recipients(event(created("alice", "bob"), 1, 0))
    f.recipients(event(joined("carol"), 2, 0, large=True))
    restored = StateStore()
    for key, value in f.state.changelog():
        restored.restore(key, value)
    assert "m/c1" not in restored  # a large group's member list is not kept here
    again = Fanout(restored)
    assert again.recipients(event(msg("alice"), 3, 1, large=True)) == []
    assert again.recipients(event(joined("dave"), 4, 1, large=True)) == ["alice", "dave"]


def test_small_conversations_are_written_as_before() -> None:
    f = Fanout(StateStore())
    assert f.recipients(event(created("alice", "bob"), 1, 0)) == ["alice", "bob"]
    assert f.recipients(event(joined("carol"), 2, 0)) == ["alice", "bob", "carol"]
    assert f.recipients(event(msg("carol"), 3, 1)) == ["alice", "bob", "carol"]


def test_periods_start_at_the_switch_or_the_join_and_end_at_the_leave() -> None:
    # joined at seq 3, the group became large at seq 10: reading starts after 10
    assert periods([(2, "join", 3)], large_seq=10) == [Period(10, None)]
    # joined after the switch: after its own seq
    assert periods([(20, "join", 15)], large_seq=10) == [Period(15, None)]
    # joined, left (before the switch: nothing to read), came back, left, came back
    rows = [(1, "join", 0), (4, "leave", 6), (12, "join", 14), (15, "leave", 18), (30, "join", 25)]
    assert periods(rows, large_seq=10) == [Period(14, 18), Period(25, None)]
    # left right after the switch, no message in between: nothing to read
    assert periods([(1, "join", 0), (11, "leave", 10)], large_seq=10) == []


def test_history_before_join_opens_the_first_period_only() -> None:
    rows = [(1, "join", 0), (4, "leave", 6), (12, "join", 14)]
    assert periods(rows) == [Period(0, 6), Period(14, None)]
    late = [(5, "join", 7), (9, "leave", 12), (12, "join", 14)]
    assert periods(late) == [Period(7, 12), Period(14, None)]
    assert periods(late, before_join=True) == [Period(0, 12), Period(14, None)]
    assert periods(late, large_seq=10, before_join=True) == [Period(10, 12), Period(14, None)]
    assert [s for s in range(16) if any(p.holds(s) for p in periods(late))] == [
        8,
        9,
        10,
        11,
        12,
        15,
    ]


def test_a_device_reads_each_period_in_turn_and_skips_the_time_between() -> None:
    found = [Period(14, 18), Period(25, None)]
    assert window(found, None) == (14, 18)  # a new device starts at the first
    assert window(found, 16) == (16, 18)
    assert window(found, 18) == (25, None)  # done with the first: on to the next
    assert window(found, 40) == (40, None)
    assert window([Period(14, 18)], 18) is None  # left, and read up to the leave
    assert window([Period(14, 18)], 3) == (14, 18)  # never before the period


def test_a_group_page_stops_before_a_hole() -> None:
    def stored(seq: int) -> StoredMessage:
        return StoredMessage("c1", seq, "id", "alice", "m", "text/plain", "x", 0, 0)

    assert [m.seq for m in contiguous(4, [stored(5), stored(6), stored(8)])] == [5, 6]
    assert contiguous(4, [stored(6)]) == []


def test_the_checker_owes_no_entry_for_large_messages_and_owes_periods_instead() -> None:
    events = [
        event(created("alice", "bob"), 1, 0),
        event(msg("bob"), 2, 1),
        event(joined("carol"), 3, 1, large=True),
        event(msg("carol"), 4, 2, large=True),
        event(left("bob"), 5, 2, large=True),
        event(msg("alice"), 6, 3, large=True),
    ]
    owed = expected_sync({"c1": events})
    assert sorted(owed["alice"]) == [("c1", 1), ("c1", 2), ("c1", 3)]
    assert sorted(owed["bob"]) == [("c1", 1), ("c1", 2), ("c1", 3), ("c1", 5)]
    assert sorted(owed["carol"]) == [("c1", 3)]
    assert expected_periods({"c1": events}) == {
        ("alice", "c1"): [Period(1, None)],
        ("bob", "c1"): [Period(1, 2)],
        ("carol", "c1"): [Period(1, None)],
    }
