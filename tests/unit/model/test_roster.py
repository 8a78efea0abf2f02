"""The roster (im.members): the facts the sequencer writes rebuild the membership
that sequencing holds, whatever the order of creations, joins and leaves."""

from __future__ import annotations

import random

import pytest

from pipeline.errors import EventError
from pipeline.model.events import ConversationCreated, MemberJoined, MemberLeft, TimelineEvent
from pipeline.model.membership import members_after
from pipeline.model.roster import Roster, facts, parse

USERS = ["ann", "ben", "cat", "dan", "ed/1", 'q"uote']


def created(conv: str, members: list[str]) -> ConversationCreated:
    return ConversationCreated("e0", conv, "ann", "group", "", tuple(members), 1)


@pytest.mark.parametrize("seed", range(200))
def test_facts_rebuild_the_members(seed: int) -> None:
    rng = random.Random(seed)
    initial = rng.sample(USERS, rng.randint(0, 4))
    commands = [created("c:1", initial)] + [
        (MemberJoined if rng.random() < 0.5 else MemberLeft)(
            f"e{i}", "c:1", "ann", rng.choice(USERS), i + 2
        )
        for i in range(rng.randint(0, 30))
    ]
    roster = Roster()
    members: list[str] = []
    for n, command in enumerate(commands, start=1):
        members = members_after(command, members)
        for key, value in facts(TimelineEvent(command, event_no=n, seq=0, ts_ms=n)):
            roster.apply(parse(key, value))
        assert roster.members["c:1"] == set(members)
    assert roster.exists("c:1")
    assert not roster.exists("c:2")
    assert roster.is_member("c:1", "ben") == ("ben" in members)


def test_a_leave_is_a_tombstone_and_keys_hold_any_id() -> None:
    left = TimelineEvent(MemberLeft("e", "c/x:1", "ann", "b,o\nb", 5), event_no=4, seq=2, ts_ms=5)
    [(key, value)] = facts(left)
    assert value is None
    change = parse(key, value)
    assert (change.conversation_id, change.user_id, change.present) == ("c/x:1", "b,o\nb", False)


def test_a_record_that_is_not_a_roster_fact_is_refused() -> None:
    for key in (b"nope", b"[]", b'["a", "b", "c"]', b"[1]", None):
        with pytest.raises(EventError):
            parse(key, b"{}")
