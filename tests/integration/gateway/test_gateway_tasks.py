"""The gateway's background tasks are supervised, and /ready says when one is down."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from pipeline.gateway.app import Gateway
from pipeline.observe import tasks
from pipeline.settings import Settings
from tests.support import eventually


async def get(http: aiohttp.ClientSession, server: TestServer, path: str) -> tuple[int, Any]:
    async with http.get(server.make_url(path)) as response:
        return response.status, await response.json()


async def test_a_killed_task_shows_in_ready_and_is_restarted(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a window to see it down: the restart comes 8-12 s later (backoff with jitter)
    monkeypatch.setattr(tasks, "FIRST_BACKOFF_S", 10.0)
    gateway = Gateway(settings)
    server = TestServer(gateway.app())
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            ready = await eventually(lambda: get(http, server, "/ready"), lambda r: r[0] == 200)
            assert ready == (200, {"ready": True, "waiting_for": []})
            push = gateway.tasks.tasks["push"].current
            assert push is not None
            push.cancel()  # as if the push receiver had died
            status, body = await eventually(
                lambda: get(http, server, "/ready"), lambda r: r[0] == 503, within=2
            )
            assert (status, body) == (503, {"ready": False, "waiting_for": ["task push"]})
            _, health = await get(http, server, "/health")
            assert health["tasks"]["push"] == {
                "running": False,
                "deaths": 1,
                "last_error": "cancelled",
            }
            assert health["roster"]["loaded"]
            status, _ = await eventually(
                lambda: get(http, server, "/ready"), lambda r: r[0] == 200, within=20
            )
            assert status == 200
            _, health = await get(http, server, "/health")
            assert health["tasks"]["push"]["running"]
            assert health["tasks"]["push"]["deaths"] == 1
            metrics = await (await http.get(server.make_url("/metrics"))).text()
            assert 'imstream_task_deaths_total{task="push"} 1.0' in metrics
    finally:
        await server.close()
