"""Fan-out planning (write diffusion): who receives each timeline event.

Pure logic over a :class:`~pipeline.state.StateStore` holding the membership
of the conversations of one ``im.timeline`` partition (``m/<conversation>`` →
sorted member ids), rebuilt from the timeline itself in log order, so every
event reaches exactly the members at its position in the log:

    created   every initial member
    joined    the members after the join (the newcomer included)
    left      the members before the leave (the leaver included, last entry)
    message   every member, the sender included (their other devices sync too)
"""

from __future__ import annotations

from pipeline.events import (
    ConversationCreated,
    MemberJoined,
    MemberLeft,
    TimelineEvent,
)
from pipeline.sequencing import members_key
from pipeline.state import StateStore


class Fanout:
    def __init__(self, state: StateStore) -> None:
        self.state = state

    def recipients(self, event: TimelineEvent) -> list[str]:
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
