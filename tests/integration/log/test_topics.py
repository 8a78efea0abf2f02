"""Topics the project creates keep the catalogue's configs, even if they existed
before the catalogue changed them (compacted topics got segment settings later:
without them compaction never reaches the active segment)."""

from __future__ import annotations

from aiokafka.admin import NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from pipeline.log import kafka
from pipeline.log.topics import COMPACTED_SEGMENT_MS, TopicSpec
from pipeline.settings import Settings
from tests.support import eventually


async def _overrides(settings: Settings, name: str) -> dict[str, str]:
    async with kafka.admin(settings) as client:
        [response] = await client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    return kafka.topic_overrides(response)[name]


async def _described(settings: Settings, name: str) -> bool:
    async with kafka.admin(settings) as client:
        resource = ConfigResource(ConfigResourceType.TOPIC, name)
        [response] = await client.describe_configs([resource])
    return bool(response.resources[0][0] == 0)


async def test_an_existing_compacted_topic_gets_the_segment_settings(settings: Settings) -> None:
    spec = TopicSpec(f"{settings.topics.prefix}old.state", "state key", 2, compacted=True)
    async with kafka.admin(settings) as client:  # as an older version created it
        old = {
            "cleanup.policy": "compact",
            "min.compaction.lag.ms": "0",
            "max.message.bytes": "2000000",
        }
        await client.create_topics([NewTopic(spec.name, 2, 1, topic_configs=old)])
    try:
        created = await eventually(  # topic creation is asynchronous
            lambda: _described(settings, spec.name), bool, within=10, every=0.1
        )
        assert created
        assert "segment.ms" not in await _overrides(settings, spec.name)
        assert await kafka.ensure_topics(settings, [spec]) == []  # nothing created
        after = await _overrides(settings, spec.name)
        assert after["segment.ms"] == str(COMPACTED_SEGMENT_MS)
        assert after | spec.config() == after  # every catalogue config holds
        assert after["max.message.bytes"] == "2000000"  # an operator's override is kept
        await kafka.ensure_topics(settings, [spec])  # and nothing changes a second time
        assert await _overrides(settings, spec.name) == after
    finally:
        await kafka.delete_topics(settings, [spec.name])
