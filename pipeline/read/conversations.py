"""A user's conversation list and unread counts (docs/read-state.md).

Four queries at once, all by user (or by the conversations the user has been
in, a subquery on ``membership_by_user``): the conversations the user is in
now with their join points, their heads and last messages, their titles and
kinds, and the user's own positions (read markers, last sent seqs, mutes and
pins). The counts come from pipeline/model/unread.py. The tables are kept by
materialized views (migration 0007) as the sinks write, so a list is as fresh
as the stores: a moment behind the log, never wrong about what it has.

Order: pinned first, then by last activity (the last message, else the
creation), newest first; ties by conversation id. A page ends with
``next_before``, the position of its last item (``<pinned>:<ts_ms>:<id>``),
which the next request passes as ``before``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ValidationError
from pipeline.model.unread import ReadState, total
from pipeline.store import queries
from pipeline.store.clickhouse import ClickHouse

MAX_PAGE = 200

Position = tuple[int, int, str]
"""(pinned, activity ts_ms, conversation_id): a list is ordered by it, descending."""


@dataclass(frozen=True, slots=True)
class LastMessage:
    seq: int
    sender_id: str
    content_type: str
    preview: str
    ts_ms: int


@dataclass(frozen=True, slots=True)
class Summary:
    conversation_id: str
    kind: str
    title: str
    members: int | None
    last_message: LastMessage | None
    state: ReadState
    muted: bool
    pinned: bool
    activity_ts_ms: int

    @property
    def position(self) -> Position:
        return (int(self.pinned), self.activity_ts_ms, self.conversation_id)

    def to_json(self) -> dict[str, Any]:
        last = self.last_message
        return {
            "conversation_id": self.conversation_id,
            "kind": self.kind,
            "title": self.title,
            "members": self.members,
            "last_message": None
            if last is None
            else {
                "seq": last.seq,
                "sender_id": last.sender_id,
                "content_type": last.content_type,
                "preview": last.preview,
                "ts_ms": last.ts_ms,
            },
            "unread": self.state.unread,
            "mentions": 0,  # kept for the mentions issue: no mention is counted yet
            "muted": self.muted,
            "pinned": self.pinned,
            "read_seq": self.state.marker,
            "activity_ts_ms": self.activity_ts_ms,
        }


@dataclass(frozen=True, slots=True)
class Page:
    conversations: list[Summary]
    next_before: str | None
    unread_total: int


@dataclass(frozen=True, slots=True)
class Unread:
    total: int
    conversations: int
    """How many conversations have something unread (muted ones included)."""


def parse_before(raw: str | None) -> Position | None:
    if raw is None:
        return None
    pinned, _, rest = raw.partition(":")
    ts, _, conversation_id = rest.partition(":")
    if pinned not in ("0", "1") or not ts.isdigit() or len(ts) > 18 or not conversation_id:
        raise ValidationError(
            "query parameter 'before' must be a list's next_before (<pinned>:<ts_ms>:<id>)"
        )
    return (int(pinned), int(ts), conversation_id)


def format_position(position: Position) -> str:
    return f"{position[0]}:{position[1]}:{position[2]}"


async def summaries(
    store: ClickHouse, user_id: str, members: Callable[[str], int | None], *, info: bool = True
) -> list[Summary]:
    """Every conversation ``user_id`` is in now (``members``: a conversation's member
    count, from the gateway's roster)."""
    params = {"user_id": user_id}
    statements = [queries.USER_CONVERSATIONS, queries.USER_HEADS, queries.USER_READ_STATE]
    if info:
        statements.append(queries.USER_CONVERSATION_INFO)
    results = await asyncio.gather(*(store.execute(sql, params) for sql in statements))
    joined, heads, own = results[0], results[1], results[2]
    described = {row[0]: row[1:] for row in results[3]} if info else {}
    last = {
        conv: LastMessage(int(seq), sender, content_type, preview, int(ts_ms))
        for conv, seq, sender, content_type, preview, ts_ms in heads
    }
    positions: dict[tuple[str, str], int] = {(what, conv): int(v) for what, conv, v in own}
    found = []
    for conversation_id, joined_after in joined:
        head = last.get(conversation_id)
        kind, title, created_ms = described.get(conversation_id, ("", "", 0))
        state = ReadState(
            head=head.seq if head else 0,
            joined_after=int(joined_after),
            marker=positions.get(("read", conversation_id), 0),
            last_sent=positions.get(("sent", conversation_id), 0),
        )
        found.append(
            Summary(
                conversation_id,
                kind,
                title,
                members(conversation_id),
                head,
                state,
                muted=bool(positions.get(("muted", conversation_id), 0)),
                pinned=bool(positions.get(("pinned", conversation_id), 0)),
                activity_ts_ms=max(head.ts_ms if head else 0, int(created_ms)),
            )
        )
    return found


async def page(
    store: ClickHouse,
    user_id: str,
    members: Callable[[str], int | None],
    *,
    limit: int,
    before: Position | None,
) -> Page:
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit must be between 1 and {MAX_PAGE}")
    every = await summaries(store, user_id, members)
    ordered = sorted(every, key=lambda s: s.position, reverse=True)
    if before is not None:
        ordered = [s for s in ordered if s.position < before]
    shown = ordered[:limit]
    more = len(ordered) > limit
    return Page(
        shown,
        format_position(shown[-1].position) if more else None,
        total((s.state, s.muted) for s in every),
    )


async def unread(store: ClickHouse, user_id: str) -> Unread:
    every = await summaries(store, user_id, lambda _: None, info=False)
    return Unread(total((s.state, s.muted) for s in every), sum(1 for s in every if s.state.unread))
