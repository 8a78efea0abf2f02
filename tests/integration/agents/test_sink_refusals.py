"""A sink that ClickHouse refuses (not a lost connection: here its table is gone)
retries with backoff and says why in /health, while the Kafka stages and push go
on; once the table is back it catches up and the checker is clean."""

from __future__ import annotations

from typing import Any

import aiohttp

from agents.worker import Worker
from pipeline.log.topics import catalogue
from pipeline.sdk.producer import Producer
from pipeline.settings import Settings
from pipeline.store import clickhouse
from tests.support import converged, eventually, read_topic, running_worker


async def health(worker: Worker) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{worker.health_port}/health") as response,
    ):
        agents: dict[str, Any] = (await response.json())["agents"]
        return agents


def rename(settings: Settings, table: str, to: str) -> None:
    db = settings.clickhouse.database
    conn = clickhouse.client(settings)
    try:
        conn.execute(f"RENAME TABLE `{db}`.`{table}` TO `{db}`.`{to}`")
    finally:
        conn.disconnect()


async def test_a_refused_sink_retries_while_the_other_agents_flow(settings: Settings) -> None:
    inbox = catalogue(settings).inbox
    acked = []
    async with running_worker(settings) as worker, Producer(settings) as producer:
        await eventually(lambda: _async(worker.health_port), bool, within=30, every=0.1)
        await producer.create_conversation("g", "ann", ["ben"])
        for i in range(5):
            acked.append((await producer.send_message("g", "ann", f"before {i}")).event_id)
        await eventually(lambda: health(worker), lambda a: a["store"]["written"] >= 6)
        rename(settings, "messages", "messages_away")
        try:
            for i in range(20):
                acked.append((await producer.send_message("g", "ann", f"during {i}")).event_id)
            # the sync stage and the sync store go on: every delivery reaches im.inbox
            entries = await eventually(
                lambda: read_topic(settings, inbox), lambda r: len(r) >= 2 + 2 * 25, within=60
            )
            assert len(entries) == 2 + 2 * 25
            agents = await eventually(
                lambda: health(worker), lambda a: a["store"]["stalled"] is not None, within=30
            )
            assert "messages" in agents["store"]["stalled"], agents["store"]
            assert agents["store"]["lag"] > 0
            assert agents["sequencer"]["processed"] == 26
            agents = await eventually(
                lambda: health(worker), lambda a: a["sync-store"]["written"] == 52, within=60
            )
            assert agents["sync-store"]["written"] == 52
            assert agents["sync-store"]["stalled"] is None
        finally:
            rename(settings, "messages_away", "messages")
        agents = await eventually(
            lambda: health(worker),
            lambda a: a["store"]["stalled"] is None and a["store"]["lag"] == 0,
            within=90,
        )
        assert agents["store"]["stalled"] is None
    report = await converged(settings, acked)
    assert report.ok, report.summary()
    assert report.messages == 25


async def _async(value: object) -> object:
    return value
