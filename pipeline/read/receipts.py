"""Group receipts without a row per (message, member): "read by N of M".

Each conversation has a distribution index of its members' read points
(``read_points``, ordered by conversation: the higher of a member's read marker
and their last message), kept by materialized views. Read by N of M for
message ``seq``: N members other than its sender with a read point at or after
it, of the M members other than the sender; members come from the gateway's
roster, so a user who left counts in neither.

One query reads a conversation's index (10,000 members: 10,000 short rows);
the answer is shared for ``ttl_s`` by every request and subscription of that
conversation, so however many senders watch their messages, a conversation
costs at most one query per ``ttl_s`` (the coalescing the WebSocket
subscriptions rely on: at most one update per second per message).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pipeline.errors import RejectedError
from pipeline.model.unread import read_by
from pipeline.store import queries
from pipeline.store.clickhouse import ClickHouse

TTL_S = 1.0
CACHED_CONVERSATIONS = 10_000
CACHED_SENDERS = 100_000


@dataclass(frozen=True, slots=True)
class Receipt:
    conversation_id: str
    seq: int
    read: int
    of: int

    def to_json(self) -> dict[str, object]:
        return {
            "conversation_id": self.conversation_id,
            "seq": self.seq,
            "read": self.read,
            "of": self.of,
        }


class Receipts:
    def __init__(self, store: ClickHouse, ttl_s: float = TTL_S) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.queries = 0
        self._points: dict[str, tuple[float, asyncio.Future[list[tuple[str, int]]]]] = {}
        self._senders: dict[tuple[str, int], str] = {}

    async def count(self, conversation_id: str, seq: int, members: set[str]) -> Receipt:
        sender = await self.sender(conversation_id, seq)
        points = await self.points(conversation_id)
        others = len(members) - (1 if sender in members else 0)
        return Receipt(conversation_id, seq, read_by(points, members, sender, seq), others)

    async def sender(self, conversation_id: str, seq: int) -> str:
        key = (conversation_id, seq)
        found = self._senders.get(key)
        if found is None:
            rows = await self.store.execute(
                queries.MESSAGE_SENDER, {"conversation_id": conversation_id, "seq": seq}
            )
            if not rows:
                raise RejectedError(f"conversation {conversation_id} has no message {seq} (yet)")
            if len(self._senders) >= CACHED_SENDERS:
                self._senders.clear()
            found = self._senders[key] = str(rows[0][0])
        return found

    async def points(self, conversation_id: str) -> list[tuple[str, int]]:
        """The conversation's read points, at most ``ttl_s`` old; concurrent callers
        share one query."""
        loop = asyncio.get_running_loop()
        cached = self._points.get(conversation_id)
        if cached is not None and cached[0] > loop.time():
            return await asyncio.shield(cached[1])
        future: asyncio.Future[list[tuple[str, int]]] = loop.create_future()
        if len(self._points) >= CACHED_CONVERSATIONS:
            self._points = {c: v for c, v in self._points.items() if v[0] > loop.time()}
        self._points[conversation_id] = (loop.time() + self.ttl_s, future)
        try:
            self.queries += 1
            rows = await self.store.execute(
                queries.READ_POINTS, {"conversation_id": conversation_id}
            )
        except Exception as exc:
            self._points.pop(conversation_id, None)
            future.set_exception(exc)
            future.exception()  # retrieved: the callers that share it get it raised
            raise
        except BaseException:
            self._points.pop(conversation_id, None)
            future.cancel()
            raise
        future.set_result([(str(user), int(point)) for user, point in rows])
        return future.result()
