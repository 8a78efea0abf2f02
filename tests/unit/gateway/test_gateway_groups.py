"""The gateway's membership of large groups: exact, or no push (pure logic)."""

from __future__ import annotations

from pipeline.gateway.groups import GroupIndex, State
from pipeline.model.events import (
    ConversationCreated,
    InboxEntry,
    MemberJoined,
    MemberLeft,
    MessageSent,
    TimelineEvent,
    new_event_id,
)


def ev(command, n: int) -> TimelineEvent:  # type: ignore[no-untyped-def]
    return TimelineEvent(command, event_no=n, seq=n, ts_ms=0, large=True)


def msg(n: int) -> TimelineEvent:
    return ev(MessageSent(new_event_id(), "big", "alice", new_event_id(), "t", "x", 0), n)


def joined(user: str, n: int) -> TimelineEvent:
    return ev(MemberJoined(new_event_id(), "big", "alice", user, 0), n)


def left(user: str, n: int) -> TimelineEvent:
    return ev(MemberLeft(new_event_id(), "big", user, user, 0), n)


def test_a_member_connected_here_gets_messages_until_they_leave() -> None:
    index = GroupIndex()
    index.connect("bob")
    index.learn("bob", "big", State(True, 10))  # loaded at connect
    assert index.observe(msg(11)) == ["bob"]
    assert index.observe(left("bob", 12)) == []
    assert index.observe(msg(13)) == []
    assert index.observe(joined("bob", 14)) == []
    assert index.observe(msg(15)) == ["bob"]
    index.disconnect("bob")
    assert index.observe(msg(16)) == []


def test_a_load_older_than_a_leave_the_gateway_saw_does_not_bring_the_member_back() -> None:
    index = GroupIndex()
    index.observe(msg(20))
    index.observe(left("bob", 21))  # bob is not connected yet: only remembered
    index.observe(msg(22))
    index.connect("bob")
    index.learn("bob", "big", State(True, 20))  # the store had not written the leave yet
    assert index.observe(msg(23)) == []
    assert not index.take_stale()


def test_a_load_from_before_what_the_gateway_remembers_makes_the_user_stale() -> None:
    index = GroupIndex(memory=2)
    index.observe(msg(30))
    for n, user in ((31, "x"), (32, "y"), (33, "z")):
        index.observe(joined(user, n))  # the change at 31 is forgotten
    index.connect("bob")
    index.learn("bob", "big", State(True, 29))
    assert index.observe(msg(34)) == []
    assert index.take_stale() == {"bob"}
    index.learn("bob", "big", State(True, 33))  # the reload, once the store caught up
    assert index.observe(msg(35)) == ["bob"]


def test_a_break_in_the_broadcast_drops_states_it_cannot_vouch_for() -> None:
    index = GroupIndex()
    index.connect("bob")
    index.learn("bob", "big", State(True, 40))
    assert index.observe(msg(41)) == ["bob"]
    assert index.observe(msg(45)) == []  # 42-44 were lost: a leave may be among them
    assert index.take_stale() == {"bob"}
    assert index.observe(msg(41)) == []  # a repeat changes nothing


def test_the_switch_entry_makes_a_connected_member_known() -> None:
    index = GroupIndex()
    index.connect("carol")
    switch = joined("frank", 7)  # the join that made the group large
    assert index.observe(switch) == []
    assert index.observe(msg(8)) == []  # carol's entry for the switch is not here yet
    index.learn_entry("carol", InboxEntry("carol", 3, 0, switch))
    assert index.observe(msg(9)) == ["carol"]
    index.learn_entry("carol", InboxEntry("carol", 4, 0, left("carol", 10)))
    assert index.observe(msg(11)) == []


def test_members_of_a_group_created_large_are_known_from_its_creation() -> None:
    index = GroupIndex()
    index.connect("bob")
    index.connect("zed")
    created = ConversationCreated(new_event_id(), "big", "alice", "group", "", ("alice", "bob"), 0)
    index.observe(ev(created, 1))
    assert index.observe(msg(2)) == ["bob"]
