"""The push half of ``imstream demo``: a gateway, devices online and offline."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace
from typing import Any

import aiohttp

from pipeline.gateway import app, auth
from pipeline.sdk.client import ApiClient, SyncClient
from pipeline.settings import Settings

WAIT_S = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _show(device: str, how: str) -> Any:
    def show(entry: dict[str, Any]) -> None:
        what = (
            f"{entry['sender_id']}: {entry['body']}"
            if entry["kind"] == "message"
            else entry["kind"]
        )
        print(
            f"  bob's {device:<7} {how:<8} #{entry['sync_seq']:<4} {entry['conversation_id']}"
            f"  {what}"
        )

    return show


async def _until(check: Any, within: float = WAIT_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check() and loop.time() < deadline:  # noqa: ASYNC110 - polls other tasks' progress
        await asyncio.sleep(0.02)


async def _healthy(http: aiohttp.ClientSession, url: str) -> None:
    for _ in range(int(WAIT_S / 0.1)):
        try:
            async with http.get(url + "/health") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the demo gateway at {url} did not answer")


async def push_demo(settings: Settings, run: str, direct: str, alice: str, bob: str) -> None:
    """Alice sends in their direct conversation; bob's devices get it pushed or pulled."""
    port = _free_port()
    settings = settings.replace(gateway=replace(settings.gateway, port=port, id=f"demo-{run}"))
    url = f"http://127.0.0.1:{port}"
    secret = settings.gateway.auth_secret
    stopping = asyncio.Event()
    gateway = asyncio.create_task(app.serve(settings, stopping))
    devices_stop = asyncio.Event()
    try:
        async with aiohttp.ClientSession() as http:
            sender = ApiClient(url, auth.issue(secret, alice, "phone", 600), http)
            receiver = ApiClient(url, auth.issue(secret, bob, "phone", 600), http)
            await _healthy(http, url)
            head = (await receiver.pull(0, 1))["head"]
            print(
                f"\ngateway on {url}: bob's phone and laptop online, his tablet offline "
                f"(all at sync_seq {head})"
            )
            online = [
                SyncClient(
                    url,
                    auth.issue(secret, bob, d, 600),
                    d,
                    cursor=head,
                    on_entry=_show(d, "pushed"),
                )
                for d in ("phone", "laptop")
            ]
            tasks = [asyncio.create_task(c.run(devices_stop)) for c in online]
            for device in online:
                await asyncio.wait_for(device.connected.wait(), WAIT_S)
            await asyncio.sleep(1.0)  # the push agent learns they are online
            for i, text in enumerate(
                ("are you there?", "pushed to every online device", "the tablet will catch up")
            ):
                print(f"alice sends: {text}")
                await sender.send(direct, text)
                await _until(lambda n=i: all(c.cursor >= head + n + 1 for c in online))
            tablet = SyncClient(
                url,
                auth.issue(secret, bob, "tablet", 600),
                "tablet",
                cursor=head,
                on_entry=_show("tablet", "pulled"),
            )
            print("bob's tablet connects:")
            tasks.append(asyncio.create_task(tablet.run(devices_stop)))
            await asyncio.wait_for(tablet.connected.wait(), WAIT_S)
            await _until(lambda: tablet.cursor >= online[0].cursor)
            devices_stop.set()
            await asyncio.gather(*tasks)
            pushed = sum(c.pushed_applied for c in online)
            print(
                f"{pushed} entries arrived by push, the tablet pulled {len(tablet.entries)}; "
                f"cursors acked: {(await receiver.call('GET', '/v1/devices'))['devices']}"
            )
    finally:
        devices_stop.set()
        stopping.set()
        await gateway
