"""The gateway's HTTP API (JSON). Every route under /v1 needs a token; see openapi.py.

Writes are published to the log and answered 202 once it holds them (the
sequencer has the last word: a write it refuses goes to the dead-letter
topic). The gateway refuses early what it can see is wrong: bad JSON or
fields (400), a conversation the user is not a member of (403), a
conversation id already taken (409), a member change the group's roles do not
allow (403, or 409 for the last owner leaving: pipeline/model/roles.py); it
knows memberships and roles from the roster it follows
(pipeline/gateway/roster.py), so writes never wait on ClickHouse.
Reads do query ClickHouse, with a timeout: 503 and ``Retry-After`` when it
does not answer in time.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from pipeline.errors import (
    AccessDeniedError,
    RejectedError,
    StoreUnavailableError,
    ValidationError,
)
from pipeline.gateway.auth import Identity
from pipeline.gateway.cursors import CursorBuffer
from pipeline.gateway.limits import RateLimit
from pipeline.gateway.parsing import accepted, field, json_body, json_response, query_int
from pipeline.gateway.pull_bytes import within_budget
from pipeline.gateway.roster import RosterFollower
from pipeline.model.events import (
    MAX_ADMINS,
    MAX_COUNTER,
    ROLES,
    MemberChange,
    MemberJoined,
    MemberLeft,
    MemberRoleSet,
    new_event_id,
)
from pipeline.model.naming import DIRECT_PREFIX, direct_conversation_id
from pipeline.model.roles import refusal
from pipeline.observe.sensor import Sensor
from pipeline.read import history, large_groups, sync_timeline
from pipeline.sdk.producer import Producer, now_ms
from pipeline.settings import Settings
from pipeline.store import queries
from pipeline.store.clickhouse import ClickHouse

MEMBERSHIP_GRACE_S = 1.0  # the store may still be writing a just-made change
MEMBER_CACHE_S = 10.0
MEMBER_CACHE_SIZE = 100_000


def identity(request: web.Request) -> Identity:
    found: Identity = request["identity"]
    return found


def new_group_id() -> str:
    """An id nobody can guess (128 bits): what a group gets when its creator names none."""
    return "g-" + secrets.token_urlsafe(16)


def checked_cursor(cursor: int) -> int:
    """A device's cursor as acked: a sync_seq, 0 before the first."""
    if not 0 <= cursor <= MAX_COUNTER:
        raise ValidationError(f"cursor must be between 0 and {MAX_COUNTER}")
    return cursor


def group_cursors(request: web.Request) -> dict[str, int]:
    """The ``groups`` query parameter: ``<conversation>:<seq>,...`` (ids may hold ':')."""
    raw = request.query.get("groups", "")
    found: dict[str, int] = {}
    for item in filter(None, raw.split(",")):
        conv, _, seq = item.rpartition(":")
        if not conv or not seq.isdigit() or len(seq) > 18:
            raise ValidationError("query parameter 'groups' must be <conversation>:<seq>,...")
        found[conv] = int(seq)
    return found


class HttpApi:
    def __init__(
        self,
        settings: Settings,
        store: ClickHouse,
        producer: Producer,
        roster: RosterFollower,
        cursors: CursorBuffer,
        *,
        sensor: Sensor,
    ) -> None:
        self.settings = settings
        self.store = store
        self.cursors = cursors
        self.producer = producer
        self.roster = roster
        self.before_join = settings.pipeline.history_before_join == "visible"
        self._members: dict[tuple[str, str], float] = {}  # (conversation, user) -> valid until
        gw = settings.gateway

        def counted(limit: str) -> Callable[[], None]:
            return lambda: sensor.on_limited(limit)

        self.sends = RateLimit(
            "sends", gw.sends_per_s, gw.send_burst, refused=counted("sends_per_s")
        )
        self.fanout = RateLimit(
            "sync entries (each send costs its group's members)",
            gw.fanout_per_s,
            gw.fanout_burst,
            refused=counted("fanout_per_s"),
        )
        self.creates = RateLimit(
            "conversations created or members added",
            gw.creates_per_min / 60,
            gw.create_burst,
            refused=counted("creates_per_min"),
        )

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/me", self.me),
            web.post("/v1/conversations", self.create_group),
            web.post("/v1/direct", self.create_direct),
            web.get("/v1/conversations/{cid}", self.conversation),
            web.post("/v1/conversations/{cid}/members", self.join),
            web.delete("/v1/conversations/{cid}/members/{uid}", self.leave),
            web.put("/v1/conversations/{cid}/members/{uid}/role", self.set_role),
            web.post("/v1/conversations/{cid}/messages", self.send),
            web.get("/v1/conversations/{cid}/messages", self.history),
            web.get("/v1/sync", self.pull),
            web.put("/v1/devices/{device}/cursor", self.ack),
            web.get("/v1/devices", self.devices),
        ]

    async def me(self, request: web.Request) -> web.Response:
        who = identity(request)
        return web.json_response({"user_id": who.user_id, "device_id": who.device_id})

    async def create_group(self, request: web.Request) -> web.Response:
        self.creates.take(identity(request).user_id)
        data = await json_body(request)
        conversation_id = field(data, "conversation_id", str, None)
        if conversation_id is None:
            conversation_id = new_group_id()
        members = field(data, "members", list)
        if not all(isinstance(m, str) for m in members):
            raise ValidationError("field 'members' must be a list of user ids")
        title = field(data, "title", str, "")
        me = identity(request).user_id
        admins = field(data, "admins", list, [])
        if not all(isinstance(a, str) for a in admins) or len(admins) > MAX_ADMINS:
            raise ValidationError(f"field 'admins' must be a list of at most {MAX_ADMINS} user ids")
        admins = [a for a in dict.fromkeys(admins) if a != me]  # the caller owns it
        members = [*members, *admins]  # an admin is a member
        if conversation_id.startswith(DIRECT_PREFIX):  # before telling whether it exists
            raise ValidationError(
                f"conversation ids starting with {DIRECT_PREFIX} are reserved for direct "
                'conversations: POST /v1/direct {"peer": ...} makes one'
            )
        await self._require_new(conversation_id)
        ack = await self.producer.create_conversation(
            conversation_id, me, members, title=title, admins=admins
        )
        return accepted(ack)

    async def create_direct(self, request: web.Request) -> web.Response:
        me = identity(request).user_id
        self.creates.take(me)
        peer = field(await json_body(request), "peer", str)
        if peer == me:
            raise ValidationError("a direct conversation needs another user as 'peer'")
        await self._require_new(direct_conversation_id(me, peer))
        _, ack = await self.producer.create_direct(me, peer)
        return accepted(ack)

    async def conversation(self, request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        await self._require_member(cid, identity(request).user_id)
        rows = await self.store.execute(queries.CONVERSATION, {"conversation_id": cid})
        if not rows:  # the roster knows it; the store is a moment behind the log
            raise StoreUnavailableError(f"conversation {cid} is not stored yet: retry")
        _, kind, title, created_by, ts_ms = rows[0]
        members = await history.members(self.store, cid)
        roles = self.roster.roster.roles_of(cid)
        return web.json_response(
            {
                "conversation_id": cid,
                "kind": kind,
                "title": title,
                "created_by": created_by,
                "ts_ms": ts_ms,
                "members": members,
                # owners and admins as the roster has them; absent: a conversation
                # without roles (direct, or a group made before roles existed)
                **({"roles": dict(sorted(roles.items()))} if roles is not None else {}),
            }
        )

    async def join(self, request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        actor = identity(request).user_id
        self.creates.take(actor)
        user = field(await json_body(request), "user_id", str)
        return await self._change(MemberJoined(new_event_id(), cid, actor, user, now_ms()))

    async def leave(self, request: web.Request) -> web.Response:
        cid, user = request.match_info["cid"], request.match_info["uid"]
        actor = identity(request).user_id
        if user != actor:  # leaving is never limited; removing others counts
            self.creates.take(actor)
        return await self._change(MemberLeft(new_event_id(), cid, actor, user, now_ms()))

    async def set_role(self, request: web.Request) -> web.Response:
        cid, user = request.match_info["cid"], request.match_info["uid"]
        actor = identity(request).user_id
        self.creates.take(actor)
        role = field(await json_body(request), "role", str)
        if role not in ROLES:
            raise ValidationError(f"field 'role' must be one of {', '.join(ROLES)}")
        command = MemberRoleSet(new_event_id(), cid, actor, user, role, now_ms())
        return await self._change(command)

    async def _change(self, command: MemberChange) -> web.Response:
        """A member change, refused here if the roster shows the group's rules refuse
        it (the sequencer applies them again: the roster may be a moment behind)."""
        cid = command.conversation_id
        await self._require_member(cid, command.actor_id)
        roster = self.roster.roster
        members = roster.members.get(cid)
        if members is not None:
            refused = refusal(command, members, roster.roles_of(cid))
            if refused is not None and refused.kind == "forbidden":
                raise AccessDeniedError(refused.reason)
            if refused is not None:
                raise RejectedError(refused.reason)
        return accepted(await self.producer.publish(command))

    async def send(self, request: web.Request) -> web.Response:
        self.sends.take(identity(request).user_id)
        cid = request.match_info["cid"]
        data = await json_body(request)
        body = field(data, "body", str)
        content_type = field(data, "content_type", str, "text/plain")
        client_msg_id = field(data, "client_msg_id", str, None)
        if client_msg_id == "":  # absent (or null) gets a new one; empty is a mistake
            raise ValidationError("field 'client_msg_id' must not be empty")
        sender = identity(request).user_id
        await self._require_member(cid, sender)
        self.fanout.take(sender, self._fanout_cost(cid))
        ack = await self.producer.send_message(
            cid, sender, body, content_type=content_type, client_msg_id=client_msg_id
        )
        return accepted(ack)

    async def history(self, request: web.Request) -> web.Response:
        page = await history.page(
            self.store,
            request.match_info["cid"],
            identity(request).user_id,
            before=query_int(request, "before", None, 1, 2**62),
            limit=query_int(request, "limit", 50, 1, history.MAX_PAGE),
            before_join=self.before_join,
        )
        return json_response(
            {
                "messages": [m.to_json() for m in page.messages],
                "next_before": page.next_before,
            }
        )

    async def pull(self, request: web.Request) -> web.Response:
        """The sync timeline after ``after``, and a page of each large group the
        device reads (after the cursors in ``groups=<conv>:<seq>,...``, else its acked ones)."""
        who = identity(request)
        limit = query_int(request, "limit", 100, 1, sync_timeline.MAX_PAGE)
        page = await sync_timeline.pull(
            self.store,
            who.user_id,
            after=query_int(request, "after", 0, 0, 2**62),
            limit=limit,
            retention_days=self.settings.pipeline.sync_retention_days,
        )
        # a device's own cursors first, then those it acked here and not yet written
        given = {
            **self.cursors.pending_groups(who.user_id).get(who.device_id, {}),
            **group_cursors(request),
        }
        groups = await large_groups.pages(
            self.store, who.user_id, who.device_id, given, limit, before_join=self.before_join
        )
        budget = self.settings.gateway.max_pull_bytes
        page, groups = within_budget(page, groups, budget)
        return json_response(
            {
                "entries": [e.to_json() for e in page.entries],
                "cursor": page.cursor,
                "head": page.head,
                "caught_up": page.caught_up and all(g.caught_up for g in groups),
                "groups": [g.to_json() for g in groups],
            }
        )

    async def ack(self, request: web.Request) -> web.Response:
        who = identity(request)
        device = request.match_info["device"]
        if device != who.device_id:
            raise AccessDeniedError(f"this token is for device {who.device_id}, not {device}")
        data = await json_body(request)
        cursor = checked_cursor(field(data, "cursor", int))
        groups = large_groups.checked_cursors(data.get("groups", {}))
        await self._with_grace(lambda: large_groups.check_cursors(self.store, who.user_id, groups))
        await self.cursors.ack(who.user_id, device, cursor, groups)
        return web.Response(status=204)

    async def devices(self, request: web.Request) -> web.Response:
        user = identity(request).user_id
        cursors = await sync_timeline.device_cursors(self.store, user)
        for device, cursor in self.cursors.pending(user).items():  # acked, not yet written
            cursors[device] = max(cursor, cursors.get(device, 0))
        groups = await large_groups.device_cursors(self.store, user)
        for device, pending in self.cursors.pending_groups(user).items():
            mine = groups.setdefault(device, {})
            for conversation, seq in pending.items():
                mine[conversation] = max(seq, mine.get(conversation, 0))
        return json_response({"devices": cursors, "groups": groups})

    async def _with_grace(self, attempt: Callable[[], Awaitable[None]]) -> None:
        """``attempt`` until it is not refused, at most MEMBERSHIP_GRACE_S: a membership
        change the caller made a moment ago may not be stored yet."""
        deadline = asyncio.get_running_loop().time() + MEMBERSHIP_GRACE_S
        while True:
            try:
                return await attempt()
            except AccessDeniedError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
            await asyncio.sleep(0.1)

    def _fanout_cost(self, conversation_id: str) -> int:
        """The sync entries a message makes: one per member, or 1 in a read-diffused
        group (its members read it from the group; a group that shrank back under
        the threshold is still read diffused, and costs more here than it makes)."""
        members = len(self.roster.roster.members.get(conversation_id, ())) or 1
        threshold = self.settings.pipeline.read_diffusion_threshold
        return 1 if 0 < threshold < members else members

    async def _require_member(self, conversation_id: str, user_id: str) -> None:
        """Members only, from the roster the gateway follows (no query). Only a
        conversation the roster does not know (made before the roster existed, or
        never) is looked up in the store, once, and a yes is remembered for
        MEMBER_CACHE_S. The sequencer still refuses a sender who left meanwhile."""
        verdict = await self.roster.member(conversation_id, user_id, MEMBERSHIP_GRACE_S)
        if verdict is None:
            verdict = await self._stored_member(conversation_id, user_id)
        if not verdict:
            raise AccessDeniedError(f"{user_id} is not a member of conversation {conversation_id}")

    async def _stored_member(self, conversation_id: str, user_id: str) -> bool:
        loop = asyncio.get_running_loop()
        key = (conversation_id, user_id)
        if self._members.get(key, 0.0) > loop.time():
            return True
        if not await history.is_member(self.store, conversation_id, user_id):
            return False
        if len(self._members) > MEMBER_CACHE_SIZE:
            self._members.clear()
        self._members[key] = loop.time() + MEMBER_CACHE_S
        return True

    async def _require_new(self, conversation_id: str) -> None:
        exists = self.roster.exists(conversation_id)
        if exists is None:  # the roster is still loading: ask the store
            rows = await self.store.execute(
                queries.CONVERSATION, {"conversation_id": conversation_id}
            )
            exists = bool(rows)
        if exists:
            raise RejectedError(f"conversation {conversation_id} already exists")
