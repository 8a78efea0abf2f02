"""The membership roster: who is in which conversation, as a compacted topic.

The sequencer writes, in the same transaction as the timeline, one record per
membership fact it accepts (``im.members``, compacted):

    key ["<conversation>"]            value {"kind": ..., "created_by": ..., "event_no": n,
                                             "roles": true}   (a group with roles)
    key ["<conversation>", "<user>"]  value {"event_no": n}   (a member)
                                      or {"event_no": n, "role": "owner" | "admin"}
    key ["<conversation>", "<user>"]  no value (a tombstone)  (left)

A member's record is rewritten when their role changes (pipeline/model/roles.py);
``"roles": true`` marks a group made since roles exist (older ones have none).

Keys are JSON arrays, so any id works. Reading the topic from the beginning
gives every conversation that exists and its current members; compaction keeps
it at one record per fact. Services that must check membership on a hot path
(the gateway's send) follow it instead of asking the store.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from pipeline.errors import EventError
from pipeline.model.events import (
    ConversationCreated,
    MemberJoined,
    MemberLeft,
    MemberRoleSet,
    TimelineEvent,
)
from pipeline.model.roles import created_roles

Fact = tuple[bytes, bytes | None]


def facts(event: TimelineEvent) -> list[Fact]:
    """The roster records an accepted event writes (none for a message)."""
    command = event.command
    conv = command.conversation_id
    member = orjson.dumps({"event_no": event.event_no})
    if isinstance(command, ConversationCreated):
        created: dict[str, object] = {
            "kind": command.kind,
            "created_by": command.actor_id,
            "event_no": 1,
        }
        roles = created_roles(command) or {}
        if command.kind == "group":
            created["roles"] = True
        return [
            (orjson.dumps([conv]), orjson.dumps(created)),
            *(
                (orjson.dumps([conv, user]), _member(event.event_no, roles.get(user)))
                for user in sorted(set(command.members))
            ),
        ]
    if isinstance(command, MemberJoined):
        return [(orjson.dumps([conv, command.user_id]), member)]
    if isinstance(command, MemberLeft):
        return [(orjson.dumps([conv, command.user_id]), None)]
    if isinstance(command, MemberRoleSet):
        role = None if command.role == "member" else command.role
        return [(orjson.dumps([conv, command.user_id]), _member(event.event_no, role))]
    return []


def _member(event_no: int, role: str | None) -> bytes:
    if role is None:
        return orjson.dumps({"event_no": event_no})
    return orjson.dumps({"event_no": event_no, "role": role})


@dataclass(frozen=True, slots=True)
class Change:
    conversation_id: str
    user_id: str | None
    """None: the conversation itself (it exists)."""
    present: bool
    role: str | None = None
    """A member's role (owner, admin), if any; of the conversation itself: "roles"
    when it is a group with roles."""


def parse(key: bytes | None, value: bytes | None) -> Change:
    """One roster record; EventError if it is not one."""
    try:
        ids = orjson.loads(key or b"")
    except orjson.JSONDecodeError:
        raise EventError("roster key is not JSON") from None
    if (
        not isinstance(ids, list)
        or not 1 <= len(ids) <= 2
        or not all(isinstance(i, str) for i in ids)
    ):
        raise EventError("roster key must be [conversation] or [conversation, user]")
    user = ids[1] if len(ids) == 2 else None
    role = None
    if value is not None and b'"role' in value:  # most records have none: skip the parse
        try:
            body = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise EventError("roster value is not JSON") from None
        if user is not None and body.get("role") in ("owner", "admin"):
            role = body["role"]
        elif user is None and body.get("roles") is True:
            role = "roles"
    return Change(ids[0], user, value is not None, role)


class Roster:
    """Conversations and their members, built from roster records in log order."""

    def __init__(self) -> None:
        self.members: dict[str, set[str]] = {}
        self.roles: dict[str, dict[str, str]] = {}
        """A group with roles → its owners and admins (pipeline/model/roles.py)."""

    def apply(self, change: Change) -> None:
        conv = change.conversation_id
        members = self.members.setdefault(conv, set())
        if change.user_id is None:
            if change.role == "roles":
                self.roles.setdefault(conv, {})
            return
        if change.present:
            members.add(change.user_id)
        else:
            members.discard(change.user_id)
        roles = self.roles.get(conv)
        if change.role is not None:
            # a role is only written for a group with roles; its record may come first
            self.roles.setdefault(conv, {})[change.user_id] = change.role
        elif roles is not None:
            roles.pop(change.user_id, None)

    def roles_of(self, conversation_id: str) -> dict[str, str] | None:
        """A group's owners and admins; None for a conversation without roles."""
        return self.roles.get(conversation_id)

    def exists(self, conversation_id: str) -> bool:
        return conversation_id in self.members

    def is_member(self, conversation_id: str, user_id: str) -> bool:
        return user_id in self.members.get(conversation_id, ())

    def __len__(self) -> int:
        return sum(len(m) for m in self.members.values())
