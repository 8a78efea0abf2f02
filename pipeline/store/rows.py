"""Table rows for the ClickHouse projections of the event log (pure functions).

The store and sync agents write these; ``imstream rebuild`` writes the same
rows from a replay of the log, so a rebuilt store is identical to the original.
Column order follows the ``Insert`` definitions in pipeline/store/queries.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.model.events import (
    ConversationCreated,
    InboxEntry,
    MemberJoined,
    MemberLeft,
    MessageSent,
    TimelineEvent,
    entry_columns,
)
from pipeline.store import queries
from pipeline.store.queries import Insert

Row = tuple[Any, ...]


def _at(ts_ms: int) -> int:
    """A DateTime column value: whole seconds (the driver takes ints as they are)."""
    return ts_ms // 1000


def large_group_row(event: TimelineEvent) -> Row | None:
    """The ``large_groups`` row of a large group's membership change (else None)."""
    if not event.large or isinstance(event.command, MessageSent):
        return None
    return (event.command.conversation_id, event.event_no, event.seq)


@dataclass(slots=True)
class StoreRows:
    messages: list[Row] = field(default_factory=list)
    conversations: list[Row] = field(default_factory=list)
    membership: list[Row] = field(default_factory=list)
    large_groups: list[Row] = field(default_factory=list)
    large_heads: dict[str, tuple[int, int]] = field(default_factory=dict)

    def inserts(self) -> list[tuple[Insert, list[Row]]]:
        """What to write, in this order: a large group's head only after its rows, and
        its membership before its messages (a message a pull can read never comes
        before the leave that ends the reader's membership)."""
        heads = [(conv, seq, event_no) for conv, (seq, event_no) in self.large_heads.items()]
        return [
            (queries.INSERT_CONVERSATIONS, self.conversations),
            (queries.INSERT_MEMBERSHIP, self.membership),
            (queries.INSERT_LARGE_GROUPS, self.large_groups),
            (queries.INSERT_MESSAGES, self.messages),
            (queries.INSERT_LARGE_GROUP_HEADS, heads),
        ]

    def add(self, event: TimelineEvent) -> None:
        c = event.command
        event_id = c.event_id
        at = _at(event.ts_ms)
        if event.large:
            self._large(event)
        if isinstance(c, MessageSent):
            self.messages.append(
                (
                    c.conversation_id,
                    event.seq,
                    event.event_no,
                    event_id,
                    c.sender_id,
                    c.client_msg_id,
                    c.content_type,
                    c.body,
                    c.ts_ms,
                    event.ts_ms,
                    at,
                )
            )
        elif isinstance(c, ConversationCreated):
            self.conversations.append(
                (c.conversation_id, c.kind, c.title, c.actor_id, event_id, event.ts_ms, at)
            )
            self.membership.extend(
                (
                    c.conversation_id,
                    event.event_no,
                    member,
                    "join",
                    c.actor_id,
                    event.seq,
                    event_id,
                    event.ts_ms,
                    at,
                )
                for member in c.members
            )
        elif isinstance(c, MemberJoined | MemberLeft):
            action = "join" if isinstance(c, MemberJoined) else "leave"
            self.membership.append(
                (
                    c.conversation_id,
                    event.event_no,
                    c.user_id,
                    action,
                    c.actor_id,
                    event.seq,
                    event_id,
                    event.ts_ms,
                    at,
                )
            )

    def _large(self, event: TimelineEvent) -> None:
        conv = event.command.conversation_id
        seq, event_no = self.large_heads.get(conv, (0, 0))
        self.large_heads[conv] = (max(seq, event.seq), max(event_no, event.event_no))
        row = large_group_row(event)
        if row is not None:
            self.large_groups.append(row)

    def __len__(self) -> int:
        return len(self.messages) + len(self.conversations) + len(self.membership)


@dataclass(slots=True)
class SyncRows:
    timeline: list[Row] = field(default_factory=list)
    heads: dict[str, int] = field(default_factory=dict)
    large_groups: list[Row] = field(default_factory=list)

    def inserts(self) -> list[tuple[Insert, list[Row]]]:
        """A large group's row before the entries that announce it (a pulled entry
        learns from it that it is large), the heads last."""
        return [
            (queries.INSERT_LARGE_GROUPS, self.large_groups),
            (queries.INSERT_SYNC_TIMELINE, self.timeline),
            (queries.INSERT_SYNC_HEADS, self.head_rows()),
        ]

    def add(self, entry: InboxEntry) -> None:
        e = entry.event
        if isinstance(e, TimelineEvent):
            large = large_group_row(e)
            if large is not None:
                self.large_groups.append(large)
        self.timeline.append(
            (entry.user_id, entry.sync_seq, *entry_columns(e), entry.ts_ms, _at(entry.ts_ms))
        )
        self.heads[entry.user_id] = max(self.heads.get(entry.user_id, 0), entry.sync_seq)

    def head_rows(self) -> list[Row]:
        return list(self.heads.items())

    def __len__(self) -> int:
        return len(self.timeline)


def store_rows(events: Iterable[TimelineEvent]) -> StoreRows:
    rows = StoreRows()
    for event in events:
        rows.add(event)
    return rows
