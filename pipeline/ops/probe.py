"""``imstream probe``: the fast path as a user feels it, measured against a live gateway.

Two probe users share a direct conversation. Every ``interval`` seconds the
sender posts a message over HTTP while the receiver listens on the WebSocket;
each round reports

    send → ack        the gateway answered 202 (the message is in the log)
    send → push       the entry arrived on the receiver's socket
    send → pullable   the entry is in the receiver's sync timeline (GET /v1/sync)

A round fails with the reason when any of them does not happen within
``timeout`` seconds (a refused send, no push, not pullable: the last two mean
the pipeline behind the gateway is not moving). After ``max_failures`` failed
rounds in a row the probe gives up and exits 1, so a supervisor or a cron job
can alert on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import orjson

from pipeline.sdk.api_client import ApiClient, ApiError

PULL_EVERY_S = 0.02


@dataclass
class Round:
    number: int
    ack_ms: float | None = None
    push_ms: float | None = None
    pullable_ms: float | None = None
    failure: str = ""

    @property
    def ok(self) -> bool:
        return not self.failure

    def line(self) -> str:
        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f} ms"

        figures = (
            f"send→ack {ms(self.ack_ms)}  send→push {ms(self.push_ms)}  "
            f"send→pullable {ms(self.pullable_ms)}"
        )
        if self.ok:
            return f"probe {self.number}: ok  {figures}"
        return f"probe {self.number}: FAILED: {self.failure}  ({figures})"


@dataclass
class Probe:
    base_url: str
    token_for: Callable[[str], str]
    """A token for a probe user (the gateway's own issuer: ``imstream probe`` signs
    them with the configured secret)."""
    sender: str = "probe-sender"
    receiver: str = "probe-receiver"
    timeout_s: float = 5.0
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    arrivals: dict[str, float] = field(default_factory=dict)
    cursor: int = 0
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    _ws: aiohttp.ClientWebSocketResponse | None = None
    _listener: asyncio.Task[None] | None = None

    async def run(
        self, interval_s: float, count: int, max_failures: int, say: Callable[[str], None]
    ) -> int:
        """Probe until ``count`` rounds (0: forever) or ``max_failures`` failures in a row."""
        async with aiohttp.ClientSession() as http:
            send = ApiClient(self.base_url, self._token(self.sender), http)
            receive = ApiClient(self.base_url, self._token(self.receiver), http)
            failures, number = 0, 0
            try:
                while count == 0 or number < count:
                    number += 1
                    result = await self.round(number, http, send, receive)
                    say(result.line())
                    failures = 0 if result.ok else failures + 1
                    if failures >= max_failures:
                        say(f"probe: {failures} failed rounds in a row, giving up")
                        return 1
                    if count == 0 or number < count:
                        await asyncio.sleep(interval_s)
            finally:
                await self._disconnect()
        return 0

    async def round(
        self, number: int, http: aiohttp.ClientSession, send: ApiClient, receive: ApiClient
    ) -> Round:
        result = Round(number)
        try:
            async with asyncio.timeout(self.timeout_s * 3):
                await self._measure(result, http, send, receive)
        except TimeoutError:
            result.failure = result.failure or f"no answer within {self.timeout_s * 3:g}s"
        except (aiohttp.ClientError, OSError) as exc:
            result.failure = f"gateway {self.base_url} unreachable: {exc!r}"
            await self._disconnect()
        except ApiError as exc:
            result.failure = f"the gateway refused: {exc}"
        return result

    async def _measure(
        self, result: Round, http: aiohttp.ClientSession, send: ApiClient, receive: ApiClient
    ) -> None:
        conversation = await self._conversation(send)
        await self._connect(http, receive)
        page = await receive.pull(self.cursor, 1)
        self.cursor = max(self.cursor, int(page["head"]))
        marker = f"probe-{self.run_id}-{result.number}"
        started = time.monotonic()
        await send.send(conversation, marker, client_msg_id=marker)
        result.ack_ms = (time.monotonic() - started) * 1000
        result.push_ms = await self._pushed(marker, started)
        result.pullable_ms = await self._pullable(receive, marker, started)
        missing = [
            what
            for what, value in (("pushed", result.push_ms), ("pullable", result.pullable_ms))
            if value is None
        ]
        if missing:
            result.failure = (
                f"sent (202) but not {' nor '.join(missing)} within {self.timeout_s:g}s: "
                "is a worker running (sequencer, sync, sync-store, push)?"
            )

    async def _conversation(self, send: ApiClient) -> str:
        try:
            created = await send.create_direct(self.receiver)
        except ApiError as exc:
            if exc.status != 409:  # 409: it exists already
                raise
            first, second = sorted((self.sender, self.receiver))
            return f"dm:{first}:{second}"
        return str(created["conversation_id"])

    async def _connect(self, http: aiohttp.ClientSession, receive: ApiClient) -> None:
        """The receiver's WebSocket, kept open across rounds. A new one counts as ready
        when the gateway's "connected" pull frame comes (a second after it registered
        the device), so the push agent has heard of it before the first send."""
        if self._ws is not None and not self._ws.closed:
            return
        await self._disconnect()
        url = self.base_url.replace("http", "ws", 1) + "/v1/stream"
        self._ws = await http.ws_connect(url, params={"token": receive.token})
        self.settled.clear()
        self._listener = asyncio.create_task(self._listen(self._ws))
        async with asyncio.timeout(self.timeout_s):
            await self.settled.wait()

    async def _disconnect(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._ws is not None:
            await self._ws.close()
        self._ws = self._listener = None

    async def _listen(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = orjson.loads(message.data)
            if frame.get("type") == "entry":
                marker = frame["entry"].get("client_msg_id", "")
                self.arrivals.setdefault(marker, time.monotonic())
            elif frame.get("type") == "pull" and frame.get("reason") == "connected":
                self.settled.set()

    async def _pushed(self, marker: str, started: float) -> float | None:
        deadline = started + self.timeout_s
        while time.monotonic() < deadline:
            if marker in self.arrivals:
                return (self.arrivals.pop(marker) - started) * 1000
            await asyncio.sleep(0.001)
        return None

    async def _pullable(self, receive: ApiClient, marker: str, started: float) -> float | None:
        deadline = started + self.timeout_s
        while time.monotonic() < deadline:
            page = await receive.pull(self.cursor, 100)
            for entry in page["entries"]:
                if entry.get("client_msg_id") == marker:
                    return (time.monotonic() - started) * 1000
            self.cursor = int(page["cursor"])
            await asyncio.sleep(PULL_EVERY_S)
        return None

    def _token(self, user: str) -> str:
        return self.token_for(user)
