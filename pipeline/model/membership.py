"""Membership rules shared by sequencing and diffusion: who is a member after an
event, and who gets a sync entry for it (the rules are spelled out in
pipeline/model/diffusion.py). Pure functions over member lists."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.model.events import (
    Command,
    ConversationCreated,
    MemberJoined,
    MemberLeft,
    MessageSent,
    TimelineEvent,
)

MEMBERS_PREFIX = "m/"


def members_key(conversation_id: str) -> str:
    """The state key of a conversation's sorted member ids."""
    return f"{MEMBERS_PREFIX}{conversation_id}"


def members_after(command: Command, before: list[str]) -> list[str]:
    """The members after ``command`` (``before`` itself when it changes nothing)."""
    if isinstance(command, ConversationCreated):
        return sorted(command.members)
    if isinstance(command, MemberJoined) and command.user_id not in before:
        return sorted([*before, command.user_id])
    if isinstance(command, MemberLeft):
        return [m for m in before if m != command.user_id]
    return before


def recipients(
    event: TimelineEvent, before: Sequence[str], after: Sequence[str], was_large: bool
) -> list[str]:
    """Who gets a sync entry for ``event``, given the conversation's members just
    before and just after it and whether it was already large (read diffused)
    before it: the rules in pipeline/model/diffusion.py's docstring."""
    if event.large and was_large:
        return read_diffused(event)
    if isinstance(event.command, MemberLeft):
        return list(before)
    return list(after)


def read_diffused(event: TimelineEvent) -> list[str]:
    """A large group's event: nobody for a message (members read the storage
    timeline), the member who joined or left (and the actor) otherwise."""
    command = event.command
    if isinstance(command, MessageSent):
        return []
    if isinstance(command, ConversationCreated):  # not after the switch; for completeness
        return sorted(command.members)
    return sorted({command.user_id, command.actor_id})
