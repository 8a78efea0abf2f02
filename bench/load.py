"""Offered load and what the bench watches while it runs.

Traffic goes in through the producer SDK (``pipeline.sdk.producer``), the way
services publish; a :class:`Sampler` records, every ``every_s``, how much was
sent, stored (ClickHouse ``messages``), synced (``sync_timeline``) and the
workers' lag per agent, for the throughput-over-time plots.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.model.events import Command, ConversationCreated, new_event_id
from pipeline.model.naming import direct_conversation_id
from pipeline.sdk.producer import Producer, message, now_ms
from pipeline.store.clickhouse import ClickHouse

COUNT_MESSAGES = "SELECT count() FROM messages"
COUNT_SYNC = "SELECT count() FROM sync_timeline"
UNIQUE_MESSAGES = "SELECT count(), uniqExact(conversation_id, seq) FROM messages"
UNIQUE_SYNC = "SELECT count(), uniqExact(user_id, sync_seq) FROM sync_timeline"


def body(size: int, tag: str = "") -> str:
    """A message body of ``size`` bytes, starting with ``tag``."""
    return (tag + "x" * size)[: max(size, len(tag))]


@dataclass(frozen=True, slots=True)
class Pair:
    conversation_id: str
    a: str
    b: str


def pairs(count: int, tag: str = "u") -> list[Pair]:
    found = []
    for i in range(count):
        a, b = f"{tag}{2 * i:06d}", f"{tag}{2 * i + 1:06d}"
        found.append(Pair(direct_conversation_id(a, b), a, b))
    return found


def direct_created(pair: Pair) -> ConversationCreated:
    return ConversationCreated(
        new_event_id(), pair.conversation_id, pair.a, "direct", "", (pair.a, pair.b), now_ms()
    )


def group_created(conversation_id: str, members: Sequence[str]) -> ConversationCreated:
    return ConversationCreated(
        new_event_id(), conversation_id, members[0], "group", "bench", tuple(members), now_ms()
    )


async def publish(producer: Producer, commands: Sequence[Command], chunk: int = 1_000) -> None:
    for start in range(0, len(commands), chunk):
        await producer.publish_many(commands[start : start + chunk])


def messages_for(conversations: Sequence[tuple[str, str]], count: int, size: int) -> list[Command]:
    """``count`` messages round-robin over (conversation, sender) pairs."""
    text = body(size)
    return [
        message(
            conversations[i % len(conversations)][0], conversations[i % len(conversations)][1], text
        )
        for i in range(count)
    ]


async def scalar(store: ClickHouse, sql: str) -> int:
    return int((await store.execute(sql))[0][0])


async def stored_counts(store: ClickHouse) -> dict[str, int]:
    """Rows and distinct keys: more rows than keys would be duplicates not yet folded."""
    ((rows, keys),) = await store.execute(UNIQUE_MESSAGES)
    ((sync_rows, sync_keys),) = await store.execute(UNIQUE_SYNC)
    return {
        "messages_rows": int(rows),
        "messages_distinct": int(keys),
        "sync_rows": int(sync_rows),
        "sync_distinct": int(sync_keys),
    }


async def wait_for(
    probe: Callable[[], Awaitable[bool]], within_s: float, every_s: float = 0.25
) -> bool:
    deadline = time.monotonic() + within_s
    while True:
        if await probe():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(every_s)


@dataclass
class Sampler:
    """Every ``every_s``: t, sent, stored, synced and the lag per agent."""

    store: ClickHouse
    sent: Callable[[], int]
    lag: Callable[[], Awaitable[dict[str, int]]] | None = None
    every_s: float = 1.0
    series: list[dict[str, Any]] = field(default_factory=list)
    _t0: float = 0.0
    _task: asyncio.Task[None] | None = None

    def start(self, t0: float) -> None:
        self._t0 = t0
        self._task = asyncio.create_task(self._run())

    async def sample(self) -> dict[str, Any]:
        point: dict[str, Any] = {
            "t": round(time.monotonic() - self._t0, 3),
            "sent": self.sent(),
            "stored": await scalar(self.store, COUNT_MESSAGES),
            "synced": await scalar(self.store, COUNT_SYNC),
        }
        if self.lag is not None:
            lags = await self.lag()
            point["lag"] = sum(lags.values())
            point["lag_by_agent"] = lags
        self.series.append(point)
        return point

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            await self.sample()
            await asyncio.sleep(max(0.0, self.every_s - (time.monotonic() - started)))

    async def stop(self) -> list[dict[str, Any]]:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        return self.series
