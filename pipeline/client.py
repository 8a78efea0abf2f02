"""The reference client: how a device (or any service) consumes a user's stream.

:class:`ApiClient` wraps the gateway's HTTP API. :class:`SyncClient`
implements the sync protocol of DESIGN.md::

    connect ─► pull from the cursor until caught up ─► apply pushes in order
                  ▲                                        │ sync_seq != cursor + 1
                  └───────────── pull (the gap) ◄──────────┘

It applies an entry only when its ``sync_seq`` is ``cursor + 1``, so the
cursor only ever moves over contiguous entries; repeats are skipped; a gap,
or a "pull" frame from a gateway that dropped entries for a slow socket,
makes it pull until the gap is filled (retrying while the store lags or is
away, never jumping). It acks its cursor to the server, and reconnects with
backoff when the connection drops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import aiohttp
import orjson

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


class ApiError(Exception):
    def __init__(self, status: int, error: str, reason: str, body: Any = None) -> None:
        super().__init__(f"{status} {error}: {reason}")
        self.status = status
        self.error = error
        self.reason = reason
        self.body = body if isinstance(body, dict) else {}


class ApiClient:
    def __init__(self, base_url: str, token: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.session = session

    async def call(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        data = orjson.dumps(body) if body is not None else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        async with self.session.request(
            method, self.base_url + path, data=data, params=params, headers=headers
        ) as response:
            raw = await response.read()
            payload = orjson.loads(raw) if raw else None
            if response.status >= 400:
                payload = payload if isinstance(payload, dict) else {}
                raise ApiError(
                    response.status,
                    payload.get("error", "http_error"),
                    payload.get("reason", raw.decode("utf-8", "replace")),
                    payload,
                )
            return payload

    async def send(
        self,
        conversation_id: str,
        body: str,
        *,
        client_msg_id: str | None = None,
        content_type: str = "text/plain",
    ) -> Any:
        message: dict[str, Any] = {"body": body, "content_type": content_type}
        if client_msg_id is not None:
            message["client_msg_id"] = client_msg_id
        return await self.call("POST", f"/v1/conversations/{conversation_id}/messages", message)

    async def create_group(self, conversation_id: str, members: list[str], title: str = "") -> Any:
        return await self.call(
            "POST",
            "/v1/conversations",
            {"conversation_id": conversation_id, "members": members, "title": title},
        )

    async def create_direct(self, peer: str) -> Any:
        return await self.call("POST", "/v1/direct", {"peer": peer})

    async def join(self, conversation_id: str, user_id: str) -> Any:
        return await self.call(
            "POST", f"/v1/conversations/{conversation_id}/members", {"user_id": user_id}
        )

    async def leave(self, conversation_id: str, user_id: str) -> Any:
        return await self.call("DELETE", f"/v1/conversations/{conversation_id}/members/{user_id}")

    async def history(
        self, conversation_id: str, before: int | None = None, limit: int = 50
    ) -> Any:
        params = {"limit": limit, **({"before": before} if before is not None else {})}
        return await self.call(
            "GET", f"/v1/conversations/{conversation_id}/messages", params=params
        )

    async def pull(self, after: int, limit: int = 100) -> Any:
        return await self.call("GET", "/v1/sync", params={"after": after, "limit": limit})

    async def ack(self, device_id: str, cursor: int) -> None:
        await self.call("PUT", f"/v1/devices/{device_id}/cursor", {"cursor": cursor})


OnEntry = Callable[[Entry], Awaitable[None] | None]
ACK_EVERY_S = 1.0


class SyncClient:
    """Keeps one device in sync; ``entries`` holds what it applied, in order."""

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
        self.connected = asyncio.Event()
        self.pulls = 0
        self.pushed_applied = 0
        self.resyncs = 0
        self._acked = cursor
        self._acked_at = 0.0

    async def run(self, stopping: asyncio.Event) -> None:
        """Stay connected until ``stopping`` is set, reconnecting with backoff."""
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

    async def _session(
        self, session: aiohttp.ClientSession, api: ApiClient, stopping: asyncio.Event
    ) -> None:
        url = self.base_url.replace("http", "ws", 1) + "/v1/stream"
        async with session.ws_connect(url, params={"token": self.token}, heartbeat=20) as ws:
            hello = await ws.receive_json(timeout=10)
            if hello.get("type") != "hello":
                raise ApiError(502, "bad_hello", str(hello))
            await self.catch_up(api)
            self.connected.set()
            stop = asyncio.create_task(stopping.wait())
            try:
                while not stopping.is_set():
                    receive = asyncio.create_task(ws.receive())
                    done, _ = await asyncio.wait(
                        {receive, stop}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if receive not in done:
                        receive.cancel()
                        return
                    message = receive.result()
                    if message.type != aiohttp.WSMsgType.TEXT:
                        return
                    await self._frame(api, orjson.loads(message.data))
            finally:
                stop.cancel()

    async def _frame(self, api: ApiClient, frame: dict[str, Any]) -> None:
        if frame.get("type") == "pull":
            await self.catch_up(api)
        elif frame.get("type") == "entry":
            entry = frame["entry"]
            if self.push_filter is not None and not self.push_filter(entry):
                return
            decision = decide(self.cursor, entry["sync_seq"])
            if decision == "pull":
                await self.catch_up(api, until=entry["sync_seq"] - 1)
                decision = decide(self.cursor, entry["sync_seq"])
            if decision == "apply":
                self.pushed_applied += 1
                await self._apply([entry])
                await self._ack(api)

    async def catch_up(self, api: ApiClient, until: int | None = None) -> None:
        """Pull until caught up (and at least up to ``until``), retrying while it lags."""
        delay = 0.05
        while True:
            self.pulls += 1
            page = await api.pull(self.cursor, self.page)
            await self._apply(page["entries"])
            if page["entries"]:
                delay = 0.05
                continue
            if until is None or self.cursor >= until:
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
        """Ack the cursor: at once when forced, else at most every ACK_EVERY_S."""
        loop = asyncio.get_running_loop()
        if self.cursor <= self._acked or (not force and loop.time() - self._acked_at < ACK_EVERY_S):
            return
        try:
            await api.ack(self.device_id, self.cursor)
        except (ApiError, aiohttp.ClientError, OSError) as exc:
            log.info("sync client %s: ack failed (%r), will retry", self.device_id, exc)
            return
        self._acked = self.cursor
        self._acked_at = loop.time()
