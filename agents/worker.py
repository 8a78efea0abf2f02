"""The worker process: runs the pipeline's agents until SIGTERM / SIGINT.

    imstream worker                       every agent
    imstream worker --agents store,sync   a subset (scale a stage on its own)

Several workers share the work through Kafka consumer groups (one group per
agent). On SIGTERM each agent finishes its batch, commits and leaves its
group; a worker killed outright loses nothing either (see agents/runtime/transactional.py
and agents/runtime/sink.py). If one agent fails, the worker stops the others and exits
non-zero, so a supervisor restarts it whole.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from agents import sequencer, store, sync, sync_store
from agents.push import PushAgent
from agents.runtime import health
from agents.runtime.transactional import TransactionalStage
from pipeline.errors import ConfigError
from pipeline.log import kafka
from pipeline.log.topics import catalogue
from pipeline.observe.prometheus import sensor_for
from pipeline.observe.sensor import Sensor
from pipeline.settings import Settings
from pipeline.store import schema

log = logging.getLogger(__name__)

SHUTDOWN_S = 20.0
AGENTS = ("sequencer", "sync", "store", "sync-store", "retention", "push")


class Agent(Protocol):
    async def run(self, stopping: asyncio.Event) -> None: ...

    def status(self) -> dict[str, Any]: ...


def build(settings: Settings, name: str, sensor: Sensor | None = None) -> Agent:
    topics = catalogue(settings)
    sensor = sensor or Sensor()
    factories: dict[str, Callable[[], Agent]] = {
        "sequencer": lambda: TransactionalStage(
            settings, sequencer.stage(settings, topics, sensor), sensor
        ),
        "sync": lambda: TransactionalStage(settings, sync.stage(settings, topics), sensor),
        "store": lambda: store.sink(settings, topics, sensor),
        "sync-store": lambda: sync_store.sink(settings, topics, sensor),
        "retention": lambda: sync_store.Retention(settings),
        "push": lambda: PushAgent(settings, sensor),
    }
    if name not in factories:
        raise ConfigError(f"unknown agent {name!r}; known: {', '.join(AGENTS)}")
    return factories[name]()


@dataclass
class Worker:
    settings: Settings
    names: Sequence[str] = AGENTS
    agents: dict[str, Agent] = field(default_factory=dict)
    health_port: int | None = None
    sensor: Sensor = field(init=False)

    def __post_init__(self) -> None:
        self.sensor = sensor_for("worker", self.settings.metrics.enabled)
        self.agents = {name: build(self.settings, name, self.sensor) for name in self.names}
        self.sensor.watch(
            "imstream_lag_records",
            "Committed input records an agent has not processed yet",
            self._lags,
        )
        self.sensor.watch(
            "imstream_agent_partitions", "Input partitions assigned to an agent", self._assigned
        )
        self.sensor.watch(
            "imstream_agent_stalled",
            "Partitions of an agent that keep failing (1 for a sink that cannot write)",
            self._stalled,
        )

    def _lags(self) -> Iterator[tuple[dict[str, str], float]]:
        for name, agent in self.agents.items():
            lags = getattr(agent, "partition_lag", None)
            for partition, lag in (lags() if lags else {}).items():
                yield {"agent": name, "partition": str(partition)}, float(lag)

    def _assigned(self) -> Iterator[tuple[dict[str, str], float]]:
        for name, status in self.status().items():
            if "partitions" in status:
                yield {"agent": name}, float(len(status["partitions"]))

    def _stalled(self) -> Iterator[tuple[dict[str, str], float]]:
        for name, status in self.status().items():
            if "stalled" in status:
                yield {"agent": name}, float(health.stalled_count(status))

    def status(self) -> dict[str, dict[str, Any]]:
        return {name: agent.status() for name, agent in self.agents.items()}

    async def bootstrap(self) -> None:
        """Create missing topics and apply pending migrations (both idempotent)."""
        await kafka.ensure_topics(self.settings, catalogue(self.settings).all())
        await asyncio.to_thread(schema.migrate, self.settings)

    async def run(self, stopping: asyncio.Event) -> None:
        await self.bootstrap()
        runner = None
        if self.settings.worker.health_port >= 0:
            runner, self.health_port = await health.serve(
                self.status,
                self.sensor,
                self.settings.worker.health_host,
                self.settings.worker.health_port,
            )
        tasks = {
            asyncio.create_task(agent.run(stopping), name=name): name
            for name, agent in self.agents.items()
        }
        log.info("worker running: %s", ", ".join(self.agents))
        stop_task = asyncio.create_task(stopping.wait())
        try:
            await asyncio.wait([*tasks, stop_task], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.set()
            results = await self._wind_down(tasks)
            stop_task.cancel()
            if runner is not None:
                await runner.cleanup()
        log.info("worker stopped: %s", orjson.dumps(self.status()).decode())
        failures = [
            (tasks[t], r)
            for t, r in zip(tasks, results, strict=True)
            if isinstance(r, BaseException)
        ]
        for name, error in failures:
            log.error("agent %s failed: %r", name, error)
        if failures:
            raise failures[0][1]

    async def _wind_down(self, tasks: dict[asyncio.Task[None], str]) -> list[BaseException | None]:
        """Let every agent finish its batch and leave its group; say who is slow, and
        cancel what is still running after SHUTDOWN_S (its uncommitted work is redone
        by the next owner, so nothing is lost either way)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_S
        pending = set(tasks)
        while pending and loop.time() < deadline:
            _, pending = await asyncio.wait(pending, timeout=min(5.0, deadline - loop.time()))
            if pending:
                log.warning("stopping: still waiting for %s", sorted(tasks[t] for t in pending))
        for task in pending:
            log.error("agent %s did not stop within %.0fs: cancelled", tasks[task], SHUTDOWN_S)
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return [r if isinstance(r, BaseException) else None for r in results]


def install_signal_handlers(stopping: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)


async def main(settings: Settings, agents: Sequence[str] = AGENTS) -> None:
    stopping = asyncio.Event()
    install_signal_handlers(stopping)
    await Worker(settings, agents).run(stopping)
