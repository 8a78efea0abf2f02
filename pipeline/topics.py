"""Every Kafka topic imstream uses: name, key, partition count, retention.

Flow (see DESIGN.md)::

    im.messages  (key conversation)  sends and membership events from producers
      └─ sequencer ─► im.timeline (key conversation)  sequenced conversation events
                        ├─ store  ─► ClickHouse messages
                        └─ fanout ─► im.sync (key user)  one delivery per receiver
                                       └─ sync ─► im.inbox (key user)  with dense sync_seq
                                                    ├─ sync store ─► ClickHouse sync_timeline
                                                    └─ push ─► online devices

Stateful stages keep their state in a compacted ``*.state`` changelog with the
same partition count as their input, written in the same Kafka transaction as
their output and input offsets. ``im.deadletter`` takes records that cannot be
processed, with the reason in a header.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.settings import DAY_S, Settings

FOREVER = -1


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    key: str
    partitions: int
    retention_ms: int = FOREVER
    compacted: bool = False
    log_append_time: bool = False

    def config(self) -> dict[str, str]:
        """Topic-level configs for the admin client."""
        if self.compacted:
            return {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}
        config = {"cleanup.policy": "delete", "retention.ms": str(self.retention_ms)}
        if self.log_append_time:
            config["message.timestamp.type"] = "LogAppendTime"
        return config


@dataclass(frozen=True, slots=True)
class Topics:
    messages: TopicSpec
    timeline: TopicSpec
    sync: TopicSpec
    inbox: TopicSpec
    dead_letter: TopicSpec
    sequencer_state: TopicSpec
    fanout_state: TopicSpec
    sync_state: TopicSpec

    def all(self) -> tuple[TopicSpec, ...]:
        return (
            self.messages,
            self.timeline,
            self.sync,
            self.inbox,
            self.dead_letter,
            self.sequencer_state,
            self.fanout_state,
            self.sync_state,
        )


def catalogue(settings: Settings) -> Topics:
    prefix = settings.topics.prefix
    conv = settings.topics.conversation_partitions
    users = settings.topics.user_partitions
    sync_ms = settings.pipeline.sync_retention_days * DAY_S * 1000
    dlq_ms = settings.topics.dead_letter_retention_days * DAY_S * 1000

    def spec(
        name: str, key: str, partitions: int, retention_ms: int = FOREVER, compacted: bool = False
    ) -> TopicSpec:
        return TopicSpec(prefix + name, key, partitions, retention_ms, compacted)

    return Topics(
        # the broker stamps each command: the sequencer's clock is the log's
        messages=TopicSpec(prefix + "im.messages", "conversation_id", conv, log_append_time=True),
        timeline=spec("im.timeline", "conversation_id", conv),
        sync=spec("im.sync", "user_id", users, retention_ms=sync_ms),
        inbox=spec("im.inbox", "user_id", users, retention_ms=sync_ms),
        dead_letter=spec("im.deadletter", "source key", 1, retention_ms=dlq_ms),
        sequencer_state=spec("im.sequencer.state", "state key", conv, compacted=True),
        fanout_state=spec("im.fanout.state", "state key", conv, compacted=True),
        sync_state=spec("im.sync.state", "state key", users, compacted=True),
    )
