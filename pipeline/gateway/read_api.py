"""The gateway's read state routes: read markers, mute and pin, the conversation
list, unread counts and group receipts (docs/read-state.md).

Markers, mutes and pins are the user's own events: published to ``im.sync``
keyed by the user (pipeline/sdk/producer.py), they reach every device of the
user through its sync timeline, in order, by cursor. The gateway checks what
it can first: the user is a member (the roster), and a marker's seq is a
message the conversation has (the heads this gateway has pushed, else the
store, which may be a moment behind: it is asked again, at most 3 times, over
about 1.75 s). Forward only is the sync stage's rule (a marker behind the
user's is dropped there), so two devices marking at once cannot move it back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from pipeline.errors import RejectedError, ValidationError
from pipeline.gateway.limits import RateLimit
from pipeline.gateway.parsing import accepted, json_body, json_response, query_int
from pipeline.gateway.roster import RosterFollower
from pipeline.model.events import MAX_COUNTER, UserEvent, UserEventKind
from pipeline.read import conversations
from pipeline.read.receipts import Receipts
from pipeline.sdk.producer import Ack, Producer, user_event
from pipeline.settings import Settings
from pipeline.store import queries
from pipeline.store.clickhouse import ClickHouse

HEAD_RETRIES_S = (0.25, 0.5, 1.0)
"""Waits before asking the store again for a conversation's head: the store may still
be writing the message a device was just pushed (about 1.75 s in all)."""
CACHED_HEADS = 100_000

Identify = Callable[[web.Request], Any]
RequireMember = Callable[[str, str], Awaitable[None]]


class Heads:
    """The highest seq this gateway knows each conversation has (pushed or stored)."""

    def __init__(self) -> None:
        self._seqs: dict[str, int] = {}

    def saw(self, conversation_id: str, seq: int) -> None:
        if seq > self._seqs.get(conversation_id, 0):
            if len(self._seqs) >= CACHED_HEADS:
                self._seqs.clear()
            self._seqs[conversation_id] = seq

    def get(self, conversation_id: str) -> int:
        return self._seqs.get(conversation_id, 0)


class ReadApi:
    def __init__(
        self,
        settings: Settings,
        store: ClickHouse,
        producer: Producer,
        roster: RosterFollower,
        *,
        identify: Identify,
        require_member: RequireMember,
        heads: Heads,
        refused: Callable[[], None],
    ) -> None:
        self.store = store
        self.producer = producer
        self.roster = roster
        self.identify = identify
        self.require_member = require_member
        self.heads = heads
        self.receipts = Receipts(store)
        gw = settings.gateway
        self.marks = RateLimit(
            "read markers, mutes and pins", gw.marks_per_s, gw.mark_burst, refused=refused
        )

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/conversations", self.list),
            web.get("/v1/unread", self.unread),
            web.put("/v1/conversations/{cid}/read", self.read),
            web.put("/v1/conversations/{cid}/settings", self.prefs),
            web.get("/v1/conversations/{cid}/receipts", self.receipt),
        ]

    def member_count(self, conversation_id: str) -> int | None:
        members = self.roster.roster.members.get(conversation_id)
        return None if members is None else len(members)

    async def list(self, request: web.Request) -> web.Response:
        user = self.identify(request).user_id
        limit = query_int(request, "limit", 50, 1, conversations.MAX_PAGE)
        before = conversations.parse_before(request.query.get("before"))
        page = await conversations.page(
            self.store, user, self.member_count, limit=limit, before=before
        )
        return json_response(
            {
                "conversations": [s.to_json() for s in page.conversations],
                "next_before": page.next_before,
            }
        )

    async def unread(self, request: web.Request) -> web.Response:
        found = await conversations.unread(self.store, self.identify(request).user_id)
        return json_response(
            {"total": found.total, "conversations": found.conversations, "mentions": 0}
        )

    async def read(self, request: web.Request) -> web.Response:
        who = self.identify(request)
        data = await json_body(request)
        seq = data.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise ValidationError("field 'seq' must be an integer")
        ack = await self.mark(who.user_id, who.device_id, request.match_info["cid"], seq)
        return accepted(ack)

    async def mark(self, user: str, device: str, conversation_id: str, seq: int) -> Ack:
        """Publish ``user``'s read marker (from the HTTP route or the WebSocket)."""
        if not 1 <= seq <= MAX_COUNTER:
            raise ValidationError(f"field 'seq' must be between 1 and {MAX_COUNTER}")
        self.marks.take(user)
        await self.require_member(conversation_id, user)
        await self._require_message(conversation_id, seq)
        event = user_event(conversation_id, user, "read", seq=seq, device=device)
        return (await self.producer.publish_user_events([event]))[0]

    async def prefs(self, request: web.Request) -> web.Response:
        who = self.identify(request)
        cid = request.match_info["cid"]
        data = await json_body(request)
        events: list[UserEvent] = []
        pref: UserEventKind
        for pref in ("muted", "pinned"):
            value = data.get(pref)
            if value is None:
                continue
            if not isinstance(value, bool):
                raise ValidationError(f"field {pref!r} must be a boolean")
            events.append(user_event(cid, who.user_id, pref, on=value, device=who.device_id))
        if not events:
            raise ValidationError("give 'muted' or 'pinned' (or both), true or false")
        self.marks.take(who.user_id, len(events))
        await self.require_member(cid, who.user_id)
        acks = await self.producer.publish_user_events(events)
        return accepted(acks[-1])

    async def receipt(self, request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        user = self.identify(request).user_id
        seq = query_int(request, "seq", None, 1, MAX_COUNTER)
        if seq is None:
            raise ValidationError("query parameter 'seq' is required")
        await self.require_member(cid, user)
        members = set(self.roster.roster.members.get(cid, ()))
        return json_response((await self.receipts.count(cid, seq, members)).to_json())

    async def _require_message(self, conversation_id: str, seq: int) -> None:
        """``seq`` is a message of the conversation: known here, or stored (asked again,
        after HEAD_RETRIES_S, while the store may still be writing it: a refusal costs
        at most 4 queries)."""
        for wait_s in (*HEAD_RETRIES_S, None):
            if seq <= self.heads.get(conversation_id):
                return
            rows = await self.store.execute(
                queries.CONVERSATION_HEAD, {"conversation_id": conversation_id}
            )
            head = int(rows[0][0]) if rows and rows[0][0] is not None else 0
            self.heads.saw(conversation_id, head)
            if seq <= head:
                return
            if wait_s is None:
                raise RejectedError(
                    f"conversation {conversation_id} has no message {seq} (its last is {head})"
                )
            await asyncio.sleep(wait_s)
