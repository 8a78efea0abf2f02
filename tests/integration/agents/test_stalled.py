"""A partition that keeps failing to open is retried with backoff and shows as
stalled, with why, in /health, /ready and the metrics; it moves on once it can.
The failure here: the sequencer's changelog topic deleted under it. Its
transaction in flight can never complete (given up after transaction_timeout_ms)
and the partition cannot restore its state until the topic is back (empty: the
state is lost, so the next message is refused as for an unknown conversation)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import aiohttp

from agents.worker import Worker
from pipeline.log import kafka
from pipeline.log.topics import catalogue
from pipeline.sdk.producer import Producer
from pipeline.settings import Settings
from tests.support import dead_letters, eventually, running_worker


async def get(worker: Worker, path: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{worker.health_port}{path}") as response,
    ):
        body = await response.json() if path != "/metrics" else await response.text()
        return response.status, body


async def test_a_partition_that_cannot_open_shows_as_stalled(settings: Settings) -> None:
    settings = settings.replace(
        kafka=replace(settings.kafka, request_timeout_ms=5_000, transaction_timeout_ms=5_000)
    )
    changelog = catalogue(settings).sequencer_state
    async with running_worker(settings) as worker, Producer(settings) as producer:
        await eventually(lambda: _async(worker.health_port), bool, within=30, every=0.1)
        await producer.create_conversation("g", "ann", ["ben"])
        # every sequencer partition open first: one still restoring when the topic
        # goes would stall for its own reason, and the test would recreate the topic
        # before g's transaction failed (then it succeeds, and nothing is refused)
        everyone = list(range(settings.topics.conversation_partitions))
        await eventually(
            lambda: get(worker, "/health"),
            lambda r: (
                r[1]["agents"]["sequencer"]["processed"] == 1
                and r[1]["agents"]["sequencer"]["partitions"] == everyone
            ),
        )
        await kafka.delete_topics(settings, [changelog.name])
        await producer.send_message("g", "ann", "into the void")
        home = str(kafka.partition_for(b"g", settings.topics.conversation_partitions))
        status, body = await eventually(
            lambda: get(worker, "/ready"),
            lambda r: r[0] == 503 and home in r[1].get("stalled", {}).get("sequencer", {}),
            within=60,
        )
        [(partition, stall)] = body["stalled"]["sequencer"].items()
        assert partition == home
        assert stall["attempts"] >= 1
        assert stall["reason"], stall
        _, health = await get(worker, "/health")
        assert partition in health["agents"]["sequencer"]["stalled"]
        _, metrics = await get(worker, "/metrics")
        assert 'imstream_agent_stalled{agent="sequencer"} 1.0' in metrics

        await kafka.ensure_topics(settings, [changelog])
        status, _ = await eventually(
            lambda: get(worker, "/ready"), lambda r: r[0] == 200, within=60
        )
        assert status == 200
        _, health = await get(worker, "/health")
        assert health["agents"]["sequencer"]["stalled"] == {}
        [letter] = await dead_letters(settings, expected=1)
    assert "unknown conversation g" in letter.reason


async def _async(value: object) -> object:
    return value
