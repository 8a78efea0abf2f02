"""The client side of read diffusion: a device's cursor in each large group.

A large group's messages are not in the sync timeline; a device reads them
after its cursor in the group, from ``groups`` of each pull and from
``group_message`` pushes, with the rule of the sync cursor: a message whose
``seq`` is the cursor + 1 is applied, an older one skipped, a newer one means
a gap to pull. Where reading starts comes from the sync timeline (a large
group's entry that makes the user a member: reading starts after its ``seq``)
or from a pull (``after``: the server may move a cursor forward over what the
user may not read, like the time between a leave and a rejoin).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any, Literal

Entry = dict[str, Any]
Decision = Literal["apply", "skip", "pull"]


class GroupReader:
    def __init__(self, on_message: Callable[[str, Entry], None] | None = None) -> None:
        self.on_message = on_message
        """Called with each message applied (the client's badges count them)."""
        self.cursors: dict[str, int] = {}
        self.entries: dict[str, list[Entry]] = defaultdict(list)
        """What the device applied of each group, in order."""
        self._acked: dict[str, int] = {}

    def param(self) -> str:
        """The cursors as the ``groups`` query parameter of a pull."""
        return ",".join(f"{conv}:{seq}" for conv, seq in sorted(self.cursors.items()))

    def learn(self, user_id: str, entry: Entry) -> None:
        """A sync entry was applied: a large group's membership change that makes the
        user a member (their own join, the switch, a creation) starts a cursor at its
        seq, unless the device reads the group already."""
        if not entry.get("large") or entry["kind"] == "message":
            return
        own_leave = entry["kind"] == "left" and entry["subject_id"] == user_id
        if not own_leave:
            self.cursors.setdefault(entry["conversation_id"], entry["seq"])

    def decide(self, conv: str, seq: int) -> Decision:
        """What to do with a pushed message (an unknown group: pull to learn it)."""
        cursor = self.cursors.get(conv)
        if cursor is None or seq > cursor + 1:
            return "pull"
        return "apply" if seq == cursor + 1 else "skip"

    def apply(self, conv: str, message: Entry) -> bool:
        if self.decide(conv, message["seq"]) != "apply":
            return False
        self.entries[conv].append(message)
        self.cursors[conv] = message["seq"]
        if self.on_message is not None:
            self.on_message(conv, message)
        return True

    def apply_pages(self, pages: list[Entry]) -> bool:
        """A pull's ``groups``; whether any cursor moved (then there may be more)."""
        moved = False
        for page in pages:
            conv = page["conversation_id"]
            if page["after"] > self.cursors.get(conv, -1):
                self.cursors[conv] = page["after"]  # the server starts (or moves) it here
                moved = True
            for message in page["messages"]:
                moved |= self.apply(conv, message)
        return moved

    def reached(self, conv: str, seq: int) -> bool:
        return self.cursors.get(conv, -1) >= seq

    def to_ack(self) -> dict[str, int]:
        """The cursors that moved since they were last acked."""
        return {c: s for c, s in self.cursors.items() if s > self._acked.get(c, -1)}

    def acked(self, cursors: dict[str, int]) -> None:
        self._acked.update(cursors)
