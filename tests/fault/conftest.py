"""Fault tests break servers, so they get a private stack of their own.

``private_stack`` starts one Kafka broker and one ClickHouse server on free
ports with their data in a temporary directory (only the Kafka jar cache is
shared), once per module, and stops both at the end, checking that nothing is
left running. The shared stack other tests use is never touched. Each test
then gets its own topic prefix and database on the private stack
(``fault_settings``) and a pool of real worker processes (``workers``).

Recovery times are collected with ``record_recovery`` and printed at the end
of the run (and logged), so they can be quoted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from infra import stack as local_stack
from infra.clickhouse import ClickHouseServer
from infra.kafka import KafkaBroker
from infra.process import alive, port_open
from pipeline.log import kafka
from pipeline.log.topics import catalogue
from pipeline.settings import Settings
from pipeline.store import clickhouse, schema
from tests.conftest import isolated, unique_name
from tests.fault.workers import WorkerPool
from tests.support import other_stack

log = logging.getLogger(__name__)
RECOVERIES: list[tuple[str, str]] = []


def record_recovery(fault: str, what: str) -> None:
    RECOVERIES.append((fault, what))
    log.warning("recovery after %s: %s", fault, what)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if RECOVERIES:
        terminalreporter.section("fault recovery times")
        for fault, what in RECOVERIES:
            terminalreporter.write_line(f"{fault}: {what}")


SEED = int(os.environ.get("IMSTREAM_FAULT_SEED", str(time.time_ns() % 1_000_000)))


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """The run's seed: traffic plans, kill moments, which worker. Logged and printed;
    ``IMSTREAM_FAULT_SEED=<n>`` replays it (the timing of a real stack still varies)."""
    log.warning("%s: seed %d (IMSTREAM_FAULT_SEED=%d replays it)", request.node.name, SEED, SEED)
    return SEED


@pytest.fixture(scope="module")
def private_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Kafka + ClickHouse of this module only, on free ports; stopped at the end."""
    home = tmp_path_factory.mktemp("fault-stack")
    settings = other_stack(Settings.from_env(), home)
    started = time.monotonic()
    try:
        local_stack.up(settings)
        log.warning(
            "private stack up in %.1fs: kafka %s, clickhouse %d, dir %s",
            time.monotonic() - started,
            settings.kafka.bootstrap,
            settings.clickhouse.port,
            home,
        )
        yield settings
    finally:
        pids = [KafkaBroker(settings).pid(), ClickHouseServer(settings).pid()]
        local_stack.down(settings)
    left = [pid for pid in pids if pid is not None and alive(pid)]
    assert not left, f"private stack processes still running: {left}"
    host, port = settings.kafka.bootstrap.rsplit(":", 1)
    assert not port_open(host, int(port))
    assert not port_open(settings.clickhouse.host, settings.clickhouse.port)


@pytest.fixture
async def fault_settings(private_stack: Settings) -> AsyncIterator[Settings]:
    """Settings for one fault test: its own topics and database on the private stack."""
    name = unique_name("f")
    settings = isolated(private_stack, name)
    # the suite's traffic has one user send as fast as the acks come back: the
    # per-user send limit would shape it (tests/integration/gateway/test_limits.py)
    settings = settings.replace(gateway=replace(settings.gateway, sends_per_s=0))
    await kafka.ensure_topics(settings, catalogue(settings).all())
    schema.migrate(settings)
    yield settings
    # a test may leave a server down if it fails half way: bring it back for the next
    await asyncio.to_thread(local_stack.up, private_stack)
    await kafka.delete_topics(settings, [t.name for t in catalogue(settings).all()])
    clickhouse.drop_database(settings, name)


@pytest.fixture
def workers(fault_settings: Settings, tmp_path: Path) -> Iterator[WorkerPool]:
    pool = WorkerPool(fault_settings, tmp_path)
    try:
        yield pool
    finally:
        pool.close()
