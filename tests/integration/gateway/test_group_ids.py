"""A group created without an id gets one nobody can guess, so that 409 ("id taken")
on create tells a prober nothing about groups whose ids the gateway picked."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp

from pipeline.settings import Settings
from tests.support import eventually, gateway_process, running_worker, token

PICKED = re.compile(r"g-[A-Za-z0-9_-]{22}")


async def test_a_group_without_an_id_gets_an_unguessable_one(
    settings: Settings, tmp_path: Path
) -> None:
    async with (
        running_worker(settings),
        gateway_process(settings, tmp_path / "gw.log") as gw,
        aiohttp.ClientSession() as http,
    ):
        alice = {"Authorization": f"Bearer {token(gw.settings, 'alice', 'phone')}"}
        ids = []
        for _ in range(2):
            async with http.post(
                gw.url + "/v1/conversations", json={"members": ["bob"]}, headers=alice
            ) as answer:
                assert answer.status == 202, await answer.text()
                ids.append((await answer.json())["conversation_id"])
        assert all(PICKED.fullmatch(i) for i in ids), ids
        assert ids[0] != ids[1]

        async def shown() -> int:
            async with http.get(f"{gw.url}/v1/conversations/{ids[0]}", headers=alice) as r:
                return r.status

        assert await eventually(shown, lambda status: status == 200, within=30) == 200
        async with http.post(
            gw.url + "/v1/conversations",
            json={"conversation_id": "", "members": ["bob"]},
            headers=alice,
        ) as answer:
            assert answer.status == 400  # an empty id is not "no id"
