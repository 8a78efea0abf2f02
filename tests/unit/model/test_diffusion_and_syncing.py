from __future__ import annotations

from pipeline.model.diffusion import Fanout
from pipeline.model.events import (
    ConversationCreated,
    Delivery,
    MemberJoined,
    MemberLeft,
    MessageSent,
    TimelineEvent,
    new_event_id,
)
from pipeline.model.state import StateStore
from pipeline.model.syncing import SyncSequencer


def at(command, n: int, ts: int = 0) -> TimelineEvent:  # type: ignore[no-untyped-def]
    return TimelineEvent(command, event_no=n, seq=n, ts_ms=ts)


def msg(sender: str) -> MessageSent:
    return MessageSent(new_event_id(), "c1", sender, new_event_id(), "text/plain", "x", 0)


def test_each_event_reaches_the_members_at_its_position() -> None:
    f = Fanout(StateStore())
    created = ConversationCreated(new_event_id(), "c1", "alice", "group", "", ("alice", "bob"), 0)
    assert f.recipients(at(created, 1)) == ["alice", "bob"]
    assert f.recipients(at(msg("alice"), 2)) == ["alice", "bob"]
    joined = MemberJoined(new_event_id(), "c1", "alice", "carol", 0)
    assert f.recipients(at(joined, 3)) == ["alice", "bob", "carol"]
    assert f.recipients(at(msg("carol"), 4)) == ["alice", "bob", "carol"]
    left = MemberLeft(new_event_id(), "c1", "bob", "bob", 0)
    assert f.recipients(at(left, 5)) == ["alice", "bob", "carol"]  # the leaver hears it
    assert f.recipients(at(msg("alice"), 6)) == ["alice", "carol"]


def test_sync_seqs_are_dense_per_user_and_time_never_goes_back() -> None:
    s = SyncSequencer(StateStore())
    event_late = at(msg("alice"), 1, ts=500)
    event_early = at(msg("bob"), 1, ts=100)
    a1 = s.assign(Delivery("alice", event_late))
    b1 = s.assign(Delivery("bob", event_late))
    a2 = s.assign(Delivery("alice", event_early))
    assert (a1.sync_seq, b1.sync_seq, a2.sync_seq) == (1, 1, 2)
    assert a2.ts_ms == 500


def test_state_changelog_and_restore() -> None:
    store = StateStore()
    store.put("a", [1, 2])
    store.put("b", 3)
    store.delete("b")
    changes = dict(store.changelog())
    assert changes == {b"a": b"[1,2]", b"b": None}
    store.commit()
    assert store.changelog() == []
    copy = StateStore()
    for key, value in changes.items():
        copy.restore(key, value)
    assert copy.get("a") == [1, 2]
    assert "b" not in copy
