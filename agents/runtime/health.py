"""The worker's health endpoint (aiohttp).

GET /health   200 with every agent's partitions, progress and consumer lag
GET /ready    200 once every Kafka agent holds an assignment, none is stalled (a
              partition that keeps failing, a sink that cannot write) and every
              supervised background task runs (pipeline/observe/tasks.py); else 503
              with what is missing
GET /metrics  Prometheus metrics (pipeline/observe/prometheus.py); 404 when they are off
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from pipeline.observe.prometheus import metrics_handler
from pipeline.observe.sensor import Sensor

log = logging.getLogger(__name__)

Status = Callable[[], dict[str, dict[str, Any]]]


def app(status: Status, sensor: Sensor) -> web.Application:
    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "agents": status()})

    async def ready(request: web.Request) -> web.Response:
        agents = status()
        waiting = [n for n, s in agents.items() if "partitions" in s and not s["partitions"]]
        dead = [
            f"{n}/{task}"
            for n, s in agents.items()
            for task, state in s.get("tasks", {}).items()
            if not state["running"]
        ]
        stalled = [name for name, s in agents.items() if stalled_count(s)]
        body: dict[str, Any] = {"ready": not waiting and not dead and not stalled}
        body["waiting_for_assignment"] = waiting
        if dead:
            body["tasks_down"] = dead
        if stalled:
            body["stalled"] = {name: agents[name]["stalled"] for name in stalled}
        return web.json_response(body, status=200 if body["ready"] else 503)

    application = web.Application()
    application.router.add_get("/health", health)
    application.router.add_get("/ready", ready)
    application.router.add_get("/metrics", metrics_handler(sensor))
    return application


def stalled_count(status: dict[str, Any]) -> int:
    """How much of an agent is stalled: partitions of a stage that keep failing to
    open or commit, or 1 for a sink whose writes keep failing."""
    stalled = status.get("stalled")
    if isinstance(stalled, dict):
        return len(stalled)
    return 1 if stalled else 0


async def serve(status: Status, sensor: Sensor, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app(status, sensor), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    log.warning("health endpoint on http://%s:%d/health", host, bound)
    return runner, bound
