"""Large groups through the gateway: members online get their messages pushed,
a dropped push is pulled, only members ever get them, and cursors are theirs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from pipeline.sdk.client import ApiClient, ApiError, SyncClient
from pipeline.sdk.producer import Producer
from pipeline.settings import Settings
from tests.integration.gateway.test_gateway import PUSH_BOUND_S, _async, _member, start, token
from tests.integration.read.test_read_diffusion import USERS, script, small_threshold
from tests.support import converged, eventually, gateway_process, running_worker

MEMBERS = ["bob", "carol", "dave", "erin", "frank", "gina"]  # with alice: 7 > 5


def seqs(client: SyncClient, conv: str = "big") -> list[int]:
    return [m["seq"] for m in client.group_entries.get(conv, [])]


def synced_messages(client: SyncClient, conv: str = "big") -> list[int]:
    return [
        e["seq"] for e in client.entries if e["conversation_id"] == conv and e["kind"] == "message"
    ]


async def test_online_members_get_large_group_messages_pushed(
    settings: Settings, tmp_path: Path
) -> None:
    settings = small_threshold(settings)
    async with (
        running_worker(settings) as worker,
        gateway_process(settings, tmp_path / "gw.log") as gw,
        aiohttp.ClientSession() as http,
    ):
        alice = ApiClient(gw.url, token(gw.settings, "alice", "phone"), http)
        await alice.create_group("big", MEMBERS)  # large from its creation
        await eventually(lambda: _member(alice, "big"), bool, within=30)
        await eventually(
            lambda: _async(bool(worker.agents["push"].status()["broadcast_partitions"])), bool
        )
        stopping = asyncio.Event()
        bob = SyncClient(gw.url, token(gw.settings, "bob", "phone"), "phone")
        lossy = SyncClient(
            gw.url,
            token(gw.settings, "carol", "phone"),
            "phone",
            push_filter=lambda m: "sync_seq" in m or m["seq"] % 3 != 0,  # drop every 3rd group push
        )
        zed = SyncClient(gw.url, token(gw.settings, "zed", "phone"), "phone")  # not a member
        tasks = [await start(c, stopping) for c in (bob, lossy, zed)]
        await asyncio.sleep(1.0)  # presence reaches the push agent
        pulls_before = lossy.pulls
        latencies = []
        for i in range(1, 21):
            sent = time.monotonic()
            await alice.send("big", f"m{i}")
            await eventually(
                lambda n=i: _async(seqs(bob)[-1:] == [n]),  # type: ignore[misc]
                bool,
                within=PUSH_BOUND_S,
                every=0.005,
            )
            latencies.append(time.monotonic() - sent)
        await eventually(lambda: _async(seqs(lossy) == list(range(1, 21))), bool, within=30)
        stopping.set()
        await asyncio.gather(*tasks)

        assert max(latencies) < PUSH_BOUND_S, latencies
        assert seqs(bob) == list(range(1, 21))  # in order, once each
        assert bob.pushed_applied >= 15, bob.pushed_applied  # by push, not by pull
        assert synced_messages(bob) == []  # none of them in the sync timeline
        assert [e["kind"] for e in bob.entries] == ["created"]
        assert bob.entries[0]["large"] is True
        assert seqs(lossy) == list(range(1, 21))  # the dropped ones were pulled
        assert lossy.pulls > pulls_before
        assert zed.group_entries == {}
        assert zed.entries == []

        cursors = await eventually(
            lambda: ApiClient(gw.url, bob.token, http).call("GET", "/v1/devices"),
            lambda body: body["groups"] == {"phone": {"big": 20}},
            within=10,
        )
        assert cursors["groups"] == {"phone": {"big": 20}}
        with pytest.raises(ApiError) as refused:
            await ApiClient(gw.url, zed.token, http).ack("phone", 0, {"big": 5})
        assert refused.value.status == 403
        page = await ApiClient(gw.url, bob.token, http).pull(0, 3, groups="big:15")
        (group,) = page["groups"]
        assert (group["after"], [m["seq"] for m in group["messages"]]) == (15, [16, 17, 18])
        assert (group["head"], page["caught_up"]) == (20, False)
        assert [m["body"] for m in group["messages"]] == ["m16", "m17", "m18"]
        for user, want in (("dave", None), ("zed", "not a member of large group")):
            async with http.ws_connect(
                gw.url + "/v1/stream", params={"token": token(gw.settings, user, "watch")}
            ) as ws:
                assert (await ws.receive_json(timeout=10))["type"] == "hello"
                await ws.send_json({"type": "ack", "cursor": 0, "groups": {"big": 7}})
                if want is not None:
                    frame = await ws.receive_json(timeout=10)
                    assert frame["type"] == "error", frame
                    assert want in frame["reason"], frame
        dave = ApiClient(gw.url, token(gw.settings, "dave", "watch"), http)
        await eventually(
            lambda: dave.call("GET", "/v1/devices"),
            lambda body: body["groups"] == {"watch": {"big": 7}},
            within=10,
        )
        spec = await (await http.get(gw.url + "/openapi.json")).json()
        schemas = spec["components"]["schemas"]
        pulled = spec["paths"]["/v1/sync"]["get"]["responses"]["200"]["content"]
        assert set(page) == set(pulled["application/json"]["schema"]["properties"])
        assert set(group) <= set(schemas["GroupPage"]["properties"])
        assert set(group["messages"][0]) <= set(schemas["Message"]["properties"])


async def test_pushes_follow_membership_a_joiner_starts_a_leaver_stops(
    settings: Settings, tmp_path: Path
) -> None:
    settings = small_threshold(settings)
    async with (
        running_worker(settings) as worker,
        gateway_process(settings, tmp_path / "gw.log") as gw,
        aiohttp.ClientSession() as http,
    ):
        alice = ApiClient(gw.url, token(gw.settings, "alice", "phone"), http)
        await alice.create_group("big", MEMBERS)
        await eventually(lambda: _member(alice, "big"), bool, within=30)
        await eventually(
            lambda: _async(bool(worker.agents["push"].status()["broadcast_partitions"])), bool
        )
        stopping = asyncio.Event()
        bob = SyncClient(gw.url, token(gw.settings, "bob", "phone"), "phone")
        henry = SyncClient(gw.url, token(gw.settings, "henry", "phone"), "phone")
        tasks = [await start(c, stopping) for c in (bob, henry)]
        await asyncio.sleep(1.0)
        for i in range(1, 6):
            await alice.send("big", f"m{i}")
        await eventually(lambda: _async(seqs(bob) == [1, 2, 3, 4, 5]), bool, within=30)
        await alice.join("big", "henry")  # henry reads after seq 5
        await alice.leave("big", "bob")  # bob reads up to seq 5
        await eventually(lambda: _async(len(henry.entries) == 1), bool, within=30)
        pushed_to_bob = bob.pushed_applied
        for i in range(6, 11):
            await alice.send("big", f"m{i}")
        await eventually(lambda: _async(seqs(henry) == [6, 7, 8, 9, 10]), bool, within=30)
        await asyncio.sleep(1.0)  # time for anything wrongly pushed to bob to arrive
        stopping.set()
        await asyncio.gather(*tasks)
    assert henry.pushed_applied >= 3  # live from his join on
    assert seqs(bob) == [1, 2, 3, 4, 5]
    assert bob.pushed_applied == pushed_to_bob
    assert [(e["kind"], e["subject_id"], e["seq"]) for e in bob.entries][-1] == ("left", "bob", 5)
    assert [(e["kind"], e["seq"], e["large"]) for e in henry.entries] == [("joined", 5, True)]


async def test_a_device_syncing_from_zero_gets_exactly_what_its_user_should_see(
    settings: Settings, tmp_path: Path
) -> None:
    """The group grows past the threshold in the middle of traffic (see
    test_read_diffusion.script); each user's new device starts from cursor 0."""
    settings = small_threshold(settings)
    s = script()
    async with (
        running_worker(settings),
        gateway_process(settings, tmp_path / "gw.log") as gw,
        aiohttp.ClientSession() as http,
    ):
        async with Producer(settings) as producer:
            await producer.create_conversation("big", "alice", ["bob", "carol"])
            await producer.create_conversation("team", "alice", ["bob"])
            await producer.publish_many(s.commands)
        report = await converged(settings)
        assert report.ok, report.summary()
        alice = ApiClient(gw.url, token(gw.settings, "alice", "probe"), http)
        await eventually(
            lambda: alice.pull(0, 1, groups="big:19"), lambda p: p["groups"][0]["head"] == 20
        )
        for user in USERS:
            stopping = asyncio.Event()
            tablet = SyncClient(gw.url, token(gw.settings, user, "tablet"), "tablet", page=7)
            task = await start(tablet, stopping)  # connected: caught up by pull
            stopping.set()
            await task
            got = synced_messages(tablet) + seqs(tablet)
            assert got == s.owed[user]["big"], user  # in order, once each, nothing else
            assert synced_messages(tablet, "team") == s.owed[user]["team"], user
            assert set(tablet.group_entries) <= {"big"}


async def test_members_online_at_the_switch_get_what_follows_it(
    settings: Settings, tmp_path: Path
) -> None:
    """Their gateway learns they are members of the now large group from their sync
    entry of the switch, which trails the broadcast: what it could not push to them
    meanwhile they pull, told to by the gateway, even if nothing follows."""
    settings = small_threshold(settings)
    async with (
        running_worker(settings) as worker,
        gateway_process(settings, tmp_path / "gw.log") as gw,
        aiohttp.ClientSession() as http,
    ):
        alice = ApiClient(gw.url, token(gw.settings, "alice", "phone"), http)
        await alice.create_group("big", MEMBERS[:4])  # 5 members: not large yet
        await eventually(lambda: _member(alice, "big"), bool, within=30)
        await eventually(
            lambda: _async(bool(worker.agents["push"].status()["broadcast_partitions"])), bool
        )
        stopping = asyncio.Event()
        devices = [
            SyncClient(gw.url, token(gw.settings, user, "phone"), "phone")
            for user in ("bob", "carol", "dave")
        ]
        tasks = [await start(device, stopping) for device in devices]
        await asyncio.sleep(1.0)
        await alice.send("big", "before")  # seq 1, in every sync timeline
        await alice.join("big", "frank")  # 6 > 5: the switch, after seq 1
        await alice.send("big", "right after")  # seq 2, and then nothing
        for device in devices:
            await eventually(lambda d=device: _async(seqs(d) == [2]), bool, within=15)  # type: ignore[misc]
        stopping.set()
        await asyncio.gather(*tasks)
    for device in devices:
        assert synced_messages(device) == [1]
        assert seqs(device) == [2]
