"""Fan-out planning inside the sequencer agrees with replaying the timeline.

The sequencer plans each event's receivers from its own membership state as it
sequences (one transaction for the timeline and the deliveries); the checker
replays the timeline with :class:`Fanout` to verify the sync timelines. Over
random interleavings of creations, joins, leaves, messages (from members and
not), and groups crossing the read diffusion threshold, both must name the same
receivers for every accepted event, and only members at that position.
"""

from __future__ import annotations

import random

from pipeline.model.diffusion import Fanout
from pipeline.model.events import (
    Command,
    ConversationCreated,
    MemberJoined,
    MemberLeft,
    MessageSent,
    new_event_id,
)
from pipeline.model.naming import direct_conversation_id
from pipeline.model.sequencing import Accepted, Sequencer
from pipeline.model.state import StateStore

USERS = [f"u{i}" for i in range(8)]
DIRECT = direct_conversation_id("u0", "u1")


def random_command(rng: random.Random, members: dict[str, set[str]]) -> Command:
    conversation = rng.choice(["g1", "g2", "g3", DIRECT])
    known = members.get(conversation)
    if known is None:
        people = tuple(rng.sample(USERS, rng.randint(1, 3)))
        if conversation == DIRECT:
            people = tuple(rng.sample(["u0", "u1"], 2))
        kind = "direct" if conversation == DIRECT else "group"
        return ConversationCreated(new_event_id(), conversation, people[0], kind, "", people, 0)  # type: ignore[arg-type]
    actor = rng.choice([*sorted(known), rng.choice(USERS)])  # sometimes a stranger
    roll = rng.random()
    if roll < 0.25:
        return MemberJoined(new_event_id(), conversation, actor, rng.choice(USERS), 0)
    if roll < 0.4:
        return MemberLeft(new_event_id(), conversation, actor, rng.choice(USERS), 0)
    return MessageSent(new_event_id(), conversation, actor, new_event_id(), "text/plain", "x", 0)


def plan_and_replay(seed: int) -> tuple[int, int]:
    """Run one random interleaving; return (accepted events, large events)."""
    rng = random.Random(seed)
    sequencer = Sequencer(
        StateStore(), dedupe_window_ms=1_000, max_group_size=6, read_diffusion_threshold=3
    )
    replay = Fanout(StateStore())
    members: dict[str, set[str]] = {}
    accepted = large = 0
    for at in range(300):
        command = random_command(rng, members)
        outcome = sequencer.apply(command, at)
        if not isinstance(outcome, Accepted):
            continue
        accepted += 1
        large += outcome.event.large
        conversation = command.conversation_id
        before = set(members.get(conversation, set()))
        if isinstance(command, ConversationCreated):
            members[conversation] = set(command.members)
        elif isinstance(command, MemberJoined):
            members[conversation].add(command.user_id)
        elif isinstance(command, MemberLeft):
            members[conversation].discard(command.user_id)
        planned = outcome.recipients
        assert planned == replay.recipients(outcome.event), (seed, at, command)
        assert len(set(planned)) == len(planned)
        # members at this position only: before a leave (the leaver's last entry),
        # after anything else; every one of them unless the group is read diffused
        at_position = before if isinstance(command, MemberLeft) else members[conversation]
        assert set(planned) <= at_position
        if not outcome.event.large:
            assert set(planned) == at_position
    return accepted, large


def test_the_sequencer_plans_what_a_replay_of_the_timeline_plans() -> None:
    totals = [plan_and_replay(seed) for seed in range(100)]
    assert all(accepted > 50 for accepted, _ in totals)
    assert sum(large for _, large in totals) > 100  # read diffusion was exercised
