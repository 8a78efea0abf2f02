"""The gateway process: HTTP API, WebSocket push, presence.

    imstream gateway        serves IMSTREAM_GATEWAY_HOST:IMSTREAM_GATEWAY_PORT

On start it creates its push topic ``im.push.<gateway id>`` and announces
itself on ``im.presence``; every device that opens ``GET /v1/stream`` makes its
user present here, and the push agent routes that user's new sync entries to
this gateway, which offers them to each of the user's connections. Large
groups' events come broadcast: see pipeline/gateway/group_push.py.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import signal
import socket
import time
from typing import Any

import orjson
from aiohttp import WSMsgType, web
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from pipeline.errors import (
    AuthError,
    ConfigError,
    EventError,
    ImstreamError,
    RateLimitedError,
)
from pipeline.gateway import auth, openapi
from pipeline.gateway.cursors import CursorBuffer
from pipeline.gateway.errors import LIMITED_DELAY, UNAVAILABLE, json_errors, new_request_id
from pipeline.gateway.group_push import GroupPush
from pipeline.gateway.http import HttpApi, checked_cursor, identity
from pipeline.gateway.hub import RESYNC_AFTER_S, RESYNC_FRAME, Connection, Hub
from pipeline.gateway.parsing import BODY_TIMEOUT
from pipeline.gateway.read_api import Heads, ReadApi
from pipeline.gateway.roster import RosterFollower
from pipeline.log import kafka
from pipeline.log.topics import PUSH_KIND_HEADER, PUSH_KIND_TIMELINE, catalogue
from pipeline.model import hops
from pipeline.model.events import TimelineEvent, limits_from
from pipeline.model.framing import EventCache
from pipeline.model.presence import (
    HEARTBEAT_S,
    heartbeat_key,
    heartbeat_record,
    user_key,
    user_record,
)
from pipeline.observe.prometheus import metrics_handler, sensor_for
from pipeline.observe.tasks import Supervisor
from pipeline.read import large_groups
from pipeline.read.sync_timeline import SyncEntry
from pipeline.sdk.client import TOKEN_EXPIRED_CLOSE
from pipeline.sdk.producer import Producer
from pipeline.settings import Settings
from pipeline.store.clickhouse import ClickHouse

log = logging.getLogger(__name__)
LINGER_S = 1.0
RECEIPT_EVERY_S = 1.0  # a watched message's read count is sent at most this often
MAX_WATCHED = 50  # messages one socket may watch the receipts of (the oldest goes first)
Watch = tuple[str, int]  # (conversation_id, seq)
DEV_SECRET = "imstream-local-development-secret"  # noqa: S105  (refused off loopback)
STREAM_PATH = "/v1/stream"  # the WebSocket: the one route whose token may be in the URL


def gateway_id(settings: Settings) -> str:
    if settings.gateway.id:
        return settings.gateway.id
    raw = f"{socket.gethostname()}-{settings.gateway.port}"
    return re.sub(r"[^A-Za-z0-9._-]", "-", raw)


MIN_SECRET_BYTES = 32  # HMAC-SHA256: a shorter secret is guessable offline from one token


def check_secret(settings: Settings) -> None:
    """The token secret protects every account: the development default only on
    loopback, and any other at least MIN_SECRET_BYTES long."""
    host, secret = settings.gateway.host, settings.gateway.auth_secret
    loopback = host == "localhost" or (_is_ip(host) and ipaddress.ip_address(host).is_loopback)
    if secret == DEV_SECRET:
        if not loopback:
            raise ConfigError(
                f"IMSTREAM_GATEWAY_AUTH_SECRET is the development default and the gateway "
                f"would listen on {host}: set a secret of your own"
            )
    elif len(secret.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"IMSTREAM_GATEWAY_AUTH_SECRET must be at least {MIN_SECRET_BYTES} bytes "
            f"(it has {len(secret.encode())}): e.g. `openssl rand -hex 32`"
        )
    old = auth.Keys.from_setting(secret, settings.gateway.auth_old_secrets).accepted.values()
    if any(len(s.encode()) < MIN_SECRET_BYTES for s in old):
        raise ConfigError(
            f"every secret in IMSTREAM_GATEWAY_AUTH_OLD_SECRETS must be at least "
            f"{MIN_SECRET_BYTES} bytes"
        )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Gateway:
    def __init__(self, settings: Settings) -> None:
        check_secret(settings)
        self.settings = settings
        self._openapi = openapi.spec(settings.pipeline.max_body_bytes)
        self.keys = auth.Keys.from_setting(
            settings.gateway.auth_secret, settings.gateway.auth_old_secrets
        )
        self.id = gateway_id(settings)
        self.topics = catalogue(settings)
        self.push_topic = self.topics.push(self.id)
        self.started_ms = int(time.time() * 1000)
        self.store = ClickHouse(settings, size=8, timeout_s=settings.gateway.store_timeout_s)
        self.producer = Producer(settings)
        self.presence: AIOKafkaProducer = kafka.producer(settings)
        self.presence_updates: asyncio.Queue[tuple[bytes, bytes | None]] = asyncio.Queue()
        self.sensor = sensor_for("gateway", settings.metrics.enabled)
        self.sensor.watch(
            "imstream_gateway_connections", "Open WebSocket connections", self._connections
        )
        self.sensor.watch("imstream_gateway_users", "Users with a device connected", self._users)
        self.hub = Hub(on_presence=self._presence_changed)
        self.events = EventCache(limits_from(settings.pipeline))
        self.limits = limits_from(settings.pipeline)
        self.group_push = GroupPush(self.store, self.limits, self.hub.push)
        self.pushed = 0
        self.heads = Heads()
        self.watching: dict[Connection, dict[Watch, int]] = {}
        """Per socket, the messages whose read count it watches, and the count last sent."""
        self.read_api: ReadApi | None = None
        self.roster = RosterFollower(settings, self.topics.roster)
        self.cursors = CursorBuffer(self.store, settings.gateway.ack_interval_ms / 1000)
        self.sensor.watch(
            "imstream_gateway_cursor_acks",
            "Cursor acks since start: received, and ClickHouse writes they took (coalesced)",
            lambda: [
                ({"what": "received"}, float(self.cursors.acks)),
                ({"what": "writes"}, float(self.cursors.writes)),
            ],
        )
        self.tasks = Supervisor("gateway", self.sensor.on_task_death)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await kafka.ensure_topics(self.settings, [*self.topics.all(), self.push_topic])
        await self.producer.start()
        await self.presence.start()
        await self._announce()
        self.tasks.start("roster", self.roster.run)
        self.tasks.start("presence", self._publish_presence)
        self.tasks.start("heartbeat", self._heartbeat)
        self.tasks.start("push", self._receive_pushes)
        self.tasks.start("receipts", self._watch_receipts)
        if self.cursors.interval_s:
            self.tasks.start("cursors", self.cursors.run)

    async def stop(self) -> None:
        await self.tasks.stop()  # the cursors task writes what it holds as it ends
        self.group_push.close()
        await self.producer.stop()
        await self.presence.stop()
        self.store.close()

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._measure, json_errors, self._authenticate],
            client_max_size=self.settings.gateway.max_request_bytes,
        )
        app[BODY_TIMEOUT] = self.settings.gateway.body_timeout_s
        app[LIMITED_DELAY] = self.settings.gateway.limited_delay_s
        api = HttpApi(
            self.settings, self.store, self.producer, self.roster, self.cursors, sensor=self.sensor
        )
        app.router.add_routes(api.routes())
        self.read_api = ReadApi(
            self.settings,
            self.store,
            self.producer,
            self.roster,
            identify=identity,
            require_member=api._require_member,
            heads=self.heads,
            refused=lambda: self.sensor.on_limited("marks_per_s"),
        )
        app.router.add_routes(self.read_api.routes())
        app.router.add_get(STREAM_PATH, self.stream)
        app.router.add_get("/openapi.json", self.openapi)
        app.router.add_get("/health", self.health)
        app.router.add_get("/ready", self.ready)
        app.router.add_get("/metrics", metrics_handler(self.sensor))
        app.on_startup.append(lambda _: self.start())
        app.on_shutdown.append(lambda _: self._close_sockets())
        app.on_cleanup.append(lambda _: self.stop())
        return app

    # ------------------------------------------------------------ HTTP plumbing

    @web.middleware
    async def _measure(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Every request's duration by route (the pattern, not the path) and status."""
        started = time.perf_counter()
        status = 500
        try:
            response: web.StreamResponse = await handler(request)
            status = response.status
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            if route != STREAM_PATH:  # a socket's life is not a request's duration
                seconds = time.perf_counter() - started
                self.sensor.on_request(route, request.method, status, seconds)
        return response

    def _connections(self) -> list[tuple[dict[str, str], float]]:
        return [({}, float(self.hub.connections()))]

    def _users(self) -> list[tuple[dict[str, str], float]]:
        return [({}, float(len(self.hub.users)))]

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/v1/"):
            header = request.headers.get("Authorization", "")
            token = header.removeprefix("Bearer ").strip() if header else None
            in_url = request.query.get("token")
            if in_url is not None and request.path != STREAM_PATH:
                # URLs end up in proxies' and access logs: only a browser's WebSocket,
                # which cannot set a header, may carry its token there
                raise AuthError(
                    f"a token in the URL is accepted only on {STREAM_PATH}: send "
                    "'Authorization: Bearer <token>'"
                )
            token = token or in_url
            request["identity"] = auth.verify(self.keys, token)
        response: web.StreamResponse = await handler(request)
        return response

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(self._openapi)

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "ok",
                "gateway": self.id,
                "connections": self.hub.connections(),
                "pushed": self.pushed,
                "roster": {
                    "loaded": self.roster.caught_up.is_set(),
                    "records": self.roster.records,
                },
                "tasks": self.tasks.status(),
            }
        )

    async def ready(self, request: web.Request) -> web.Response:
        """200 when the roster is loaded and every background task runs, else 503
        with what is missing (a task that died shows until it runs again)."""
        missing = [f"task {n}" for n, t in self.tasks.status().items() if not t["running"]]
        if not self.roster.caught_up.is_set():
            missing.append("roster loading")
        body = {"ready": not missing, "waiting_for": missing}
        return web.json_response(body, status=503 if missing else 200)

    # ------------------------------------------------------------ WebSocket

    async def stream(self, request: web.Request) -> web.StreamResponse:
        who = request["identity"]
        self._room_for_socket(who)
        gw = self.settings.gateway
        ws = web.WebSocketResponse(
            heartbeat=gw.ws_heartbeat_s, max_msg_size=gw.ws_max_message_bytes
        )
        await ws.prepare(request)
        connection = Connection(
            who.user_id, who.device_id, ws, self.settings.gateway.push_queue_size, self.sensor
        )
        connection.offer(
            orjson.dumps(
                {
                    "type": "hello",
                    "user_id": who.user_id,
                    "device_id": who.device_id,
                    "gateway": self.id,
                }
            ).decode()
        )
        writer = asyncio.create_task(connection.write())
        self.hub.add(connection)
        if len(self.hub.users[who.user_id]) == 1:
            self.group_push.connected(who.user_id)
        resync = asyncio.get_running_loop().call_later(
            RESYNC_AFTER_S, connection.offer, RESYNC_FRAME
        )
        expiry = asyncio.create_task(_close_at_expiry(ws, who.expires_s))
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await self._client_frame(connection, message.data)
                elif message.type == WSMsgType.ERROR:
                    break
        finally:
            resync.cancel()
            expiry.cancel()
            self.hub.remove(connection)
            self.watching.pop(connection, None)
            if who.user_id not in self.hub.users:
                self.group_push.disconnected(who.user_id)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        return ws

    def _room_for_socket(self, who: auth.Identity) -> None:
        """Refuse (429) a socket past the user's or the device's limit on this gateway."""
        gw = self.settings.gateway
        sockets = self.hub.users.get(who.user_id, set())
        same_device = sum(1 for c in sockets if c.device_id == who.device_id)
        for count, limit, whose, name in (
            (len(sockets), gw.max_sockets_per_user, f"user {who.user_id}", "sockets_per_user"),
            (
                same_device,
                gw.max_sockets_per_device,
                f"device {who.device_id}",
                "sockets_per_device",
            ),
        ):
            if limit > 0 and count >= limit:
                self.sensor.on_limited(name)
                raise RateLimitedError(
                    f"{whose} has {count} sockets open on this gateway (at most {limit}): "
                    "close one first",
                    retry_after_s=RESYNC_AFTER_S,
                )

    async def _client_frame(self, connection: Connection, text: str) -> None:
        """What a device may send on its socket:

        {"type": "ack", "cursor": N, "groups": {"<conversation>": seq}} (groups optional)
        {"type": "read", "conversation_id": "...", "seq": N}   a read marker
        {"type": "receipts", "conversation_id": "...", "seq": N}   watch a message's
            read count: a {"type": "receipt", ...} frame now and whenever it changes,
            at most once a second (RECEIPT_EVERY_S)"""
        try:
            frame = orjson.loads(text)
            kind = frame.get("type") if isinstance(frame, dict) else None
            if kind in ("read", "receipts"):
                await self._read_frame(connection, kind, frame)
                return
            cursor = frame["cursor"] if kind == "ack" else None
            if not isinstance(cursor, int) or isinstance(cursor, bool):
                raise EventError(
                    'expected {"type": "ack", "cursor": <int>}, or a "read" or "receipts" frame'
                )
            groups = large_groups.checked_cursors(frame.get("groups", {}))
            user, device = connection.user_id, connection.device_id
            checked_cursor(cursor)
            await large_groups.check_cursors(self.store, user, groups)
            await self.cursors.ack(user, device, cursor, groups)
        except (orjson.JSONDecodeError, ImstreamError) as exc:
            answer: dict[str, str] = {"type": "error", "reason": str(exc)}
            if isinstance(exc, ImstreamError) and exc.retriable:  # the details to the log
                answer = {"type": "error", "reason": UNAVAILABLE, "request_id": new_request_id()}
                log.warning(
                    "ack from %s (request %s): %r", connection.user_id, answer["request_id"], exc
                )
            connection.offer(orjson.dumps(answer).decode())

    async def _read_frame(self, connection: Connection, kind: str, frame: dict[str, Any]) -> None:
        conversation_id, seq = frame.get("conversation_id"), frame.get("seq")
        if not isinstance(conversation_id, str) or type(seq) is not int:
            raise EventError(
                f'expected {{"type": "{kind}", "conversation_id": <id>, "seq": <int>}}'
            )
        reads = self._reads()
        user = connection.user_id
        if kind == "read":
            await reads.mark(user, connection.device_id, conversation_id, seq)
            return
        await reads.require_member(conversation_id, user)
        watched = self.watching.setdefault(connection, {})
        if len(watched) >= MAX_WATCHED and (conversation_id, seq) not in watched:
            del watched[next(iter(watched))]  # the oldest goes
        watched[(conversation_id, seq)] = -1
        await self._send_receipts(connection, {(conversation_id, seq): -1})

    async def _send_receipts(self, connection: Connection, watched: dict[Watch, int]) -> None:
        """The receipts of ``watched`` whose read count changed, to ``connection``."""
        reads = self._reads()
        for (conversation_id, seq), last in list(watched.items()):
            members = set(self.roster.roster.members.get(conversation_id, ()))
            if connection.user_id not in members:
                self.watching.get(connection, {}).pop((conversation_id, seq), None)
                continue
            receipt = await reads.receipts.count(conversation_id, seq, members)
            if receipt.read != last:
                self.watching.get(connection, {})[(conversation_id, seq)] = receipt.read
                connection.offer(orjson.dumps({"type": "receipt", **receipt.to_json()}).decode())

    def _reads(self) -> ReadApi:
        if self.read_api is None:
            raise RuntimeError("the read routes are made with the app (Gateway.app)")
        return self.read_api

    async def _watch_receipts(self) -> None:
        """Every RECEIPT_EVERY_S, the changed read counts of every watched message (a
        conversation's read points are one query however many watch it)."""
        while True:
            await asyncio.sleep(RECEIPT_EVERY_S)
            for connection, watched in list(self.watching.items()):
                if connection.ws.closed:
                    self.watching.pop(connection, None)
                    continue
                try:
                    await self._send_receipts(connection, dict(watched))
                except ImstreamError as exc:
                    log.warning("receipts for %s: %r", connection.user_id, exc)

    async def _close_sockets(self) -> None:
        for connections in list(self.hub.users.values()):
            for connection in list(connections):
                await connection.ws.close(code=1001, message=b"gateway shutting down")

    # ------------------------------------------------------------ push and presence

    async def _receive_pushes(self) -> None:
        tp = TopicPartition(self.push_topic.name, 0)
        consumer = kafka.consumer(self.settings, isolation_level="read_uncommitted")
        consumer.assign([tp])
        await consumer.start()
        try:
            await consumer.seek_to_end(tp)
            while True:
                batch = await consumer.getmany(tp, timeout_ms=500)
                for record in batch.get(tp, []):
                    headers = list(record.headers or ())
                    stamps = hops.find(headers)
                    if (PUSH_KIND_HEADER, PUSH_KIND_TIMELINE) in headers:
                        self.pushed += self.group_push.timeline(record.value or b"", stamps)
                    else:
                        self._dispatch(record.value or b"", stamps)
        finally:
            await consumer.stop()

    def _dispatch(self, raw: bytes, stamps: bytes = b"") -> None:
        try:
            entry = self.events.inbox(raw)
        except EventError as exc:
            log.warning("push: ignoring a record that is not an inbox entry: %s", exc)
            return
        # orjson encodes the dataclass as its fields, in order (as to_json does)
        shown = SyncEntry.from_inbox(entry)
        if shown.kind == "message":
            self.heads.saw(shown.conversation_id, shown.seq)
        frame = orjson.dumps({"type": "entry", "entry": shown})
        self.pushed += self.hub.push(entry.user_id, frame.decode(), stamps)
        if isinstance(entry.event, TimelineEvent) and entry.event.large:
            self.group_push.inbox(entry)

    def _presence_changed(self, user_id: str, devices: int) -> None:
        record = user_record(self.id, user_id, devices, int(time.time() * 1000))
        self.presence_updates.put_nowait((user_key(self.id, user_id), record))

    async def _publish_presence(self) -> None:
        """Publish presence changes in order, many at a time (a burst of connects
        costs one round trip, not one each)."""
        topic = self.topics.presence.name
        while True:
            updates = [await self.presence_updates.get()]
            while not self.presence_updates.empty():
                updates.append(self.presence_updates.get_nowait())
            try:
                sent = [await self.presence.send(topic, value, key=key) for key, value in updates]
                await asyncio.gather(*sent)
            except (KafkaError, OSError) as exc:
                log.warning("presence updates lost (push falls back to pull): %r", exc)

    async def _announce(self) -> None:
        now = int(time.time() * 1000)
        record = heartbeat_record(self.id, self.started_ms, now)
        await self.presence.send_and_wait(
            self.topics.presence.name, record, key=heartbeat_key(self.id)
        )

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await self._announce()
            except (KafkaError, OSError) as exc:
                log.warning("presence heartbeat failed: %r", exc)


async def _close_at_expiry(ws: web.WebSocketResponse, expires_s: int) -> None:
    """A socket lives no longer than its token: closed with TOKEN_EXPIRED_CLOSE and
    a reason at the token's expiry (the device reconnects with a fresh token)."""
    await asyncio.sleep(max(0.0, expires_s - time.time()))
    await ws.close(code=TOKEN_EXPIRED_CLOSE, message=b"token expired: reconnect with a fresh one")


async def serve(settings: Settings, stopping: asyncio.Event) -> None:
    """Serve until ``stopping`` is set, then close every socket and stop cleanly."""
    gateway = Gateway(settings)
    # lingering_time: how long a refused request's unread body is drained before the
    # connection closes (aiohttp: 10 s); a slow client gets its 408 and no more.
    # keepalive_timeout: aiohttp (3.14) arms it when a connection opens and after each
    # response, and closes the connection if no request head has arrived by then,
    # however many header bytes trickled in (GATEWAY_IDLE_TIMEOUT_S)
    runner = web.AppRunner(
        gateway.app(),
        access_log=None,
        shutdown_timeout=5.0,
        lingering_time=LINGER_S,
        keepalive_timeout=settings.gateway.idle_timeout_s,
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.gateway.host, settings.gateway.port)
    await site.start()
    log.warning(
        "gateway %s on http://%s:%d", gateway.id, settings.gateway.host, settings.gateway.port
    )
    try:
        await stopping.wait()
    finally:
        await runner.cleanup()


async def main(settings: Settings) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await serve(settings, stopping)
