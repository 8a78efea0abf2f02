"""What a member reads of the time before they joined: history pages and large
groups' pages agree, under either PIPELINE_HISTORY_BEFORE_JOIN (two gateways on
one worker, one per setting, asked over plain HTTP)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

from pipeline.sdk.producer import Producer
from pipeline.settings import Settings
from tests.support import eventually, gateway_process, running_worker, token


def policy(settings: Settings, value: str) -> Settings:
    return settings.replace(pipeline=replace(settings.pipeline, history_before_join=value))


async def test_history_and_large_group_pages_show_the_same_messages(
    settings: Settings, tmp_path: Path
) -> None:
    # a group with more than 3 members is read diffused
    settings = settings.replace(pipeline=replace(settings.pipeline, read_diffusion_threshold=3))
    async with (
        running_worker(settings),
        Producer(settings) as producer,
        gateway_process(policy(settings, "hidden"), tmp_path / "hidden.log") as hidden,
        gateway_process(policy(settings, "visible"), tmp_path / "visible.log") as visible,
        aiohttp.ClientSession() as http,
    ):

        async def get(gw: Any, path: str) -> Any:
            headers = {"Authorization": f"Bearer {token(gw.settings, 'dave', 'phone')}"}
            async with http.get(gw.url + path, headers=headers) as answer:
                if answer.status == 403:  # the join is not stored yet
                    return None
                assert answer.status == 200, await answer.text()
                return await answer.json()

        async def history(gw: Any, conv: str) -> list[int] | None:
            page = await get(gw, f"/v1/conversations/{conv}/messages?limit=50")
            return None if page is None else sorted(m["seq"] for m in page["messages"])

        async def group_page(gw: Any) -> list[int]:
            page = await get(gw, "/v1/sync?after=0")
            return [m["seq"] for g in page["groups"] for m in g["messages"]]

        await producer.create_conversation("small", "alice", ["bob"])
        await producer.create_conversation("large", "alice", ["bob", "carol", "erin"])
        for conv in ("small", "large"):
            for i in range(3):
                await producer.send_message(conv, "alice", f"before {i}")
            await producer.join(conv, "alice", "dave")
            for i in range(2):
                await producer.send_message(conv, "alice", f"after {i}")

        want = [4, 5]  # what was sent while dave was a member
        got = await eventually(lambda: history(hidden, "large"), lambda s: s == want, within=30)
        assert got == want
        assert await eventually(lambda: group_page(hidden), lambda s: s == want) == want
        assert await eventually(lambda: history(hidden, "small"), lambda s: s == want) == want

        everything = [1, 2, 3, 4, 5]
        assert await history(visible, "large") == everything
        assert await group_page(visible) == everything
        assert await history(visible, "small") == everything

        # after a leave and a return, the time away is not theirs either (hidden)
        await producer.leave("small", "dave", "dave")
        await producer.send_message("small", "alice", "while away")
        await producer.join("small", "alice", "dave")
        await producer.send_message("small", "alice", "back")
        back = [4, 5, 7]
        assert await eventually(lambda: history(hidden, "small"), lambda s: s == back) == back
        assert await history(visible, "small") == [1, 2, 3, 4, 5, 7]
