"""Supervised background tasks: a task that ends is counted and started again."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.observe import tasks
from pipeline.observe.tasks import Supervisor


async def test_a_task_that_fails_returns_or_is_cancelled_is_restarted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tasks, "FIRST_BACKOFF_S", 0.01)
    runs: list[int] = []
    started: asyncio.Queue[int] = asyncio.Queue()
    gate = asyncio.Event()
    deaths: list[str] = []

    async def flaky() -> None:
        runs.append(len(runs))
        started.put_nowait(len(runs))
        if len(runs) == 1:
            raise RuntimeError("boom")
        if len(runs) == 2:
            return
        await gate.wait()
        await asyncio.sleep(3600)

    supervisor = Supervisor("test", deaths.append)
    supervisor.start("flaky", flaky)
    while await started.get() < 3:  # the third run waits on the gate once it is in
        pass
    status = supervisor.status()["flaky"]
    assert status == {"running": True, "deaths": 2, "last_error": "returned"}
    assert deaths == ["flaky", "flaky"]
    # killed from outside (not by stop()): counted, then running again
    current = supervisor.tasks["flaky"].current
    assert current is not None
    current.cancel()
    assert await started.get() == 4
    assert supervisor.status()["flaky"]["last_error"] == "cancelled"
    assert supervisor.healthy()
    await supervisor.stop()
    assert not supervisor.status()["flaky"]["running"]
    assert len(deaths) == 3


async def test_a_dead_task_shows_until_its_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks, "FIRST_BACKOFF_S", 0.5)

    async def dies() -> None:
        raise ValueError("no")

    supervisor = Supervisor("test")
    supervisor.start("dies", dies)
    await asyncio.sleep(0.1)
    assert not supervisor.healthy()
    assert supervisor.status()["dies"]["last_error"] == "ValueError('no')"
    await supervisor.stop()
