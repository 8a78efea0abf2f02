"""The push agent hands partitions over without skipping entries.

A gap in ``sync_seq`` is only noticed when a later entry arrives, so an entry
the push agent skips waits, on an online device, for the next one. Two ways a
new owner used to skip: the group had no committed offset yet (a kill -9 within
the first auto-commit interval sent the next owner to "the newest entry"), and
a restarted agent took "presence not read yet" for "no one online" and jumped
to the end of the topic when it woke.
"""

from __future__ import annotations

import time

from aiokafka import TopicPartition

from agents.push import PushAgent
from pipeline.log import kafka
from pipeline.log.topics import catalogue
from pipeline.model.presence import heartbeat_key, heartbeat_record, user_key, user_record
from pipeline.settings import Settings
from tests.support import eventually, read_topic, running_worker

GATEWAY = "gw-handover"


async def _announce(settings: Settings, users: list[str]) -> None:
    """A live gateway holding ``users`` online, as a gateway would say it."""
    now = int(time.time() * 1000)
    producer = kafka.producer(settings)
    await producer.start()
    try:
        topic = catalogue(settings).presence.name
        await producer.send_and_wait(
            topic, heartbeat_record(GATEWAY, now, now), heartbeat_key(GATEWAY)
        )
        for user in users:
            record = user_record(GATEWAY, user, 1, now)
            await producer.send_and_wait(topic, record, key=user_key(GATEWAY, user))
    finally:
        await producer.stop()


async def _committed(settings: Settings, group: str) -> dict[int, int | None]:
    spec = catalogue(settings).inbox
    consumer = kafka.consumer(settings, group_id=group)
    await consumer.start()
    try:
        return {
            p: await consumer.committed(TopicPartition(spec.name, p))
            for p in range(spec.partitions)
        }
    finally:
        await consumer.stop()


async def test_a_new_owner_pushes_what_was_written_while_no_one_read(settings: Settings) -> None:
    topics = catalogue(settings)
    push_topic = topics.push(GATEWAY)
    await kafka.ensure_topics(settings, [push_topic])
    try:
        await _announce(settings, ["alice"])
        async with running_worker(settings, ["push"]) as first:
            agent = first.agents["push"]
            assert isinstance(agent, PushAgent)
            everything = list(range(topics.inbox.partitions))
            await eventually(lambda: _status(agent), lambda s: s == everything, within=30)
            # anchored as soon as assigned, well before the first auto-commit (5 s)
            committed = await _committed(settings, agent.group_id)
        assert None not in committed.values(), committed

        # written while no agent runs: the next owner starts from the group's offset
        producer = kafka.producer(settings)
        await producer.start()
        try:
            await producer.send_and_wait(topics.inbox.name, b"entry for alice", key=b"alice")
        finally:
            await producer.stop()
        async with running_worker(settings, ["push"]):
            pushed = await eventually(
                lambda: read_topic(settings, push_topic),
                lambda values: b"entry for alice" in values,
                within=30,
            )
        assert pushed == [b"entry for alice"]
    finally:
        await kafka.delete_topics(settings, [push_topic.name])


async def _status(agent: PushAgent) -> list[int]:
    partitions: list[int] = agent.status()["partitions"]
    return partitions
