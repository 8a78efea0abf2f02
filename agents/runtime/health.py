"""The worker's health endpoint (aiohttp).

GET /health   200 with every agent's partitions, progress and consumer lag
GET /ready    200 once every Kafka agent holds an assignment and every supervised
              background task runs (pipeline/observe/tasks.py), else 503
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
        body: dict[str, Any] = {"ready": not waiting and not dead}
        body["waiting_for_assignment"] = waiting
        if dead:
            body["tasks_down"] = dead
        return web.json_response(body, status=200 if body["ready"] else 503)

    application = web.Application()
    application.router.add_get("/health", health)
    application.router.add_get("/ready", ready)
    application.router.add_get("/metrics", metrics_handler(sensor))
    return application


async def serve(status: Status, sensor: Sensor, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app(status, sensor), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    log.warning("health endpoint on http://%s:%d/health", host, bound)
    return runner, bound
