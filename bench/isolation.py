"""Each scenario run on its own corner of the shared stack.

Its own topic prefix (``bench<hex>.``) and its own ClickHouse database of the
same name, created on entry; on exit every topic under the prefix (the
gateways' push topics and the copy loops' topics too) is deleted and the
database dropped, unless the run keeps them.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

from pipeline.log import kafka
from pipeline.log.topics import catalogue
from pipeline.settings import Settings
from pipeline.store import clickhouse, schema

log = logging.getLogger(__name__)


def corner(base: Settings, tag: str) -> Settings:
    name = f"bench{tag}{uuid.uuid4().hex[:8]}"
    return base.replace(
        topics=replace(base.topics, prefix=f"{name}."),
        clickhouse=replace(base.clickhouse, database=name),
        worker=replace(base.worker, health_port=0, state_dir=_state_dir(base, name)),
    )


def _state_dir(base: Settings, name: str) -> str:
    """The scenario's own state directory, or "memory" if the base says so."""
    root = base.state_root()
    return "memory" if root is None else str(root / name)


@asynccontextmanager
async def isolated(
    base: Settings, tag: str, *, keep: bool = False, pipeline_topics: bool = True
) -> AsyncIterator[Settings]:
    settings = corner(base, tag)
    if pipeline_topics:
        await kafka.ensure_topics(settings, catalogue(settings).all())
    await asyncio.to_thread(schema.migrate, settings)
    try:
        yield settings
    finally:
        if keep:
            log.warning("kept topics %s* and database %s", settings.topics.prefix, _db(settings))
        else:
            await cleanup(settings)


async def cleanup(settings: Settings) -> None:
    prefix = settings.topics.prefix
    async with kafka.admin(settings) as client:
        doomed = [t for t in await client.list_topics() if t.startswith(prefix)]
    await kafka.delete_topics(settings, doomed)
    await asyncio.to_thread(clickhouse.drop_database, settings, _db(settings))
    root = settings.state_root()
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)


def _db(settings: Settings) -> str:
    return settings.clickhouse.database
