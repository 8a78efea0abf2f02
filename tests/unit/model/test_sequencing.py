from __future__ import annotations

from pipeline.model.events import (
    ConversationCreated,
    MemberJoined,
    MemberLeft,
    MessageSent,
    new_event_id,
)
from pipeline.model.sequencing import Accepted, Duplicate, Rejected, Sequencer
from pipeline.model.state import StateStore


def sequencer(window_ms: int = 1_000, max_group: int = 4) -> Sequencer:
    return Sequencer(StateStore(), dedupe_window_ms=window_ms, max_group_size=max_group)


DM = "dm:alice:bob"


def create(conv: str = "c1", members: tuple[str, ...] = ("alice", "bob"), kind: str = "group"):  # type: ignore[no-untyped-def]
    if kind == "direct":
        conv = DM
    return ConversationCreated(new_event_id(), conv, members[0], kind, "", members, 0)  # type: ignore[arg-type]


def send(sender: str = "alice", cmid: str | None = None, conv: str = "c1") -> MessageSent:
    return MessageSent(new_event_id(), conv, sender, cmid or new_event_id(), "text/plain", "x", 0)


def join(user: str, actor: str = "alice") -> MemberJoined:
    return MemberJoined(new_event_id(), "c1", actor, user, 0)


def leave(user: str, actor: str | None = None) -> MemberLeft:
    return MemberLeft(new_event_id(), "c1", actor or user, user, 0)


def accepted(outcome: object) -> Accepted:
    assert isinstance(outcome, Accepted), outcome
    return outcome


def test_seqs_are_dense_per_conversation_in_log_order() -> None:
    s = sequencer()
    accepted(s.apply(create("c1"), 10))
    accepted(s.apply(create("c2"), 10))
    seqs = {"c1": [], "c2": []}  # type: dict[str, list[int]]
    for i in range(10):
        conv = "c1" if i % 3 else "c2"
        seqs[conv].append(accepted(s.apply(send(conv=conv), 10 + i)).event.seq)
    assert seqs["c1"] == list(range(1, len(seqs["c1"]) + 1))
    assert seqs["c2"] == list(range(1, len(seqs["c2"]) + 1))


def test_event_numbers_count_every_event_and_membership_keeps_last_seq() -> None:
    s = sequencer()
    events = [accepted(s.apply(c, 0)).event for c in (create(), send(), join("carol"), send())]
    assert [e.event_no for e in events] == [1, 2, 3, 4]
    assert [e.seq for e in events] == [0, 1, 1, 2]


def test_timestamps_never_go_backwards() -> None:
    s = sequencer()
    s.apply(create(), 100)
    first = accepted(s.apply(send(), 500)).event
    second = accepted(s.apply(send(), 300)).event
    assert (first.ts_ms, second.ts_ms) == (500, 500)


def test_non_members_are_rejected_with_a_reason() -> None:
    s = sequencer()
    s.apply(create(), 0)
    outcome = s.apply(send("mallory"), 0)
    assert outcome == Rejected("sender mallory is not a member of conversation c1")
    assert s.apply(send(conv="nowhere"), 0) == Rejected("unknown conversation nowhere")
    assert isinstance(s.apply(create(), 0), Rejected)


def test_membership_changes_take_effect_at_their_position() -> None:
    s = sequencer()
    s.apply(create(), 0)
    assert isinstance(s.apply(send("carol"), 0), Rejected)
    accepted(s.apply(join("carol"), 0))
    accepted(s.apply(send("carol"), 0))
    accepted(s.apply(leave("carol"), 0))
    assert isinstance(s.apply(send("carol"), 0), Rejected)


def test_membership_rules() -> None:
    s = sequencer(max_group=3)
    s.apply(create(), 0)
    assert isinstance(s.apply(join("bob"), 0), Rejected)  # already a member
    assert isinstance(s.apply(join("dave", actor="eve"), 0), Rejected)  # actor not a member
    accepted(s.apply(join("carol"), 0))
    assert s.apply(join("dave"), 0) == Rejected("conversation c1 is full (3 members)")
    assert isinstance(s.apply(leave("dave"), 0), Rejected)  # not a member
    accepted(s.apply(leave("carol", actor="alice"), 0))  # removed by a member
    d = sequencer()
    accepted(d.apply(create(kind="direct"), 0))
    refused = d.apply(MemberJoined(new_event_id(), DM, "alice", "carol", 0), 0)
    assert isinstance(refused, Rejected)
    assert "direct" in refused.reason


def test_same_client_msg_id_within_window_is_one_message() -> None:
    s = sequencer(window_ms=1_000)
    s.apply(create(), 0)
    first = accepted(s.apply(send("alice", "m1"), 100)).event
    assert s.apply(send("alice", "m1"), 200) == Duplicate(first.seq)
    # another sender may use the same id
    accepted(s.apply(send("bob", "m1"), 200))
    s.expire(now_ms=1_200)
    accepted(s.apply(send("alice", "m1"), 1_300))


def test_dedupe_index_survives_restore_from_changelog() -> None:
    s = sequencer(window_ms=1_000)
    s.apply(create(), 0)
    first = accepted(s.apply(send("alice", "m1"), 100)).event
    restored = StateStore()
    for key, value in s.state.changelog():
        restored.restore(key, value)
    again = Sequencer(restored, dedupe_window_ms=1_000, max_group_size=4)
    assert again.apply(send("alice", "m1"), 150) == Duplicate(first.seq)
    assert accepted(again.apply(send("alice", "m2"), 150)).event.seq == first.seq + 1
    again.expire(now_ms=2_000)
    assert not list(again.state.items("d/"))


def test_dedupe_memory_is_bounded_by_count_too_and_says_so() -> None:
    s = Sequencer(StateStore(), dedupe_window_ms=10_000, max_group_size=4, dedupe_max=3)
    s.apply(create(), 0)
    for i in range(5):
        accepted(s.apply(send("alice", f"m{i}"), 100 + i))
    # two entries still inside their window had to go: counted as early
    assert s.expire(now_ms=200) == (2, 2)
    assert len(list(s.state.items("d/"))) == 3
    # the oldest were forgotten first: m0 is new again, m4 still a duplicate
    assert isinstance(s.apply(send("alice", "m4"), 210), Duplicate)
    accepted(s.apply(send("alice", "m0"), 210))


def test_the_window_holds_its_span_at_the_rate_its_bound_is_sized_for() -> None:
    """A 2 s window sized for 100 sends/s (200 entries): at 100/s, a repeat 1.9 s
    later is still caught, and nothing goes early; at 200/s it would not be."""
    s = Sequencer(StateStore(), dedupe_window_ms=2_000, max_group_size=4, dedupe_max=200)
    s.apply(create(), 0)
    first = accepted(s.apply(send("alice", "m0"), 0)).event
    for i in range(1, 400):  # 4 s at 100/s, expiring after every batch of 10
        t = i * 10
        accepted(s.apply(send("alice", f"m{i}"), t))
        if i % 10 == 0:
            assert s.expire(now_ms=t)[1] == 0
        if i == 190:
            assert s.apply(send("alice", "m0"), t) == Duplicate(first.seq)
    fast = Sequencer(StateStore(), dedupe_window_ms=2_000, max_group_size=4, dedupe_max=200)
    fast.apply(create(), 0)
    for i in range(400):  # 2 s at 200/s
        accepted(fast.apply(send("alice", f"m{i}"), i * 5))
    # at 2,000 ms the window holds the 399 sends after 0 ms: 200 kept, 199 gone early
    assert fast.expire(now_ms=2_000) == (200, 199)


def large_flags(s: Sequencer, commands: list[object]) -> list[bool]:
    return [accepted(s.apply(c, 0)).event.large for c in commands]  # type: ignore[arg-type]


def test_a_group_is_large_exactly_from_the_join_that_crosses_the_threshold() -> None:
    s = Sequencer(StateStore(), dedupe_window_ms=0, max_group_size=10, read_diffusion_threshold=3)
    before = large_flags(s, [create(members=("alice", "bob")), send(), join("carol"), send()])
    assert before == [False, False, False, False]  # 3 members: not more than the threshold
    assert large_flags(s, [join("dave")]) == [True]  # 4 > 3: the switch
    after = large_flags(s, [send(), leave("dave"), leave("carol"), send("bob"), join("erin")])
    assert after == [True] * 5  # sticky, even at 2 members


def test_a_group_created_above_the_threshold_is_large_from_its_creation() -> None:
    s = Sequencer(StateStore(), dedupe_window_ms=0, max_group_size=10, read_diffusion_threshold=2)
    assert large_flags(s, [create(members=("alice", "bob", "carol")), send()]) == [True, True]
    d = Sequencer(StateStore(), dedupe_window_ms=0, max_group_size=10, read_diffusion_threshold=1)
    # direct conversations are never large
    assert large_flags(d, [create(kind="direct"), send(conv=DM)]) == [False, False]


def test_threshold_zero_never_reads_diffused() -> None:
    s = Sequencer(StateStore(), dedupe_window_ms=0, max_group_size=10, read_diffusion_threshold=0)
    members = tuple(f"u{i}" for i in range(10))
    assert large_flags(s, [create(members=members), send("u1")]) == [False, False]


def test_the_large_flag_survives_restore_and_old_state_values_still_load() -> None:
    s = Sequencer(StateStore(), dedupe_window_ms=0, max_group_size=10, read_diffusion_threshold=2)
    large_flags(s, [create(), join("carol")])
    restored = StateStore()
    for key, value in s.state.changelog():
        restored.restore(key, value)
    again = Sequencer(restored, dedupe_window_ms=0, max_group_size=10, read_diffusion_threshold=2)
    event = accepted(again.apply(send(), 0)).event
    assert (event.large, event.seq, event.event_no) == (True, 1, 3)

    old = StateStore()  # a value written before the flag existed: four fields
    old.restore(b"c/c1", b'["group",7,9,100]')
    old.restore(b"m/c1", b'["alice","bob"]')
    legacy = Sequencer(old, dedupe_window_ms=0, max_group_size=10, read_diffusion_threshold=2)
    event = accepted(legacy.apply(send(), 0)).event
    assert (event.large, event.seq, event.event_no, event.ts_ms) == (False, 8, 10, 100)
    assert accepted(legacy.apply(join("carol"), 0)).event.large


def test_the_dm_namespace_is_for_direct_conversations_under_their_one_id() -> None:
    """Nobody squats a direct conversation: a group may not take a dm: id, and a
    direct conversation has the id its two members give, or none."""
    s = sequencer()
    squat = s.apply(create(conv="dm:alice:zed", members=("mallory", "alice", "zed")), 0)
    assert squat == Rejected(
        "conversation ids starting with dm: are reserved for direct conversations (POST /v1/direct)"
    )
    elsewhere = ConversationCreated(
        new_event_id(), "chat", "alice", "direct", "", ("alice", "zed"), 0
    )
    assert s.apply(elsewhere, 0) == Rejected(
        "a direct conversation between alice and zed has the id dm:alice:zed, not chat"
    )
    wrong_pair = ConversationCreated(
        new_event_id(), "dm:alice:zed", "alice", "direct", "", ("alice", "bob"), 0
    )
    assert isinstance(s.apply(wrong_pair, 0), Rejected)
    right = ConversationCreated(
        new_event_id(), "dm:alice:zed", "zed", "direct", "", ("zed", "alice"), 0
    )
    accepted(s.apply(right, 0))
