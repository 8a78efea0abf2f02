"""Static membership (``IMSTREAM_WORKER_INSTANCE_ID``): a worker restarted in a
rolling deploy gets its own partitions back, and the other worker's stay put (no
rebalance: nothing is revoked, nothing restored)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import aiohttp

from pipeline.log.topics import catalogue
from pipeline.settings import Settings
from tests.support import eventually, worker_process

STAGES = ("sequencer", "sync")


async def _partitions(url: str) -> dict[str, list[int]]:
    async with aiohttp.ClientSession() as http, http.get(url + "/health") as response:
        agents = (await response.json())["agents"]
    return {stage: sorted(agents[stage]["partitions"]) for stage in STAGES}


def _opened(log: Path) -> int:
    return log.read_text().count(" opened TopicPartition(")


async def test_a_restarted_worker_gets_its_partitions_back_and_the_other_keeps_its_own(
    settings: Settings, tmp_path: Path
) -> None:
    named = {n: settings.replace(worker=replace(settings.worker, instance_id=n)) for n in "ab"}
    every = {
        "sequencer": list(range(catalogue(settings).messages.partitions)),
        "sync": list(range(catalogue(settings).sync.partitions)),
    }

    def split(a: dict[str, list[int]], b: dict[str, list[int]]) -> bool:
        return all(a[s] and b[s] and sorted(a[s] + b[s]) == every[s] for s in STAGES)

    a_log = tmp_path / "a.log"
    async with worker_process(named["a"], a_log) as a:
        async with worker_process(named["b"], tmp_path / "b.0.log") as b:
            settled = await eventually(
                lambda: _both(a.url, b.url), lambda both: split(*both), within=60
            )
            assert split(*settled), settled
            mine, theirs = settled
            opened = await eventually(  # every partition of a is open (restored)
                lambda: _count(a_log), lambda n: n >= sum(len(p) for p in mine.values()), within=30
            )
        # b stopped: a static member does not leave its groups, so nothing moves to a
        async with worker_process(named["b"], tmp_path / "b.1.log") as b:
            back = await eventually(lambda: _partitions(b.url), lambda p: p == theirs, within=60)
            assert back == theirs
            assert await _partitions(a.url) == mine
        assert _opened(a_log) == opened, "a opened partitions: there was a rebalance"


async def _both(a: str, b: str) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    return await _partitions(a), await _partitions(b)


async def _count(log: Path) -> int:
    return _opened(log)
