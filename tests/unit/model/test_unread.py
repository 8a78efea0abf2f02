"""Unread counts against a brute-force count of the event log (docs/read-state.md).

Random interleavings of sends, joins, leaves, read markers from several
devices (each marking what it has seen, so markers arrive out of order),
mutes, pins and redeliveries run through the real sequencer and the real sync
stage rules. After every step, for every user and conversation:

* the server's count (pipeline/model/unread.py, from what the read-state
  tables hold: heads, join points, markers, last sent seqs) equals a brute-force
  count over the log: the others' messages after max(marker, own last sent,
  join point), the join point being the user's latest join;
* the reference client's badges, fed with the user's sync entries in order,
  equal it too, and so does the total (muted conversations left out);
* none of the user's own messages is ever unread, and the markers in a sync
  timeline only go up.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.model.events import (
    ConversationCreated,
    Delivery,
    InboxEntry,
    MemberJoined,
    MemberLeft,
    MessageSent,
    UserEvent,
    new_event_id,
)
from pipeline.model.sequencing import Accepted, Sequencer
from pipeline.model.state import StateStore
from pipeline.model.syncing import SyncSequencer
from pipeline.model.unread import Badges, ReadState, total
from pipeline.read.sync_timeline import SyncEntry
from pipeline.sdk.producer import user_event

USERS = ("u0", "u1", "u2", "u3")
CONVERSATIONS = ("g1", "g2")
DEVICES = ("phone", "pc")


@dataclass
class World:
    sequencer: Sequencer = field(
        default_factory=lambda: Sequencer(StateStore(), dedupe_window_ms=0, max_group_size=10)
    )
    sync: SyncSequencer = field(default_factory=lambda: SyncSequencer(StateStore()))
    messages: dict[str, list[MessageSent]] = field(default_factory=lambda: defaultdict(list))
    joins: dict[tuple[str, str], int] = field(default_factory=dict)
    """(user, conversation) -> the seq of their latest join; absent: not a member."""
    entries: dict[str, list[InboxEntry]] = field(default_factory=lambda: defaultdict(list))
    user_events: list[UserEvent] = field(default_factory=list)
    seen: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """(user, device, conversation) -> the last seq the device has seen."""
    ts: int = 0

    def command(self, command: object) -> None:
        self.ts += 1
        outcome = self.sequencer.apply(command, self.ts)  # type: ignore[arg-type]
        if not isinstance(outcome, Accepted):
            return
        event = outcome.event
        c = event.command
        if isinstance(c, MessageSent):
            self.messages[c.conversation_id].append(c)
        elif isinstance(c, ConversationCreated):
            for member in c.members:
                self.joins[(member, c.conversation_id)] = event.seq
        elif isinstance(c, MemberJoined):
            self.joins[(c.user_id, c.conversation_id)] = event.seq
        elif isinstance(c, MemberLeft):
            self.joins.pop((c.user_id, c.conversation_id), None)
        for user in outcome.recipients:
            self.deliver(Delivery(user, event))

    def deliver(self, delivery: Delivery) -> None:
        entry = self.sync.assign(delivery)
        if entry is not None:
            self.entries[delivery.user_id].append(entry)

    def own(self, event: UserEvent) -> None:
        self.user_events.append(event)
        self.deliver(Delivery(event.user_id, event))

    # ------------------------------------------------ what the tables would hold

    def server_state(self, user: str, conv: str) -> ReadState:
        seqs = [e.event.seq for e in self.entries[user] if _kind(e) == "read" and _conv(e) == conv]
        return ReadState(
            head=len(self.messages[conv]),
            joined_after=self.joins[(user, conv)],
            marker=max(seqs, default=0),
            last_sent=max(
                (i + 1 for i, m in enumerate(self.messages[conv]) if m.sender_id == user),
                default=0,
            ),
        )

    def muted(self, user: str, conv: str) -> bool:
        flags = [e.event.on for e in self.entries[user] if _kind(e) == "muted" and _conv(e) == conv]
        return bool(flags and flags[-1])

    # ------------------------------------------------ the definition, by brute force

    def brute_force(self, user: str, conv: str) -> int:
        marks = [
            e.seq
            for e in self.user_events
            if e.user_id == user and e.conversation_id == conv and e.kind == "read"
        ]
        messages = self.messages[conv]
        own = [i + 1 for i, m in enumerate(messages) if m.sender_id == user]
        point = max(max(marks, default=0), max(own, default=0), self.joins[(user, conv)])
        return sum(1 for i, m in enumerate(messages) if i + 1 > point and m.sender_id != user)


def _kind(entry: InboxEntry) -> str:
    return entry.event.kind if isinstance(entry.event, UserEvent) else entry.event.entry_kind


def _conv(entry: InboxEntry) -> str:
    return entry.event.conversation_id


def _step(world: World, data: st.DataObject, step: int) -> None:
    conv = data.draw(st.sampled_from(CONVERSATIONS))
    user = data.draw(st.sampled_from(USERS))
    action = data.draw(
        st.sampled_from(["send", "send", "send", "read", "read", "join", "leave", "mute", "again"])
    )
    if action == "send":
        world.command(MessageSent(new_event_id(), conv, user, f"m{step}", "text/plain", "hi", 1))
    elif action == "join":  # the owner (u0) adds
        world.command(MemberJoined(new_event_id(), conv, "u0", user, 1))
    elif action == "leave":
        world.command(MemberLeft(new_event_id(), conv, user, user, 1))
    elif action == "read" and (user, conv) in world.joins:
        device = data.draw(st.sampled_from(DEVICES))
        head = len(world.messages[conv])
        seen = world.seen.get((user, device, conv), 0)
        # a device marks what it has seen: a newer message, or the same one again
        seq = data.draw(st.integers(min(seen, head), head)) if head else 0
        world.seen[(user, device, conv)] = max(seen, seq)
        if seq >= 1:
            world.own(user_event(conv, user, "read", seq=seq, device=device))
    elif action == "mute" and (user, conv) in world.joins:
        kind = data.draw(st.sampled_from(["muted", "pinned"]))
        world.own(user_event(conv, user, kind, on=data.draw(st.booleans())))
    elif action == "again" and world.user_events:  # a client's retry of an earlier one
        again = data.draw(st.sampled_from(world.user_events))
        world.user_events.append(again)
        world.deliver(Delivery(again.user_id, again))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_unread_counts_equal_a_brute_force_count_of_the_log(data: st.DataObject) -> None:
    world = World()
    for conv in CONVERSATIONS:
        members = ("u0", *data.draw(st.lists(st.sampled_from(USERS[1:]), unique=True)))
        world.command(ConversationCreated(new_event_id(), conv, "u0", "group", "", members, 1))
    for step in range(data.draw(st.integers(1, 40))):
        _step(world, data, step)
        _check(world)


def _check(world: World) -> None:
    for user in USERS:
        badges = Badges(user)
        for entry in world.entries[user]:
            badges.entry(SyncEntry.from_inbox(entry).to_json())
        states = []
        for conv in CONVERSATIONS:
            if (user, conv) not in world.joins:
                assert badges.unread(conv) == 0
                continue
            server = world.server_state(user, conv)
            assert server.unread == world.brute_force(user, conv), (user, conv)
            assert badges.unread(conv) == server.unread, (user, conv)
            assert (conv in badges.muted) == world.muted(user, conv)
            own = [i + 1 for i, m in enumerate(world.messages[conv]) if m.sender_id == user]
            assert all(seq <= server.read_up_to for seq in own)  # never unread
            states.append((server, world.muted(user, conv)))
        assert badges.total() == total(states)
        markers: dict[str, int] = {}
        for entry in world.entries[user]:
            if _kind(entry) == "read":
                assert entry.event.seq > markers.get(_conv(entry), 0)  # only forward
                markers[_conv(entry)] = entry.event.seq


def test_a_marker_behind_the_users_changes_nothing() -> None:
    sync = SyncSequencer(StateStore())
    first = sync.assign(Delivery("bob", user_event("g", "bob", "read", seq=5, device="pc")))
    behind = sync.assign(Delivery("bob", user_event("g", "bob", "read", seq=3, device="phone")))
    same = sync.assign(Delivery("bob", user_event("g", "bob", "read", seq=5, device="phone")))
    ahead = sync.assign(Delivery("bob", user_event("g", "bob", "read", seq=6, device="phone")))
    assert first is not None
    assert ahead is not None
    assert (behind, same) == (None, None)
    assert (first.sync_seq, ahead.sync_seq) == (1, 2)  # dense: nothing was skipped
    assert sync.marker("bob", "g") == 6
