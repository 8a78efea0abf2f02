"""Group roles: the rules as the sequencer applies them, and what the roster (the
gateway's copy) makes of the same events.

The property test plays random member changes by random actors against the
sequencer and checks, after every one, that a group always has an owner, that
every owner and admin is a member, that the roster built from the accepted
events' records says the same as the sequencer's state, and that a change is
refused exactly when the rules say so."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.model import roster
from pipeline.model.events import (
    ConversationCreated,
    Limits,
    MemberChange,
    MemberJoined,
    MemberLeft,
    MemberRoleSet,
    Role,
    TimelineEvent,
    decode_delivery,
    delivery_view,
    encode_deliveries,
    new_event_id,
)
from pipeline.model.membership import members_key
from pipeline.model.roles import refusal
from pipeline.model.sequencing import Accepted, Rejected, Sequencer
from pipeline.model.state import StateStore

USERS = ("alice", "bob", "carol", "dave", "erin")


def sequencer() -> Sequencer:
    return Sequencer(StateStore(), dedupe_window_ms=1_000, max_group_size=10)


def create(admins: tuple[str, ...] = ("bob",)) -> ConversationCreated:
    return ConversationCreated(
        new_event_id(), "g", "alice", "group", "", ("alice", "bob", "carol"), 0, admins=admins
    )


def join(actor: str, user: str) -> MemberJoined:
    return MemberJoined(new_event_id(), "g", actor, user, 0)


def leave(actor: str, user: str) -> MemberLeft:
    return MemberLeft(new_event_id(), "g", actor, user, 0)


def role(actor: str, user: str, to: Role) -> MemberRoleSet:
    return MemberRoleSet(new_event_id(), "g", actor, user, to, 0)


def reason(s: Sequencer, command: MemberChange) -> str | None:
    outcome = s.apply(command, 0)
    return outcome.reason if isinstance(outcome, Rejected) else None


def test_the_creator_owns_a_group_and_names_its_first_admins() -> None:
    s = sequencer()
    assert isinstance(s.apply(create(), 0), Accepted)
    assert s.roles("g") == {"alice": "owner", "bob": "admin"}


def test_who_may_add_and_remove_whom() -> None:
    s = sequencer()
    s.apply(create(), 0)
    assert reason(s, join("carol", "dave")) == "only the owners and admins of g add members"
    assert reason(s, join("bob", "dave")) is None  # an admin adds
    assert reason(s, leave("carol", "dave")) == "only the owners and admins of g remove members"
    assert reason(s, leave("bob", "alice")) == "an admin of g cannot remove its owner alice"
    assert reason(s, leave("bob", "bob")) is None  # anyone leaves
    assert reason(s, role("alice", "carol", "admin")) is None
    assert reason(s, leave("carol", "dave")) is None  # an admin removes a member
    assert reason(s, leave("alice", "carol")) is None  # an owner removes an admin
    assert s.state.get(members_key("g")) == ["alice"]
    assert s.roles("g") == {"alice": "owner"}


def test_the_last_owner_hands_over_before_leaving() -> None:
    s = sequencer()
    s.apply(create(), 0)
    last = "alice is the last owner of g and cannot leave: make another member an owner first"
    assert reason(s, leave("alice", "alice")) == last
    assert reason(s, role("alice", "alice", "admin")) == last.replace("leave", "become admin")
    assert reason(s, role("bob", "carol", "owner")) == "only the owners of g set roles"
    assert reason(s, role("alice", "bob", "owner")) is None
    assert reason(s, role("alice", "bob", "owner")) == "bob is already owner of g"
    assert reason(s, leave("alice", "alice")) is None
    assert s.roles("g") == {"bob": "owner"}
    assert reason(s, role("bob", "alice", "admin")) == "alice is not a member of conversation g"


def test_a_group_made_before_roles_keeps_the_old_rules() -> None:
    s = sequencer()
    s.apply(create(), 0)
    s.state.delete("r/g")  # what a sequencer's state from before roles holds
    assert reason(s, join("carol", "dave")) is None
    assert reason(s, leave("carol", "alice")) is None
    assert (
        reason(s, role("bob", "carol", "owner"))
        == "conversation g was created before roles existed"
    )


def test_a_creation_with_admins_is_delivered_as_its_receivers_see_it() -> None:
    """A receiver's copy lists only the creator as a member (delivery_view): its
    admins go too, or the copy would not decode (they would not be members)."""
    first = sequencer().apply(create(), 0)
    assert isinstance(first, Accepted)
    ((_, raw),) = encode_deliveries(delivery_view(first.event), ["carol"])
    delivered = decode_delivery(raw, Limits())
    assert delivered.event.command == replace(first.event.command, members=("alice",), admins=())


def test_a_direct_conversation_has_no_roles() -> None:
    s = sequencer()
    direct = ConversationCreated(new_event_id(), "dm:a:b", "a", "direct", "", ("a", "b"), 0)
    assert isinstance(s.apply(direct, 0), Accepted)
    assert s.roles("dm:a:b") is None


def _roster_of(events: list[TimelineEvent]) -> roster.Roster:
    r = roster.Roster()
    for event in events:
        for key, value in roster.facts(event):
            r.apply(roster.parse(key, value))
    return r


COMMANDS = st.lists(
    st.tuples(
        st.sampled_from(("join", "leave", "role")),
        st.sampled_from(USERS),
        st.sampled_from(USERS),
        st.sampled_from(("owner", "admin", "member")),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(COMMANDS)
def test_a_group_always_has_an_owner_and_the_roster_agrees(commands: list[tuple]) -> None:  # type: ignore[type-arg]
    s = sequencer()
    first = s.apply(create(), 0)
    assert isinstance(first, Accepted)
    events = [first.event]
    for what, actor, user, to in commands:
        command: MemberChange = (
            join(actor, user)
            if what == "join"
            else leave(actor, user)
            if what == "leave"
            else role(actor, user, to)
        )
        members = s.state.get(members_key("g"), [])
        expected = refusal(command, members, s.roles("g"))
        outcome = s.apply(command, 0)
        assert isinstance(outcome, Rejected) == (expected is not None)
        if isinstance(outcome, Accepted):
            events.append(outcome.event)
        roles = s.roles("g") or {}
        members = s.state.get(members_key("g"), [])
        assert "owner" in roles.values()  # so never empty: the last owner cannot leave
        assert set(roles) <= set(members)
        shown = _roster_of(events)
        assert shown.members["g"] == set(members)
        assert shown.roles_of("g") == roles
