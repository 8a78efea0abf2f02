"""Reading the roaming store: a conversation's history, paged by seq, newest first.

Seqs are dense, so a page is a key range: ``before - limit .. before - 1`` of
one conversation, read from the primary key. Any current member may read any
page, from any device, at any age; anyone else gets AccessDeniedError. A member
reads the messages of their membership periods (pipeline/read/periods.py): by
default not what was sent before they joined, nor while they were away; a page
holds the readable messages of its seq range, so it may be short, and
``next_before`` is None once no older message is readable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.errors import AccessDeniedError, ValidationError
from pipeline.read.periods import MembershipRow, Period, periods
from pipeline.store import queries
from pipeline.store.clickhouse import ClickHouse

MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class StoredMessage:
    conversation_id: str
    seq: int
    event_id: str
    sender_id: str
    client_msg_id: str
    content_type: str
    body: str
    client_ts_ms: int
    ts_ms: int

    @classmethod
    def from_row(cls, conversation_id: str, row: Sequence[Any]) -> StoredMessage:
        """From a HISTORY_RANGE row."""
        return cls(conversation_id, row[0], str(row[1]), *row[2:])

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class HistoryPage:
    messages: list[StoredMessage]
    next_before: int | None
    """Pass as ``before`` for the next (older) page; None when this page reached seq 1."""


async def is_member(store: ClickHouse, conversation_id: str, user_id: str) -> bool:
    rows = await store.execute(
        queries.MEMBER_LAST_ACTION, {"conversation_id": conversation_id, "user_id": user_id}
    )
    return bool(rows) and rows[0][0] == "join"


async def members(store: ClickHouse, conversation_id: str) -> list[str]:
    rows = await store.execute(queries.CURRENT_MEMBERS, {"conversation_id": conversation_id})
    return [r[0] for r in rows]


async def readable(
    store: ClickHouse, conversation_id: str, user_id: str, *, before_join: bool = False
) -> list[Period]:
    """A current member's periods in the conversation; AccessDeniedError for anyone
    else."""
    rows = await store.execute(
        queries.MEMBER_ACTIONS, {"conversation_id": conversation_id, "user_id": user_id}
    )
    actions: list[MembershipRow] = [(int(e), str(a), int(s)) for e, a, s in rows]
    found = periods(actions, before_join=before_join)
    if not found or found[-1].until is not None:
        raise AccessDeniedError(f"{user_id} is not a member of conversation {conversation_id}")
    return found


async def _head(store: ClickHouse, conversation_id: str) -> int:
    rows = await store.execute(queries.HISTORY_HEAD, {"conversation_id": conversation_id})
    return int(rows[0][0]) if rows else 0


async def page(
    store: ClickHouse,
    conversation_id: str,
    user_id: str,
    *,
    before: int | None = None,
    limit: int = 50,
    before_join: bool = False,
) -> HistoryPage:
    """``before_join``: PIPELINE_HISTORY_BEFORE_JOIN is ``visible``."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit must be between 1 and {MAX_PAGE}")
    if before is not None and before < 1:
        raise ValidationError("'before' must be a seq >= 1")
    member = readable(store, conversation_id, user_id, before_join=before_join)
    if before is None:  # the newest page starts at the head: ask both at once
        found, high = await asyncio.gather(member, _head(store, conversation_id))
    else:  # an older page is the seqs below ``before``: no head needed
        found, high = await member, before - 1
    floor = found[0].since  # nothing at or below it is theirs to read
    if high <= floor:
        return HistoryPage([], None)
    low = max(floor + 1, high - limit + 1)
    rows = await store.execute(
        queries.HISTORY_RANGE, {"conversation_id": conversation_id, "low": low, "high": high}
    )
    messages = [StoredMessage.from_row(conversation_id, r) for r in rows]
    if len(found) > 1:  # away between periods: those messages are not theirs
        messages = [m for m in messages if any(p.holds(m.seq) for p in found)]
    return HistoryPage(messages, low if low > floor + 1 else None)
