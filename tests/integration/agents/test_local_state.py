"""Stages keep their state on local disk with the changelog offset it reflects: a
restart replays only the changelog past that checkpoint, and a checkpoint the
changelog no longer backs is thrown away for a full restore."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from agents.runtime.local_state import LocalState
from agents.worker import Worker
from pipeline.log.topics import catalogue
from pipeline.sdk.producer import Producer
from pipeline.settings import Settings
from tests.support import converged, eventually, read_topic, running_worker

STAGES = ["sequencer", "sync"]
AGENTS = [*STAGES, "store", "sync-store"]  # the checker reads what the sinks wrote


def _restored(worker: Worker) -> dict[str, dict[str, int]]:
    """Per stage: records read from the local store and from the changelog."""
    totals = {}
    for stage in STAGES:
        counts: dict[str, Any] = worker.agents[stage].status()["restored"]
        totals[stage] = {
            "local": sum(c["local"] for c in counts.values()),
            "changelog": sum(c["changelog"] for c in counts.values()),
        }
    return totals


async def _traffic(settings: Settings, start: int, count: int) -> list[str]:
    async with Producer(settings) as producer:
        if start == 0:
            await producer.create_conversation("room", "alice", ["alice", "bob", "carol"])
        return [
            (await producer.send_message("room", "alice", f"m{n}", client_msg_id=f"m{n}")).event_id
            for n in range(start, start + count)
        ]


async def test_a_restart_replays_only_the_changelog_past_the_checkpoint(
    settings: Settings, tmp_path: Path
) -> None:
    here = settings.replace(worker=replace(settings.worker, state_dir=str(tmp_path / "here")))
    elsewhere = settings.replace(worker=replace(settings.worker, state_dir=str(tmp_path / "there")))
    topics = catalogue(settings)
    acked = []
    async with running_worker(here, AGENTS):
        acked += await _traffic(here, 0, 30)
        assert (await converged(here, acked)).ok
    written = len(await read_topic(settings, topics.sequencer_state))
    written += len(await read_topic(settings, topics.sync_state))
    assert written > 0

    # nothing was written since: the local stores are complete
    async with running_worker(here, AGENTS) as worker:
        assert await _wait_open(worker)
        first = _restored(worker)
        acked += await _traffic(here, 30, 10)
        assert (await converged(here, acked)).ok
    assert all(first[s]["changelog"] == 0 for s in STAGES), first
    assert sum(first[s]["local"] for s in STAGES) > 0

    # another host (another state dir) moves the changelog on: only that is replayed
    before = {
        t: len(await read_topic(settings, t)) for t in (topics.sequencer_state, topics.sync_state)
    }
    async with running_worker(elsewhere, AGENTS) as other:
        assert await _wait_open(other)
        full = _restored(other)
        acked += await _traffic(here, 40, 10)
        assert (await converged(here, acked)).ok
    assert all(full[s]["local"] == 0 for s in STAGES), full
    after = {t: len(await read_topic(settings, t)) for t in before}
    async with running_worker(here, AGENTS) as worker:
        assert await _wait_open(worker)
        caught_up = _restored(worker)
        acked += await _traffic(here, 50, 5)  # sequenced on from the right state
        report = await converged(here, acked)
    assert report.ok, report.summary()
    moved = sum(after[t] - before[t] for t in before)
    assert sum(caught_up[s]["changelog"] for s in STAGES) == moved > 0, (caught_up, moved)


async def test_a_checkpoint_the_changelog_does_not_back_means_a_full_restore(
    settings: Settings, tmp_path: Path
) -> None:
    here = settings.replace(worker=replace(settings.worker, state_dir=str(tmp_path / "here")))
    async with running_worker(here, AGENTS) as worker:
        acked = await _traffic(here, 0, 20)
        assert (await converged(here, acked)).ok
        group = worker.agents["sequencer"].group_id  # type: ignore[attr-defined]
    changelog = await read_topic(settings, catalogue(settings).sequencer_state)
    # as if the broker had been wiped and the changelog rewritten: same offsets, other records
    for path in (tmp_path / "here" / "worker" / group).iterdir():
        store = LocalState(path)
        checkpoint = store.open()
        if checkpoint is not None:
            store.save([(checkpoint.key, b'"not what the changelog holds"')], checkpoint.offset)
        store.close()
    async with running_worker(here, AGENTS) as worker:
        assert await _wait_open(worker, ["sequencer"])
        restored = _restored_one(worker, "sequencer")
        acked += await _traffic(here, 20, 5)
        report = await converged(here, acked)
    assert report.ok, report.summary()
    assert restored == {"local": 0, "changelog": len(changelog)}, restored


def _restored_one(worker: Worker, stage: str) -> dict[str, int]:
    counts: dict[str, Any] = worker.agents[stage].status()["restored"]
    return {k: sum(c[k] for c in counts.values()) for k in ("local", "changelog")}


async def _wait_open(worker: Worker, stages: list[str] = STAGES) -> bool:
    """Every partition of the stages open (restored)."""
    topics = catalogue(worker.settings)
    every = {"sequencer": topics.messages.partitions, "sync": topics.sync.partitions}

    async def opened() -> bool:
        status = {s: worker.agents[s].status() for s in stages}
        return all(
            len(status[s]["partitions"]) == len(status[s]["restored"]) == every[s] for s in stages
        )

    return bool(await eventually(opened, bool, within=60))
