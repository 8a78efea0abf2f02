"""A user's conversation list and unread counts (docs/read-state.md).

ClickHouse joins, per conversation the user is in now, the user's own
positions (``user_conversations``: join point, read marker, last sent seq,
mute, pin) with its head and last activity (``conversation_heads``), and
counts unread by the rule of pipeline/model/unread.py (queries.USER_LIST_PAGE,
USER_UNREAD): the gateway decodes one page and one total, not a row per
conversation (a user in 10,000 conversations: BENCHMARKS.md, "Read state");
then the page's titles and last messages (queries.LIST_DETAILS). The tables are kept by
materialized views (migration 0007) as the sinks write, so a list is as fresh
as the stores: a moment behind the log, never wrong about what it has.

Order: pinned first, then by last activity (the last message, else the
creation), newest first; ties by conversation id. A page ends with
``next_before``, the position of its last item (``<pinned>:<ts_ms>:<id>``),
which the next request passes as ``before``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ValidationError
from pipeline.model.unread import ReadState
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


async def page(
    store: ClickHouse,
    user_id: str,
    members: Callable[[str], int | None],
    *,
    limit: int,
    before: Position | None,
) -> Page:
    """A page of ``user_id``'s list (``members``: a conversation's member count, from
    the gateway's roster). The server orders, counts and cuts the page; then the
    page's titles and last messages. The badge is :func:`unread`, on its own: it
    sums over every conversation, which a page need not wait for."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit must be between 1 and {MAX_PAGE}")
    pinned, activity, after = before if before is not None else (2, 0, "")
    params = {
        "user_id": user_id,
        "pinned": pinned,
        "activity": activity,
        "conversation_id": after,
        "limit": limit + 1,  # one more: is there a next page
    }
    rows = await store.execute(queries.USER_LIST_PAGE, params)
    more = len(rows) > limit
    rows = rows[:limit]
    details: dict[tuple[str, str], tuple[str, str, str]] = {}
    if rows:
        ids = tuple(row[0] for row in rows)
        found = await store.execute(queries.LIST_DETAILS, {"conversation_ids": ids})
        details = {(what, conv): (a, b, c) for what, conv, a, b, c in found}
    shown = [_summary(row, details, members) for row in rows]
    return Page(shown, format_position(shown[-1].position) if more else None)


def _summary(
    row: Any,
    details: dict[tuple[str, str], tuple[str, str, str]],
    members: Callable[[str], int | None],
) -> Summary:
    conv, head, joined_after, marker, sent, muted, pinned, activity = row
    sender, content_type, preview = details.get(("head", conv), ("", "", ""))
    kind, title, _ = details.get(("info", conv), ("", "", ""))
    return Summary(
        conversation_id=conv,
        kind=kind,
        title=title,
        members=members(conv),
        last_message=LastMessage(int(head), sender, content_type, preview, int(activity))
        if head
        else None,
        state=ReadState(int(head), int(joined_after), int(marker), int(sent)),
        muted=bool(muted),
        pinned=bool(pinned),
        activity_ts_ms=int(activity),
    )


async def unread(store: ClickHouse, user_id: str) -> Unread:
    rows = await store.execute(queries.USER_UNREAD, {"user_id": user_id})
    total_, with_unread, _ = rows[0] if rows else (0, 0, 0)
    return Unread(int(total_ or 0), int(with_unread or 0))
