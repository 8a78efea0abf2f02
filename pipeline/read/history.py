"""Reading the roaming store: a conversation's history, paged by seq, newest first.

Seqs are dense, so a page is a key range: ``before - limit .. before - 1`` of
one conversation, read from the primary key. Any current member may read any
page, from any device, at any age; anyone else gets AccessDeniedError.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.errors import AccessDeniedError, ValidationError
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


async def require_member(store: ClickHouse, conversation_id: str, user_id: str) -> None:
    if not await is_member(store, conversation_id, user_id):
        raise AccessDeniedError(f"{user_id} is not a member of conversation {conversation_id}")


async def members(store: ClickHouse, conversation_id: str) -> list[str]:
    rows = await store.execute(queries.CURRENT_MEMBERS, {"conversation_id": conversation_id})
    return [r[0] for r in rows]


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
) -> HistoryPage:
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit must be between 1 and {MAX_PAGE}")
    if before is not None and before < 1:
        raise ValidationError("'before' must be a seq >= 1")
    if before is None:  # the newest page starts at the head: ask both at once
        _, head = await asyncio.gather(
            require_member(store, conversation_id, user_id), _head(store, conversation_id)
        )
        high = head
    else:  # an older page is the seqs below ``before``: no head needed
        await require_member(store, conversation_id, user_id)
        high = before - 1
    if high < 1:
        return HistoryPage([], None)
    low = max(1, high - limit + 1)
    rows = await store.execute(
        queries.HISTORY_RANGE, {"conversation_id": conversation_id, "low": low, "high": high}
    )
    messages = [StoredMessage.from_row(conversation_id, r) for r in rows]
    return HistoryPage(messages, low if low > 1 else None)
