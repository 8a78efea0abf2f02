"""Read state on the real stack (docs/read-state.md): read markers through the sync
stream to a user's other devices, unread counts and the app badge, mute and pin,
the conversation list paged over 1,000 conversations, and "read by N of M" in a
2,000-member group. Devices are the reference SyncClient and plain WebSockets."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pipeline.sdk.client import ApiClient, ApiError, SyncClient
from pipeline.sdk.producer import Producer, user_event
from pipeline.settings import Settings
from tests.support import converged, eventually, gateway_process, running_worker, token


async def _unread(client: SyncClient, conversation_id: str) -> int:
    return client.badges.unread(conversation_id)


async def test_reading_on_one_device_clears_the_badge_on_the_other(
    settings: Settings, tmp_path: Path
) -> None:
    async with (
        running_worker(settings),
        gateway_process(settings, tmp_path / "gw.log") as gw,
        aiohttp.ClientSession() as http,
    ):
        alice = ApiClient(gw.url, token(gw.settings, "alice", "phone"), http)
        bob = ApiClient(gw.url, token(gw.settings, "bob", "phone"), http)
        await alice.create_group("team", ["bob"], title="Team")
        stopping = asyncio.Event()
        phone = SyncClient(gw.url, token(gw.settings, "bob", "phone"), "phone")
        pc = SyncClient(gw.url, token(gw.settings, "bob", "pc"), "pc")
        tasks = [asyncio.create_task(c.run(stopping)) for c in (phone, pc)]
        for client in (phone, pc):
            await asyncio.wait_for(client.connected.wait(), 30)
        for i in range(3):
            await alice.send("team", f"m{i}")
        for client in (phone, pc):
            assert await eventually(lambda c=client: _unread(c, "team"), lambda n: n == 3) == 3
        assert (await eventually(bob.unread, lambda u: u["total"] == 3))["total"] == 3

        # the phone reads up to 2: the pc learns it from its sync timeline
        assert (await bob.mark_read("team", 2))["conversation_id"] == "team"
        assert await eventually(lambda: _unread(pc, "team"), lambda n: n == 1) == 1
        (marker,) = [e for e in pc.entries if e["kind"] == "read"]
        assert (marker["seq"], marker["sender_id"], marker["subject_id"]) == (2, "bob", "phone")
        # a marker behind bob's is accepted and changes nothing (no entry)
        await bob.mark_read("team", 1)
        # bob's own message: nothing before it is unread, and it never is
        await bob.send("team", "me too")
        assert await eventually(lambda: _unread(pc, "team"), lambda n: n == 0) == 0
        await alice.send("team", "and one more")  # seq 5
        assert await eventually(lambda: _unread(pc, "team"), lambda n: n == 1) == 1

        listing = await eventually(
            bob.conversations, lambda p: p["conversations"][0]["last_message"]["seq"] == 5
        )
        (team,) = listing["conversations"]
        assert team["last_message"]["preview"] == "and one more"
        assert (team["kind"], team["title"], team["members"]) == ("group", "Team", 2)
        assert (team["unread"], team["read_seq"], team["mentions"]) == (1, 2, 0)
        assert listing["next_before"] is None
        assert (await bob.unread())["total"] == 1

        # a plain WebSocket reads up to 5, and alice watches "read by" of message 5
        tablet = await http.ws_connect(
            gw.url + "/v1/stream", params={"token": token(gw.settings, "bob", "tablet")}
        )
        watcher = await http.ws_connect(
            gw.url + "/v1/stream", params={"token": token(gw.settings, "alice", "pc")}
        )
        for ws in (tablet, watcher):
            assert (await ws.receive_json(timeout=10))["type"] == "hello"
        await watcher.send_json({"type": "receipts", "conversation_id": "team", "seq": 5})
        first = await _frame(watcher, "receipt")
        assert (first["seq"], first["read"], first["of"]) == (5, 0, 1)
        await tablet.send_json({"type": "read", "conversation_id": "team", "seq": 5})
        assert await eventually(lambda: _unread(pc, "team"), lambda n: n == 0) == 0
        assert await eventually(lambda: _unread(phone, "team"), lambda n: n == 0) == 0
        second = await _frame(watcher, "receipt")  # coalesced: one frame for the change
        assert (second["read"], second["of"]) == (1, 1)
        assert (await bob.receipt("team", 5))["read"] == 1
        markers = [e["seq"] for e in pc.entries if e["kind"] == "read"]
        assert markers == [2, 5]  # only forward

        # a seq the conversation does not have; a conversation bob is not in
        with pytest.raises(ApiError) as beyond:
            await bob.mark_read("team", 99)
        assert beyond.value.status == 409
        await alice.create_group("private", [])
        with pytest.raises(ApiError) as foreign:
            await bob.mark_read("private", 1)
        assert foreign.value.status == 403

        # muted: its own count stays, the total leaves it out; every device learns it
        await alice.send("team", "muted news")
        await bob.set_prefs("team", muted=True, pinned=True)
        assert (await eventually(bob.unread, lambda u: u["total"] == 0))["total"] == 0
        listing = await eventually(
            bob.conversations, lambda p: p["conversations"][0]["muted"] is True
        )
        assert listing["conversations"][0]["unread"] == 1
        assert listing["conversations"][0]["pinned"] is True
        await eventually(lambda: _flags(pc), lambda f: f == ({"team"}, {"team"}))
        assert pc.badges.unread("team") == 1
        assert pc.badges.total() == 0

        for ws in (tablet, watcher):
            await ws.close()
        stopping.set()
        await asyncio.gather(*tasks)
        report = await converged(settings)
        assert report.ok, report.summary()
        assert report.read_markers == 1


async def _frame(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    while True:
        frame: dict[str, Any] = await ws.receive_json(timeout=15)
        if frame["type"] == kind:
            return frame


async def _flags(client: SyncClient) -> tuple[set[str], set[str]]:
    return client.badges.muted, client.badges.pinned


async def test_a_list_of_1000_conversations_is_paged_in_order_with_exact_counts(
    settings: Settings, tmp_path: Path
) -> None:
    """1,000 conversations of bob's (made through the SDK: the gateway limits creates per
    user), a message in each, a few read, two pinned, one muted: every page in order,
    pinned first, and every count as the log says."""
    count = 1000
    async with (
        running_worker(settings),
        gateway_process(settings, tmp_path / "gw.log") as gw,
        aiohttp.ClientSession() as http,
        Producer(settings) as producer,
    ):
        bob = ApiClient(gw.url, token(gw.settings, "bob", "phone"), http)
        ids = [f"c{i:04d}" for i in range(count)]
        for start in range(0, count, 100):
            await asyncio.gather(
                *(
                    producer.create_conversation(c, "alice", ["bob"])
                    for c in ids[start : start + 100]
                )
            )
        sends = [(c, i % 3 + 1) for i, c in enumerate(ids)]  # 1 to 3 messages each, in order
        for round_ in range(3):
            await asyncio.gather(
                *(
                    producer.send_message(c, "alice", f"{c} #{round_ + 1}")
                    for c, n in sends
                    if n > round_
                )
            )
        await eventually(bob.unread, lambda u: u["conversations"] == count, within=120)
        reads = {ids[1]: 1, ids[2]: 3, ids[5]: 2}  # read some, or part of them
        await producer.publish_user_events(
            [user_event(c, "bob", "read", seq=s, device="phone") for c, s in reads.items()]
            + [user_event(c, "bob", "pinned", device="phone") for c in (ids[10], ids[20])]
            + [user_event(ids[20], "bob", "muted", device="phone")]
        )
        expected = {c: n - reads.get(c, 0) for c, n in sends}
        total = sum(n for c, n in expected.items() if c != ids[20])
        await eventually(bob.unread, lambda u: u["total"] == total, within=60)

        shown: list[dict[str, Any]] = []
        before = None
        while True:
            page = await bob.conversations(limit=150, before=before)
            shown += page["conversations"]
            before = page["next_before"]
            if before is None:
                break
        assert len(shown) == count == len({s["conversation_id"] for s in shown})
        assert [s["conversation_id"] for s in shown[:2]] == sorted(
            [ids[10], ids[20]], key=_last(shown), reverse=True
        )
        assert all(s["pinned"] for s in shown[:2])
        assert not any(s["pinned"] for s in shown[2:])
        activity = [s["activity_ts_ms"] for s in shown[2:]]
        assert activity == sorted(activity, reverse=True)
        for summary in shown:
            conv = summary["conversation_id"]
            assert summary["unread"] == expected[conv], conv
            assert summary["last_message"]["seq"] == dict(sends)[conv]
            assert summary["last_message"]["preview"] == f"{conv} #{dict(sends)[conv]}"
            assert summary["muted"] is (conv == ids[20])


def _last(shown: list[dict[str, Any]]) -> Any:
    by_id = {s["conversation_id"]: s["activity_ts_ms"] for s in shown}
    return lambda c: (by_id[c], c)


async def test_read_by_n_of_m_in_a_2000_member_group(settings: Settings, tmp_path: Path) -> None:
    members = [f"m{i:04d}" for i in range(1, 2000)]
    async with (
        running_worker(settings),
        gateway_process(settings, tmp_path / "gw.log") as gw,
        aiohttp.ClientSession() as http,
        Producer(settings) as producer,
    ):
        alice = ApiClient(gw.url, token(gw.settings, "alice", "phone"), http)
        await producer.create_conversation("crowd", "alice", members)
        for i in range(3):
            await producer.send_message("crowd", "alice", f"news {i}")
        readers = members[:1500]
        # 1,000 read everything, 500 only the first message; m1500 on is silent
        await producer.publish_user_events(
            [
                user_event("crowd", u, "read", seq=3 if n < 1000 else 1)
                for n, u in enumerate(readers)
            ]
        )
        await producer.send_message("crowd", members[-1], "me")  # seq 4: read 1-3 too
        expected = {1: 1501, 2: 1001, 3: 1001, 4: 0}

        async def receipt(seq: int) -> Any:
            try:
                return await alice.receipt("crowd", seq)
            except ApiError as exc:  # 409 until the store has the message
                return {"read": None, "status": exc.status}

        for seq, read in expected.items():
            receipt_ = await eventually(
                lambda s=seq: receipt(s), lambda r, n=read: r["read"] == n, within=90
            )
            assert (receipt_["read"], receipt_["of"]) == (read, 1999), seq
        # the sender of message 4 is not one of its readers; alice is one of its 1,999
        mine = await alice.receipt("crowd", 4)
        assert mine["of"] == 1999
