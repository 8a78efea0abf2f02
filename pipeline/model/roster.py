"""The membership roster: who is in which conversation, as a compacted topic.

The sequencer writes, in the same transaction as the timeline, one record per
membership fact it accepts (``im.members``, compacted):

    key ["<conversation>"]            value {"kind": ..., "created_by": ..., "event_no": n}
    key ["<conversation>", "<user>"]  value {"event_no": n}   (a member)
    key ["<conversation>", "<user>"]  no value (a tombstone)  (left)

Keys are JSON arrays, so any id works. Reading the topic from the beginning
gives every conversation that exists and its current members; compaction keeps
it at one record per fact. Services that must check membership on a hot path
(the gateway's send) follow it instead of asking the store.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from pipeline.errors import EventError
from pipeline.model.events import ConversationCreated, MemberJoined, MemberLeft, TimelineEvent

Fact = tuple[bytes, bytes | None]


def facts(event: TimelineEvent) -> list[Fact]:
    """The roster records an accepted event writes (none for a message)."""
    command = event.command
    conv = command.conversation_id
    member = orjson.dumps({"event_no": event.event_no})
    if isinstance(command, ConversationCreated):
        created = {"kind": command.kind, "created_by": command.actor_id, "event_no": 1}
        return [
            (orjson.dumps([conv]), orjson.dumps(created)),
            *((orjson.dumps([conv, user]), member) for user in sorted(set(command.members))),
        ]
    if isinstance(command, MemberJoined):
        return [(orjson.dumps([conv, command.user_id]), member)]
    if isinstance(command, MemberLeft):
        return [(orjson.dumps([conv, command.user_id]), None)]
    return []


@dataclass(frozen=True, slots=True)
class Change:
    conversation_id: str
    user_id: str | None
    """None: the conversation itself (it exists)."""
    present: bool


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
    return Change(ids[0], user, value is not None)


class Roster:
    """Conversations and their members, built from roster records in log order."""

    def __init__(self) -> None:
        self.members: dict[str, set[str]] = {}

    def apply(self, change: Change) -> None:
        members = self.members.setdefault(change.conversation_id, set())
        if change.user_id is None:
            return
        if change.present:
            members.add(change.user_id)
        else:
            members.discard(change.user_id)

    def exists(self, conversation_id: str) -> bool:
        return conversation_id in self.members

    def is_member(self, conversation_id: str, user_id: str) -> bool:
        return user_id in self.members.get(conversation_id, ())

    def __len__(self) -> int:
        return sum(len(m) for m in self.members.values())
