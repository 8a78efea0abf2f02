"""The reference client: how a device (or any service) consumes a user's stream.

:class:`ApiClient` (pipeline/sdk/api_client.py) wraps the gateway's HTTP API.
:class:`SyncClient` implements the sync protocol of docs/design.md::

    connect ─► pull from the cursor until caught up ─► apply pushes in order
                  ▲                                        │ sync_seq != cursor + 1
                  └───────────── pull (the gap) ◄──────────┘

It applies an entry only when its ``sync_seq`` is ``cursor + 1``, so the
cursor only ever moves over contiguous entries; repeats are skipped; a gap,
or a "pull" frame from a gateway that dropped entries for a slow socket,
makes it pull until the gap is filled (retrying while the store lags or is
away, never jumping). Large groups' messages (read diffusion) follow the same
rule with a cursor per group (pipeline/sdk/client_groups.py): from ``groups`` of
each pull and from ``group_message`` pushes. It acks its cursors to the
server, and reconnects with backoff when the connection drops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import aiohttp
import orjson

from pipeline.errors import AuthError
from pipeline.model.unread import Badges
from pipeline.sdk.api_client import ApiClient, ApiError
from pipeline.sdk.client_groups import GroupReader

__all__ = ["ApiClient", "ApiError", "SyncClient", "decide"]

log = logging.getLogger(__name__)

Entry = dict[str, Any]
Decision = Literal["apply", "skip", "pull"]


def decide(cursor: int, sync_seq: int) -> Decision:
    """What a device does with a pushed entry, given the last sync_seq it applied."""
    if sync_seq == cursor + 1:
        return "apply"
    if sync_seq <= cursor:
        return "skip"
    return "pull"


OnEntry = Callable[[Entry], Awaitable[None] | None]
ACK_EVERY_S = 1.0
# the close code of a socket whose token expired (the application's range, 4000-4999)
TOKEN_EXPIRED_CLOSE = 4001
BEHIND_RETRY_S = 1.0  # how often a device whose pull failed tries again
LEARN_GROUP_S = 10.0  # how long a push of a group this device does not read yet waits for it


class SyncClient:
    """Keeps one device in sync; ``entries`` holds what it applied, in order, and
    ``group_entries[conversation]`` what it applied of each large group."""

    def __init__(
        self,
        base_url: str,
        token: str,
        device_id: str,
        *,
        cursor: int = 0,
        on_entry: OnEntry | None = None,
        page: int = 500,
        push_filter: Callable[[Entry], bool] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.device_id = device_id
        self.cursor = cursor
        self.on_entry = on_entry
        self.page = page
        self.push_filter = push_filter  # fault injection: False drops a pushed entry
        self.entries: list[Entry] = []
        self.badges = Badges()
        """The device's unread counts, from what it applied (read markers of the
        user's other devices included)."""
        self.groups = GroupReader(on_message=self.badges.message)
        self.group_entries = self.groups.entries
        self.user_id = ""
        self.connected = asyncio.Event()
        self.behind = False
        """The last pull failed (the store is unavailable): only pushes move the cursor."""
        self._retry_at = 0.0
        self.pulls = 0
        self.pushed_applied = 0
        self.resyncs = 0
        self._acked = cursor
        self._acked_at = 0.0
        self._acking: asyncio.Task[None] | None = None

    async def run(self, stopping: asyncio.Event) -> None:
        """Stay connected until ``stopping`` is set, reconnecting with backoff; raise
        AuthError when the gateway closes the socket because the token expired."""
        delay = 0.2
        async with aiohttp.ClientSession() as session:
            api = ApiClient(self.base_url, self.token, session)
            while not stopping.is_set():
                try:
                    await self._session(session, api, stopping)
                    delay = 0.2
                except ApiError as exc:
                    if exc.error != "cursor_expired":
                        log.info("sync client %s: %r; reconnecting", self.device_id, exc)
                    else:
                        await self.expired(int(exc.body.get("head", 0)))
                        delay = 0.0
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    log.info("sync client %s: %r; reconnecting", self.device_id, exc)
                self.connected.clear()
                await self._ack(api, force=True)
                if not stopping.is_set():
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            if self._acking is not None:  # the session closes: nothing may use it after
                self._acking.cancel()
                await asyncio.gather(self._acking, return_exceptions=True)

    async def _session(
        self, session: aiohttp.ClientSession, api: ApiClient, stopping: asyncio.Event
    ) -> None:
        url = self.base_url.replace("http", "ws", 1) + "/v1/stream"
        async with session.ws_connect(url, params={"token": self.token}, heartbeat=20) as ws:
            hello = await ws.receive_json(timeout=10)
            if hello.get("type") != "hello":
                raise ApiError(502, "bad_hello", str(hello))
            self.user_id = self.badges.user_id = hello["user_id"]
            await self._try_catch_up(api)
            self.connected.set()
            stop = asyncio.create_task(stopping.wait())
            receive: asyncio.Task[aiohttp.WSMessage] | None = None
            try:
                while not stopping.is_set():
                    receive = receive or asyncio.create_task(ws.receive())
                    done, _ = await asyncio.wait(
                        {receive, stop},
                        timeout=BEHIND_RETRY_S if self.behind else None,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    if stop in done:
                        return
                    if self.behind:  # the last pull failed: try again now and then
                        await self._try_catch_up(api)
                    if receive not in done:
                        continue
                    message, receive = receive.result(), None
                    if ws.close_code == TOKEN_EXPIRED_CLOSE:
                        # reconnecting with the same token can only be refused
                        raise AuthError(f"device {self.device_id}: the token expired")
                    if message.type != aiohttp.WSMsgType.TEXT:
                        return
                    await self._frame(api, orjson.loads(message.data))
            finally:
                stop.cancel()
                if receive is not None:
                    receive.cancel()

    async def _try_catch_up(self, api: ApiClient, **bounds: Any) -> bool:
        """``catch_up``, unless the store is unavailable (503): then stay connected,
        apply the pushes that follow the cursor, and pull again later (``behind``)."""
        if self.behind and asyncio.get_running_loop().time() < self._retry_at:
            return False
        try:
            await self.catch_up(api, **bounds)
        except ApiError as exc:
            if exc.status != 503:
                raise
            log.info("sync client %s: pull unavailable (%s); on pushes", self.device_id, exc)
            self.behind = True
            self._retry_at = asyncio.get_running_loop().time() + BEHIND_RETRY_S
            return False
        self.behind = False
        return True

    async def _frame(self, api: ApiClient, frame: dict[str, Any]) -> None:
        if frame.get("type") == "pull":
            await self._try_catch_up(api)
        elif frame.get("type") == "group_message":
            await self._group_frame(api, frame)
        elif frame.get("type") == "entry":
            entry = frame["entry"]
            if self.push_filter is not None and not self.push_filter(entry):
                return
            decision = decide(self.cursor, entry["sync_seq"])
            if decision == "pull":
                await self._try_catch_up(api, until=entry["sync_seq"] - 1)
                decision = decide(self.cursor, entry["sync_seq"])
            if decision == "apply":
                self.pushed_applied += 1
                await self._apply([entry])
                await self._ack(api)

    async def _group_frame(self, api: ApiClient, frame: dict[str, Any]) -> None:
        conv, message = frame["conversation_id"], frame["entry"]
        if self.push_filter is not None and not self.push_filter(message):
            return
        if self.groups.decide(conv, message["seq"]) == "pull":
            await self._try_catch_up(api, group_until=(conv, message["seq"] - 1))
        if self.groups.apply(conv, message):
            self.pushed_applied += 1
            await self._ack(api)

    async def catch_up(
        self, api: ApiClient, until: int | None = None, group_until: tuple[str, int] | None = None
    ) -> None:
        """Pull until caught up (and at least up to ``until`` in the sync timeline and
        ``group_until`` in a group), retrying while the store lags."""
        delay = 0.05
        loop = asyncio.get_running_loop()
        learn_by = loop.time() + LEARN_GROUP_S
        while True:
            self.pulls += 1
            page = await api.pull(self.cursor, self.page, self.groups.param())
            await self._apply(page["entries"])
            if self.groups.apply_pages(page.get("groups", [])) or page["entries"]:
                delay = 0.05
                continue
            if group_until is not None and (
                self.groups.reached(*group_until)
                or (group_until[0] not in self.groups.cursors and loop.time() > learn_by)
            ):
                group_until = None  # reached; or a group this device does not read
            if (until is None or self.cursor >= until) and group_until is None:
                break
            await asyncio.sleep(delay)  # the store has not written the gap yet
            delay = min(delay * 2, 1.0)
        await self._ack(api, force=True)

    async def _apply(self, entries: list[Entry]) -> None:
        for entry in entries:
            if decide(self.cursor, entry["sync_seq"]) != "apply":
                continue
            self.entries.append(entry)
            self.cursor = entry["sync_seq"]
            self.groups.learn(self.user_id, entry)
            self.badges.entry(entry)
            if self.on_entry is not None:
                result = self.on_entry(entry)
                if result is not None:
                    await result

    async def expired(self, head: int) -> None:
        """The cursor is older than the sync retention. A real device re-reads its
        conversations' history here; the reference client continues from the head."""
        log.warning(
            "sync client %s: cursor %d expired; continuing from %d",
            self.device_id,
            self.cursor,
            head,
        )
        self.resyncs += 1
        self.cursor = head

    async def _ack(self, api: ApiClient, force: bool = False) -> None:
        """Ack the cursor: when forced, at once (and wait for it); else at most every
        ACK_EVERY_S, in the background: a slow or failing ack (the store is away)
        never holds up the pushes behind it."""
        loop = asyncio.get_running_loop()
        moved = self.cursor > self._acked or bool(self.groups.to_ack())
        if not moved:
            return
        if force:
            await self._send_ack(api)
            return
        busy = self._acking is not None and not self._acking.done()
        if busy or self.behind or loop.time() - self._acked_at < ACK_EVERY_S:
            return
        self._acked_at = loop.time()  # attempts are rate-limited, not only successes
        self._acking = asyncio.create_task(self._send_ack(api))

    async def _send_ack(self, api: ApiClient) -> None:
        cursor, groups = self.cursor, self.groups.to_ack()
        try:
            await api.ack(self.device_id, cursor, groups)
        except (ApiError, aiohttp.ClientError, OSError) as exc:
            log.info("sync client %s: ack failed (%r), will retry", self.device_id, exc)
            return
        self._acked = max(self._acked, cursor)
        self.groups.acked(groups)
        self._acked_at = asyncio.get_running_loop().time()
