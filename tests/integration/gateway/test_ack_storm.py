"""An ack storm: a device acking its cursor thousands of times a second, over HTTP and
over its WebSocket, makes a few ClickHouse writes, and the latest cursor wins."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import orjson

from pipeline.settings import Settings
from pipeline.store.clickhouse import ClickHouse
from tests.support import eventually, gateway_process, scrape, token


async def test_acks_are_coalesced_per_device_and_the_latest_wins(
    settings: Settings, tmp_path: Path
) -> None:
    store = ClickHouse(settings, size=1)
    async with (
        gateway_process(settings, tmp_path / "gw.log") as gw,
        aiohttp.ClientSession() as http,
    ):
        phone = {"Authorization": f"Bearer {token(gw.settings, 'alice', 'phone')}"}
        url = gw.url + "/v1/devices/phone/cursor"

        async def put(cursor: int) -> int:
            async with http.put(url, json={"cursor": cursor}, headers=phone) as answer:
                return answer.status

        # 600 acks over HTTP, out of order at the end: a late, older ack never wins
        statuses = await asyncio.gather(*(put(c) for c in range(1, 601)))
        assert set(statuses) == {204}
        assert await put(5) == 204
        async with http.get(gw.url + "/v1/devices", headers=phone) as answer:
            assert (await answer.json())["devices"] == {"phone": 600}  # before it is written

        laptop = token(gw.settings, "alice", "laptop")
        async with http.ws_connect(f"{gw.url}/v1/stream?token={laptop}") as ws:
            for cursor in range(1, 1001):
                await ws.send_str(orjson.dumps({"type": "ack", "cursor": cursor}).decode())
            await ws.send_str('{"type": "ack", "cursor": -1}')  # refused at once, as before
            frame = await ws.receive_json(timeout=10)
            while frame.get("type") != "error":
                frame = await ws.receive_json(timeout=10)
            assert "cursor must be between 0 and" in frame["reason"]

            async def stored() -> dict[str, int]:
                rows = await store.execute(
                    "SELECT device_id, max(cursor), count() FROM device_cursors "
                    "WHERE user_id = 'alice' GROUP BY device_id"
                )
                return {device: (int(high), int(n)) for device, high, n in rows}

            found = await eventually(
                stored, lambda s: s.get("phone", (0,))[0] == 600 and "laptop" in s, within=15
            )
            found = await eventually(stored, lambda s: s["laptop"][0] == 1000, within=15)
        metrics = await scrape(gw.url)
    store.close()
    # 1,601 acks; each device's rows are the writes of a few intervals, not one per ack
    assert found["phone"][0] == 600
    assert found["laptop"][0] == 1000
    assert found["phone"][1] + found["laptop"][1] <= 10, found
    assert metrics.value("imstream_gateway_cursor_acks", what="received") == 1_601
    assert metrics.value("imstream_gateway_cursor_acks", what="writes") <= 10
