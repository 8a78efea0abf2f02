"""The gateway's copy of the roster (``im.members``): membership without ClickHouse.

The gateway reads the compacted roster topic from the beginning, then follows
it, like presence. A send, join or leave checks membership here, so the send
path never waits on the store. A change the caller made a moment ago (it
created the conversation, it was just added) may still be on its way through
the sequencer: a check that finds no membership waits for the roster to move,
up to a grace period, before it answers. Memory: one set entry per membership
(about 100 bytes each with CPython's sets and short ids).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.errors import EventError
from pipeline.log import kafka
from pipeline.log.topics import TopicSpec
from pipeline.model.roster import Roster, parse
from pipeline.settings import Settings

log = logging.getLogger(__name__)

Verdict = bool | None
"""True: a member; False: the conversation exists, not a member; None: the roster
does not know the conversation (not created, or created before the roster was)."""


class RosterFollower:
    def __init__(self, settings: Settings, topic: TopicSpec) -> None:
        self.settings = settings
        self.topic = topic
        self.roster = Roster()
        self.caught_up = asyncio.Event()
        """Set once everything committed when the gateway started has been read."""
        self.records = 0
        self.last_poll = time.monotonic()
        self._moved = asyncio.Event()

    async def run(self) -> None:
        tps = [TopicPartition(self.topic.name, p) for p in range(self.topic.partitions)]
        consumer = kafka.consumer(self.settings)
        consumer.assign(tps)
        await consumer.start()
        try:
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
                self.last_poll = time.monotonic()
                for records in batch.values():
                    for record in records:
                        self._apply(record.key, record.value)
                if not self.caught_up.is_set() and await _reached(consumer, end):
                    log.info("roster: %d memberships read", len(self.roster))
                    self.caught_up.set()
                if batch:
                    self._moved.set()
                    self._moved = asyncio.Event()
        finally:
            await consumer.stop()

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        try:
            self.roster.apply(parse(key, value))
        except EventError as exc:
            log.warning("roster: ignoring a record: %s", exc)
            return
        self.records += 1

    async def member(self, conversation_id: str, user_id: str, grace_s: float) -> Verdict:
        """Whether ``user_id`` is a member, waiting up to ``grace_s`` for a yes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while not self.roster.is_member(conversation_id, user_id):
            left = deadline - loop.time()
            if left <= 0:
                return False if self.roster.exists(conversation_id) else None
            waiting = self._moved if self.caught_up.is_set() else self.caught_up
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiting.wait(), left)
        return True

    def exists(self, conversation_id: str) -> Verdict:
        """True or False once caught up; None before (the roster cannot say yet)."""
        if not self.caught_up.is_set():
            return None
        return self.roster.exists(conversation_id)


async def _reached(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
    for tp, offset in end.items():
        if await consumer.position(tp) < offset:
            return False
    return True
