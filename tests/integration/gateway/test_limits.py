"""One user cannot take the gateway from the others: sends, creations and sockets
past the user's limits get 429 with Retry-After, before anything is produced,
and other users are not affected. Tried with plain HTTP and WebSocket clients."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

from pipeline.settings import Settings
from tests.support import eventually, gateway_process, running_worker, scrape, token


async def _call(
    http: aiohttp.ClientSession, method: str, url: str, bearer: str, body: Any
) -> tuple[int, dict[str, Any], str | None]:
    headers = {"Authorization": f"Bearer {bearer}"}
    async with http.request(method, url, json=body, headers=headers) as response:
        return response.status, await response.json(), response.headers.get("Retry-After")


async def test_a_user_over_a_limit_gets_429_and_the_others_do_not(
    settings: Settings, tmp_path: Path
) -> None:
    tight = settings.replace(
        gateway=replace(
            settings.gateway,
            sends_per_s=0.2,
            send_burst=3,
            creates_per_min=1,
            create_burst=2,
            max_sockets_per_user=2,
            max_sockets_per_device=1,
            max_pull_bytes=10,
            marks_per_s=0.2,
            mark_burst=2,
        )
    )
    async with (
        running_worker(tight),
        gateway_process(tight, tmp_path / "gw.log") as gw,
        aiohttp.ClientSession() as http,
    ):
        alice, bob = token(gw.settings, "alice", "phone"), token(gw.settings, "bob", "phone")
        url = gw.url + "/v1"

        # creations: a burst of 2, then one a minute
        for name in ("c1", "c2"):
            status, _, _ = await _call(
                http,
                "POST",
                url + "/conversations",
                alice,
                {"conversation_id": name, "members": ["bob"]},
            )
            assert status == 202
        status, body, retry = await _call(
            http,
            "POST",
            url + "/conversations",
            alice,
            {"conversation_id": "c3", "members": ["bob"]},
        )
        assert (status, body["error"]) == (429, "rate_limited")
        assert "too many conversations created or members added" in body["reason"]
        assert retry is not None
        assert 1 <= int(retry) <= 60
        status, _, _ = await _call(http, "POST", url + "/direct", alice, {"peer": "carol"})
        assert status == 429  # the same bucket

        async def created() -> int:
            async with http.get(
                url + "/conversations/c1", headers={"Authorization": f"Bearer {alice}"}
            ) as response:
                return response.status

        await eventually(created, lambda status: status == 200, within=60)

        # sends: a burst of 3, then one each 5 s; bob's own bucket is untouched
        sends = url + "/conversations/c1/messages"
        for n in range(3):
            status, _, _ = await _call(http, "POST", sends, alice, {"body": f"hi {n}"})
            assert status == 202
        status, body, retry = await _call(http, "POST", sends, alice, {"body": "one more"})
        assert (status, retry) == (429, "5")
        assert "too many sends: at most 3 at once, then 12 per minute" in body["reason"]
        status, body, _ = await _call(http, "POST", sends, bob, {"body": "bob is fine"})
        assert status == 202, body

        # a pull page ends once its bodies pass 10 bytes; pulling on from its cursor
        # gives the rest: bob's two creations, "hi 0".."hi 2" and "bob is fine"
        async def pull(after: int) -> dict[str, Any]:
            status, page, _ = await _call(http, "GET", url + f"/sync?after={after}", bob, None)
            assert status == 200, page
            return page

        await eventually(lambda: pull(0), lambda page: page["head"] >= 6, within=60)
        pages, cursor = [], 0
        while not pages or not pages[-1]["caught_up"]:
            pages.append(await pull(cursor))
            cursor = pages[-1]["cursor"]
        bodies = [[e["body"] for e in page["entries"]] for page in pages]
        assert len(pages) >= 3, bodies
        for page in bodies:
            assert len(page) == 1 or sum(len(b) for b in page) <= 10, bodies
        everything = [e for page in pages for e in page["entries"]]
        assert [e["sync_seq"] for e in everything] == list(range(1, 7))
        assert sorted(b for page in bodies for b in page) == sorted(
            ["", "", "hi 0", "hi 1", "hi 2", "bob is fine"]
        )

        # read markers (mutes and pins too): a burst of 2, then one each 5 s
        reads = url + "/conversations/c1/read"
        for seq in (1, 2):
            status, body, _ = await _call(http, "PUT", reads, bob, {"seq": seq})
            assert status == 202, body
        status, body, retry = await _call(http, "PUT", reads, bob, {"seq": 3})
        assert (status, retry) == (429, "5")
        assert "too many read markers, mutes and pins" in body["reason"]
        status, _, _ = await _call(
            http, "PUT", url + "/conversations/c1/settings", bob, {"muted": True}
        )
        assert status == 429  # the same bucket

        # sockets: one per device, two per user
        stream = gw.url + "/v1/stream"
        first = await http.ws_connect(stream, params={"token": alice})
        try:
            async with http.get(stream, params={"token": alice}) as refused:
                assert refused.status == 429
                assert "device phone has 1 sockets open" in (await refused.json())["reason"]
            laptop = await http.ws_connect(
                stream, params={"token": token(gw.settings, "alice", "laptop")}
            )
            async with http.get(
                stream, params={"token": token(gw.settings, "alice", "tablet")}
            ) as refused:
                assert refused.status == 429
                assert "user alice has 2 sockets open" in (await refused.json())["reason"]
            bobs = await http.ws_connect(stream, params={"token": bob})
            assert (await bobs.receive_json(timeout=10))["type"] == "hello"
            await bobs.close()
            await laptop.close()
        finally:
            await first.close()
        # each refusal counted by its limit (/metrics)
        refused = (await scrape(gw.url)).by("imstream_gateway_limited_total", "limit")
        assert refused == {
            "creates_per_min": 2,
            "marks_per_s": 2,
            "sends_per_s": 1,
            "sockets_per_device": 1,
            "sockets_per_user": 1,
        }


async def test_a_send_costs_its_groups_members_against_the_fanout_budget(
    settings: Settings, tmp_path: Path
) -> None:
    """One user flooding a big group would take the fan-out from everyone: a send
    costs one sync entry per member, out of the user's own budget."""
    tight = settings.replace(gateway=replace(settings.gateway, fanout_per_s=1, fanout_burst=10))
    async with (
        running_worker(tight),
        gateway_process(tight, tmp_path / "gw.log") as gw,
        aiohttp.ClientSession() as http,
    ):
        alice, bob = token(gw.settings, "alice", "phone"), token(gw.settings, "bob", "phone")
        url = gw.url + "/v1"
        members = ["bob", "carol", "dave", "erin"]  # with alice: 5 entries a message
        body = {"conversation_id": "big", "members": members}
        assert (await _call(http, "POST", url + "/conversations", alice, body))[0] == 202

        async def created() -> int:
            return (await _call(http, "GET", url + "/conversations/big", alice, None))[0]

        await eventually(created, lambda status: status == 200, within=60)
        sends = url + "/conversations/big/messages"
        for n in range(2):  # 2 x 5 = the burst of 10
            status, _, _ = await _call(http, "POST", sends, alice, {"body": f"hi {n}"})
            assert status == 202
        status, body, retry = await _call(http, "POST", sends, alice, {"body": "one more"})
        assert status == 429
        assert "too many sync entries (each send costs its group's members)" in body["reason"]
        assert retry == "5"  # 5 entries at 1 a second
        status, _, _ = await _call(http, "POST", sends, bob, {"body": "bob is fine"})
        assert status == 202


async def test_a_pull_spends_its_byte_budget_on_large_groups_too(
    settings: Settings, tmp_path: Path
) -> None:
    """A large group's page (read diffusion) counts against the same budget as the
    sync page: whole messages, at least one, and the device pulls on from there."""
    tight = settings.replace(
        gateway=replace(settings.gateway, max_pull_bytes=25),
        pipeline=replace(settings.pipeline, read_diffusion_threshold=2),
    )
    async with (
        running_worker(tight),
        gateway_process(tight, tmp_path / "gw.log") as gw,
        aiohttp.ClientSession() as http,
    ):
        alice, bob = token(gw.settings, "alice", "phone"), token(gw.settings, "bob", "phone")
        url = gw.url + "/v1"
        body = {"conversation_id": "big", "members": ["bob", "carol"]}  # 3 > 2: large
        assert (await _call(http, "POST", url + "/conversations", alice, body))[0] == 202

        async def created() -> int:
            return (await _call(http, "GET", url + "/conversations/big", alice, None))[0]

        await eventually(created, lambda status: status == 200, within=60)
        sends = url + "/conversations/big/messages"
        for n in range(5):  # 10 bytes each
            status, _, _ = await _call(http, "POST", sends, alice, {"body": f"message {n}"})
            assert status == 202

        async def pull(seq: int) -> dict[str, Any]:
            path = f"/sync?after=1&groups=big:{seq}"  # past bob's entry for the creation
            status, page, _ = await _call(http, "GET", url + path, bob, None)
            assert status == 200, page
            return page

        first = await eventually(
            lambda: pull(0), lambda page: page["groups"] and page["groups"][0]["head"] >= 5
        )
        read: list[str] = []
        page = first
        while True:
            (group,) = page["groups"]
            bodies = [m["body"] for m in group["messages"]]
            assert 1 <= len(bodies) <= 2, bodies  # 25 bytes: two of 10, never a third
            read += bodies
            if page["caught_up"]:
                break
            page = await pull(group["after"] + len(bodies))
        assert read == [f"message {n}" for n in range(5)]
