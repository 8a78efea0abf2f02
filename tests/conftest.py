"""Fixtures: the real stack for the session, and an isolated corner of it per test.

``stack`` brings Kafka and ClickHouse up (or reuses the servers already
answering) once per session and stops at the end what it started. ``settings``
gives each test its own topic prefix and its own ClickHouse database, created
before and dropped after the test, so tests run in any order without seeing
each other's data.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest

from infra import stack as local_stack
from infra.clickhouse import ClickHouseServer
from infra.kafka import KafkaBroker
from pipeline.log import kafka
from pipeline.log.topics import catalogue
from pipeline.settings import Settings
from pipeline.store import clickhouse, schema


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path) or "tests/fault" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack() -> Iterator[Settings]:
    base = Settings.from_env()
    started = KafkaBroker(base).pid() is None and ClickHouseServer(base).pid() is None
    started = started and not (KafkaBroker(base).answering() or ClickHouseServer(base).answering())
    local_stack.up(base)
    yield base
    if started and not os.environ.get("IMSTREAM_TEST_KEEP_STACK"):
        local_stack.down(base)


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def settings(stack: Settings) -> AsyncIterator[Settings]:
    """Settings for one test: its own topics (prefix) and its own database."""
    name = unique_name()
    test_settings = isolated(stack, name)
    topics = catalogue(test_settings).all()
    await kafka.ensure_topics(test_settings, topics)
    schema.migrate(test_settings)
    yield test_settings
    await kafka.delete_topics(test_settings, [t.name for t in topics])
    clickhouse.drop_database(test_settings, name)
    drop_local_state(test_settings)


def isolated(base: Settings, name: str) -> Settings:
    """``base`` with topics prefixed by ``name.``, the ClickHouse database ``name``, and
    the stages' local state in a directory of its own (unless kept in memory)."""
    root = base.state_root()
    state_dir = "memory" if root is None else str(root / name)
    return base.replace(
        topics=replace(base.topics, prefix=f"{name}."),
        clickhouse=replace(base.clickhouse, database=name),
        worker=replace(base.worker, health_port=0, state_dir=state_dir),
    )


def drop_local_state(settings: Settings) -> None:
    root = settings.state_root()
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)
