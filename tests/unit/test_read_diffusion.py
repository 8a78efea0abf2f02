"""Fan-out under read diffusion (pure logic, no broker)."""

from __future__ import annotations

from pipeline.diffusion import Fanout
from pipeline.events import (
    ConversationCreated,
    MemberJoined,
    MemberLeft,
    MessageSent,
    TimelineEvent,
    new_event_id,
)
from pipeline.state import StateStore


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
