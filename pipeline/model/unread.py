"""Unread counts from seqs, never from increments (docs/read-state.md).

A user's position in a conversation is four seqs: the conversation's head (its
last message), the point the user joined after, the user's read marker, and
the seq of the user's own last message. Everything up to the highest of the
last three is read; seqs are dense and none of the user's own messages comes
after their last one, so

    unread = head - max(marker, last_sent, joined_after)     (at least 0)

counts exactly the others' messages after the read point. Nothing here is
incremented, so nothing drifts: a redelivered event, a replayed batch or a
second device changes none of the four (each only moves forward).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReadState:
    head: int = 0
    joined_after: int = 0
    marker: int = 0
    last_sent: int = 0

    @property
    def read_up_to(self) -> int:
        return max(self.marker, self.last_sent, self.joined_after)

    @property
    def unread(self) -> int:
        return max(0, self.head - self.read_up_to)


def total(states: Iterable[tuple[ReadState, bool]]) -> int:
    """The app badge: the unread of every conversation that is not muted."""
    return sum(state.unread for state, muted in states if not muted)


def read_by(points: Iterable[tuple[str, int]], members: set[str], sender: str, seq: int) -> int:
    """How many members other than ``sender`` have read up to ``seq``, from each
    user's read point (``read_points``: the higher of their marker and their last
    message); users who are not members any more do not count."""
    return sum(1 for user, point in points if point >= seq and user != sender and user in members)


class Badges:
    """A device's own unread counts, from the entries it applies (the reference
    client keeps its badges so): each entry moves one of the four seqs of
    :class:`ReadState` forward, so a badge is exact for what the device has
    applied, and a read marker from another device clears it here too.

    ``entry``: a sync entry as devices get it (pipeline/read/sync_timeline.py);
    ``message``: a large group's message (read diffusion), with its ``seq`` and
    ``sender_id``."""

    def __init__(self, user_id: str = "") -> None:
        self.user_id = user_id
        self.states: dict[str, ReadState] = {}
        self.muted: set[str] = set()
        self.pinned: set[str] = set()

    def entry(self, entry: dict[str, object]) -> None:
        conv, kind, seq = str(entry["conversation_id"]), entry["kind"], int(entry["seq"])  # type: ignore[call-overload]
        state = self.states.get(conv)
        mine = entry.get("subject_id") == self.user_id
        if kind == "message":
            self.message(conv, entry)
        elif kind == "created" or (kind == "joined" and mine):
            if state is None or kind == "joined":
                self.states[conv] = ReadState(head=seq, joined_after=seq)
        elif kind == "left" and mine:
            self.states.pop(conv, None)
        elif kind == "read" and state is not None:
            self.states[conv] = _moved(state, marker=seq)
        elif kind in ("muted", "pinned"):
            flags = self.muted if kind == "muted" else self.pinned
            (flags.add if entry.get("body") == "on" else flags.discard)(conv)

    def message(self, conv: str, message: dict[str, object]) -> None:
        state = self.states.get(conv)
        if state is None:
            return
        seq = int(message["seq"])  # type: ignore[call-overload]
        own = message.get("sender_id") == self.user_id
        self.states[conv] = _moved(state, head=seq, last_sent=seq if own else 0)

    def unread(self, conv: str) -> int:
        state = self.states.get(conv)
        return 0 if state is None else state.unread

    def total(self) -> int:
        return total((s, c in self.muted) for c, s in self.states.items())


def _moved(state: ReadState, **seqs: int) -> ReadState:
    """``state`` with each given seq moved forward (never back)."""
    return ReadState(
        head=max(state.head, seqs.get("head", 0)),
        joined_after=max(state.joined_after, seqs.get("joined_after", 0)),
        marker=max(state.marker, seqs.get("marker", 0)),
        last_sent=max(state.last_sent, seqs.get("last_sent", 0)),
    )
