"""Pure logic of push routing: presence folding, per-connection queues, client rules."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from pipeline.gateway.hub import PULL_FRAME, Connection, Hub, State
from pipeline.model.presence import (
    PresenceTable,
    heartbeat_key,
    heartbeat_record,
    user_key,
    user_record,
)
from pipeline.sdk.client import decide


def test_presence_routes_users_to_live_gateways() -> None:
    table = PresenceTable(stale_ms=1_000)
    table.apply(heartbeat_key("gw1"), heartbeat_record("gw1", started_ms=100, ts_ms=100))
    table.apply(user_key("gw1", "bob"), user_record("gw1", "bob", 2, ts_ms=150))
    assert table.gateways_of("bob", now_ms=500) == ["gw1"]
    assert table.gateways_of("alice", now_ms=500) == []
    # a gateway that stopped heart-beating is gone
    assert table.gateways_of("bob", now_ms=2_000) == []
    # the last device left: a tombstone
    table.apply(user_key("gw1", "bob"), user_record("gw1", "bob", 0, ts_ms=160))
    assert table.gateways_of("bob", now_ms=500) == []


def test_a_restarted_gateway_forgets_its_previous_users() -> None:
    table = PresenceTable()
    table.apply(heartbeat_key("gw1"), heartbeat_record("gw1", started_ms=100, ts_ms=100))
    table.apply(user_key("gw1", "bob"), user_record("gw1", "bob", 1, ts_ms=150))
    table.apply(heartbeat_key("gw1"), heartbeat_record("gw1", started_ms=200, ts_ms=200))
    assert table.gateways_of("bob", now_ms=250) == []
    table.apply(b"gw1/carol", b"not json")  # ignored, not fatal
    assert table.gateways_of("carol", now_ms=250) == []


class FakeSocket:
    """Stands in for aiohttp's WebSocketResponse: records what was sent."""

    def __init__(self, block: asyncio.Event | None = None) -> None:
        self.sent: list[str] = []
        self.block = block

    async def send_str(self, frame: str) -> None:
        if self.block is not None:
            await self.block.wait()
        self.sent.append(frame)


async def test_a_slow_socket_is_told_to_pull_and_never_blocks_the_hub() -> None:
    release = asyncio.Event()
    slow = Connection("bob", "phone", FakeSocket(release), queue_size=3)  # type: ignore[arg-type]
    fast_socket = FakeSocket()
    fast = Connection("bob", "laptop", fast_socket, queue_size=3)  # type: ignore[arg-type]
    presence: list[tuple[str, int]] = []
    hub = Hub(on_presence=lambda user, n: presence.append((user, n)))
    hub.add(slow)
    hub.add(fast)
    writers = [asyncio.create_task(c.write()) for c in (slow, fast)]
    for i in range(10):
        assert hub.push("bob", f"e{i}") == 2  # never waits, whatever the sockets do
        await asyncio.sleep(0)
    assert slow.state is State.BEHIND
    assert slow.dropped > 0
    release.set()
    await asyncio.sleep(0.01)
    assert PULL_FRAME in slow.ws.sent  # type: ignore[attr-defined]
    assert fast_socket.sent == [f"e{i}" for i in range(10)]
    hub.remove(slow)
    hub.remove(fast)
    assert presence == [("bob", 1), ("bob", 2), ("bob", 1), ("bob", 0)]
    await asyncio.gather(*writers)
    assert slow.closed
    assert fast.closed


def test_devices_apply_only_the_next_entry() -> None:
    assert decide(cursor=4, sync_seq=5) == "apply"
    assert decide(cursor=4, sync_seq=4) == "skip"
    assert decide(cursor=4, sync_seq=2) == "skip"
    assert decide(cursor=4, sync_seq=7) == "pull"


def test_pull_frame_is_json() -> None:
    frame: dict[str, Any] = orjson.loads(PULL_FRAME)
    assert frame == {"type": "pull", "reason": "behind"}
