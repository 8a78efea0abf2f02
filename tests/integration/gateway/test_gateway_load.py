"""1,000 concurrent WebSocket connections on one gateway process."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from agents.push import PushAgent
from pipeline.gateway import auth
from pipeline.sdk.client import ApiClient
from pipeline.sdk.producer import Producer
from tests.support import eventually, gateway_process, running_worker

USERS = 500
DEVICES = 2
GROUP = 50


async def test_a_thousand_connections_are_served(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    users = [f"u{i:03d}" for i in range(USERS)]
    groups = {f"g{g}": users[g * GROUP : (g + 1) * GROUP] for g in range(USERS // GROUP)}
    async with (
        running_worker(settings) as worker,
        gateway_process(settings, tmp_path / "gw.log") as gw,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
    ):
        async with Producer(settings) as producer:
            for name, members in groups.items():
                await producer.create_conversation(name, members[0], members)
        owner = ApiClient(
            gw.url, auth.issue(gw.settings.gateway.auth_secret, users[0], "d", 3600), http
        )
        await eventually(lambda: _exists(owner, "g0"), bool, within=30)
        idle_rss = gw.rss_bytes()

        secret = gw.settings.gateway.auth_secret
        sockets = await asyncio.gather(
            *(
                http.ws_connect(
                    gw.url + "/v1/stream",
                    heartbeat=60,
                    params={"token": auth.issue(secret, user, f"d{d}", 3600)},
                )
                for user in users
                for d in range(DEVICES)
            )
        )
        hellos = await asyncio.gather(*(ws.receive_json(timeout=60) for ws in sockets))
        assert {h["type"] for h in hellos} == {"hello"}
        assert len(sockets) == USERS * DEVICES == 1000
        health = await (await http.get(gw.url + "/health")).json()
        assert health["connections"] == 1000
        busy_rss = gw.rss_bytes()
        push = worker.agents["push"]
        assert isinstance(push, PushAgent)
        await eventually(  # the presence of 500 users reaches the push agent
            lambda: _async(
                all(push.presence.gateways_of(u, int(time.time() * 1000)) for u in users)
            ),
            bool,
            within=60,
        )

        started = time.monotonic()
        async with Producer(settings) as producer:
            for name, members in groups.items():
                await producer.send_message(name, members[1], f"hello {name}")
        frames = await asyncio.gather(*(_next_entry(ws) for ws in sockets))
        elapsed = time.monotonic() - started
        assert all(f["entry"]["body"].startswith("hello g") for f in frames)
        per_connection = (busy_rss - idle_rss) / len(sockets)
        print(
            f"\n1000 connections: gateway RSS {idle_rss / 2**20:.1f} MiB idle, "
            f"{busy_rss / 2**20:.1f} MiB connected: {per_connection / 1024:.1f} KiB per "
            f"connection; one push to all 1000 in {elapsed:.2f}s"
        )
        assert per_connection < 256 * 1024
        await asyncio.gather(*(ws.close() for ws in sockets))


async def _next_entry(ws: aiohttp.ClientWebSocketResponse) -> dict:  # type: ignore[type-arg]
    while True:
        frame = await ws.receive_json(timeout=60)
        if frame["type"] == "entry" and frame["entry"]["kind"] == "message":
            return frame  # type: ignore[no-any-return]


async def _async(value: bool) -> bool:
    return value


async def _exists(api: ApiClient, conversation: str) -> bool:
    try:
        await api.call("GET", f"/v1/conversations/{conversation}")
    except Exception:  # noqa: BLE001 - not stored yet
        return False
    return True
