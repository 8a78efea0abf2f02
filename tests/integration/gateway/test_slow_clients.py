"""A slow-body client (a byte now and then) gets 408 and its connection closed after
GATEWAY_BODY_TIMEOUT_S; a client trickling its headers has its connection closed
after GATEWAY_IDLE_TIMEOUT_S; other clients are served meanwhile. Tried with a raw
TCP socket, the way such a client behaves."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from pipeline.settings import Settings
from tests.support import gateway_process, token


async def test_a_slow_body_gets_408_and_others_are_served(
    settings: Settings, tmp_path: Path
) -> None:
    slow = settings.replace(gateway=replace(settings.gateway, body_timeout_s=3.0))
    async with gateway_process(slow, tmp_path / "gw.log") as gw:
        bearer = token(gw.settings, "alice", "phone")
        host, port = gw.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        head = (
            "PUT /v1/devices/phone/cursor HTTP/1.1\r\n"
            f"Host: {host}\r\nAuthorization: Bearer {bearer}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        )
        started = time.monotonic()
        writer.write(head.encode() + b'{"cursor"')
        await writer.drain()

        async def trickle() -> None:  # one byte a second, never the whole body
            for byte in b": 1          ":
                await asyncio.sleep(1.0)
                writer.write(bytes([byte]))
                await writer.drain()

        dripping = asyncio.create_task(trickle())
        # meanwhile, another device is served at once
        async with aiohttp.ClientSession() as http:
            other = {"Authorization": f"Bearer {token(gw.settings, 'bob', 'laptop')}"}
            async with http.put(
                gw.url + "/v1/devices/laptop/cursor", json={"cursor": 3}, headers=other
            ) as answer:
                assert answer.status == 204
        # ... while the slow one is still waiting for its answer (a condition, not a clock)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), timeout=0.05)

        answer = await asyncio.wait_for(reader.read(), timeout=15)  # until it closes
        took = time.monotonic() - started
        dripping.cancel()
        await asyncio.gather(dripping, return_exceptions=True)
        writer.close()
    status_line, _, rest = answer.decode().partition("\r\n")
    assert status_line == "HTTP/1.1 408 Request Timeout", answer
    assert '"error":"request_timeout"' in rest
    assert "did not arrive within 3s" in rest
    assert 2.9 <= took < 10.0  # answered at the timeout, and the connection closed


async def test_a_header_trickle_is_cut_off_and_others_are_served(
    settings: Settings, tmp_path: Path
) -> None:
    idle = settings.replace(gateway=replace(settings.gateway, idle_timeout_s=3.0))
    async with gateway_process(idle, tmp_path / "gw.log") as gw:
        host, port = gw.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        started = time.monotonic()
        writer.write(b"GET /v1/me HTTP/1.1\r\nHost: x\r\n")
        await writer.drain()

        async def trickle() -> None:  # a header byte a second, the head never complete
            for byte in b"X-Slow: " + b"a" * 30:
                await asyncio.sleep(1.0)
                writer.write(bytes([byte]))
                await writer.drain()

        dripping = asyncio.create_task(trickle())
        async with aiohttp.ClientSession() as http:
            mine = {"Authorization": f"Bearer {token(gw.settings, 'bob', 'laptop')}"}
            async with http.get(gw.url + "/v1/me", headers=mine) as answer:
                assert answer.status == 200
        with pytest.raises(TimeoutError):  # the trickler is still connected, unanswered
            await asyncio.wait_for(reader.read(1), timeout=0.05)
        answer = await asyncio.wait_for(reader.read(), timeout=15)  # until it closes
        took = time.monotonic() - started
        dripping.cancel()
        await asyncio.gather(dripping, return_exceptions=True)
        writer.close()
    assert answer == b""  # closed without a word: it never made a request
    assert 2.9 <= took < 10.0, took  # at the idle timeout, not the trickle's 38 s


async def test_an_oversized_websocket_message_closes_that_socket(
    settings: Settings, tmp_path: Path
) -> None:
    async with (
        gateway_process(settings, tmp_path / "gw.log") as gw,
        aiohttp.ClientSession() as http,
    ):
        bearer = token(gw.settings, "alice", "phone")
        async with http.ws_connect(f"{gw.url}/v1/stream?token={bearer}") as ws:
            await ws.send_str('{"type": "ack", "cursor": 0, "pad": "' + "x" * 5000 + '"}')
            while (await ws.receive(timeout=10)).type not in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
            ):
                pass
        assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
        async with http.get(gw.url + "/v1/me", headers={"Authorization": f"Bearer {bearer}"}) as r:
            assert r.status == 200  # the gateway itself is fine
