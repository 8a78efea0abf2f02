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
    TimelineEvent,
)
from pipeline.model.membership import members_after, members_key, recipients
from pipeline.model.state import StateStore


def large_key(conversation_id: str) -> str:
    return f"L/{conversation_id}"


class Fanout:
    """Plans receivers by replaying membership from the timeline itself, in log
    order (the sequencer plans them from its own state as it sequences; the
    checker replays with this to verify what the sync timelines hold)."""

    def __init__(self, state: StateStore) -> None:
        self.state = state

    def recipients(self, event: TimelineEvent) -> list[str]:
        command = event.command
        large = large_key(command.conversation_id)
        if large in self.state:
            return recipients(event, [], [], was_large=True)
        key = members_key(command.conversation_id)
        before: list[str] = self.state.get(key, [])
        after = members_after(command, before)
        if event.large:  # the switch: from here on members read the storage timeline
            self.state.put(large, 1)
            self.state.delete(key)
        elif after is not before:
            self.state.put(key, after)
        return recipients(event, before, after, was_large=False)
