"""Supervised background tasks: a task that dies is logged, counted and restarted.

A background task (a follower, a receiver, a publisher) is meant to run as long
as its process. If it ends, whether by an exception, by returning, or by being
cancelled by anything but :meth:`Supervisor.stop`, the supervisor logs it,
counts it, and starts it again after a backoff with jitter (0.2 s doubling up to
30 s, reset once it has run for a minute). :meth:`Supervisor.status` says, for
each task, whether it is running now, how often it died and why the last time:
what ``/ready`` and ``/health`` report.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.2
MAX_BACKOFF_S = 30.0
STEADY_S = 60.0  # a run this long resets the backoff


@dataclass(slots=True)
class _Supervised:
    name: str
    factory: Callable[[], Awaitable[None]]
    current: asyncio.Task[None] | None = None
    deaths: int = 0
    last_error: str | None = None

    @property
    def running(self) -> bool:
        return self.current is not None and not self.current.done()


class Supervisor:
    def __init__(self, owner: str, on_death: Callable[[str], None] | None = None) -> None:
        self.owner = owner
        self.on_death = on_death or (lambda name: None)
        self.tasks: dict[str, _Supervised] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False

    def start(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        supervised = self.tasks[name] = _Supervised(name, factory)
        self._loops.append(asyncio.create_task(self._keep(supervised), name=f"supervise:{name}"))

    async def stop(self) -> None:
        self._stopping = True
        for loop in self._loops:
            loop.cancel()
        for supervised in self.tasks.values():
            if supervised.current is not None:
                supervised.current.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)

    def healthy(self) -> bool:
        return all(t.running for t in self.tasks.values())

    def status(self) -> dict[str, dict[str, Any]]:
        return {
            t.name: {"running": t.running, "deaths": t.deaths, "last_error": t.last_error}
            for t in self.tasks.values()
        }

    async def _keep(self, supervised: _Supervised) -> None:
        backoff = FIRST_BACKOFF_S
        while not self._stopping:
            started = time.monotonic()
            task = supervised.current = asyncio.create_task(
                _run(supervised.factory), name=f"{self.owner}:{supervised.name}"
            )
            try:
                await asyncio.shield(task)
                why = "returned"  # background tasks never end on their own
            except asyncio.CancelledError:
                if self._stopping:
                    raise
                if not task.done():  # the supervisor itself was cancelled
                    task.cancel()
                    raise
                why = "cancelled"
            except Exception as exc:  # noqa: BLE001 (anything: it is restarted)
                why = repr(exc)
            supervised.deaths += 1
            supervised.last_error = why
            self.on_death(supervised.name)
            if time.monotonic() - started > STEADY_S:
                backoff = FIRST_BACKOFF_S
            log.error(
                "%s: background task %s ended (%s); restarting in %.1fs",
                self.owner,
                supervised.name,
                why,
                backoff,
            )
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))  # noqa: S311
            backoff = min(backoff * 2, MAX_BACKOFF_S)


async def _run(factory: Callable[[], Awaitable[None]]) -> None:
    await factory()
