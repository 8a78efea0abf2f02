"""Fan-out planning: who receives each timeline event in their sync timeline.

Pure logic over a :class:`~pipeline.model.state.StateStore` holding the membership
of the conversations of one ``im.timeline`` partition, rebuilt from the
timeline itself in log order, so every event reaches exactly the members at
its position in the log. Write diffusion, for direct conversations and groups
that are not large (``m/<conversation>`` → sorted member ids):

    created   every initial member
    joined    the members after the join (the newcomer included)
    left      the members before the leave (the leaver included, last entry)
    message   every member, the sender included (their other devices sync too)

Read diffusion, for a group the sequencer marked large (``L/<conversation>``
→ 1; its member list is no longer kept here):

    the switch  (its first large event, a creation or a join): every member, as
                above; it tells each of them "messages after seq S of this group
                are read from its storage timeline"
    joined/left the member who joined or left, and the actor if someone else:
                each member's sync timeline records where their own reading
                starts and stops, without every join costing one entry per member
    message     nobody: members read the group's storage timeline (pull) and
                get it pushed while online
"""

from __future__ import annotations

from pipeline.model.events import (
    ConversationCreated,
    MemberJoined,
    MemberLeft,
    MessageSent,
    TimelineEvent,
)
from pipeline.model.sequencing import members_key
from pipeline.model.state import StateStore


def large_key(conversation_id: str) -> str:
    return f"L/{conversation_id}"


class Fanout:
    def __init__(self, state: StateStore) -> None:
        self.state = state

    def recipients(self, event: TimelineEvent) -> list[str]:
        command = event.command
        if event.large and large_key(command.conversation_id) in self.state:
            return self._read_diffused(event)
        members = self._write_diffused(event)
        if event.large:  # the switch
            self.state.put(large_key(command.conversation_id), 1)
            self.state.delete(members_key(command.conversation_id))
        return members

    def _write_diffused(self, event: TimelineEvent) -> list[str]:
        command = event.command
        key = members_key(command.conversation_id)
        members: list[str] = self.state.get(key, [])
        if isinstance(command, ConversationCreated):
            members = sorted(command.members)
            self.state.put(key, members)
        elif isinstance(command, MemberJoined):
            if command.user_id not in members:
                members = sorted([*members, command.user_id])
                self.state.put(key, members)
        elif isinstance(command, MemberLeft):
            self.state.put(key, [m for m in members if m != command.user_id])
        return members

    @staticmethod
    def _read_diffused(event: TimelineEvent) -> list[str]:
        command = event.command
        if isinstance(command, MessageSent):
            return []
        if isinstance(command, ConversationCreated):  # not after the switch; for completeness
            return sorted(command.members)
        return sorted({command.user_id, command.actor_id})
