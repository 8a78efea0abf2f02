"""Every Kafka topic imstream uses: name, key, partition count, retention.

Flow (see docs/design.md)::

    im.messages  (key conversation)  sends and membership events from producers
      └─ sequencer ─┬─► im.timeline (key conversation)  sequenced conversation events
                    │     └─ store ─► ClickHouse messages
                    ├─► im.members (compacted)  the roster: who is in which conversation
                    └─► im.sync (key user)  one delivery per receiver (same transaction)
                          └─ sync ─► im.inbox (key user)  with dense sync_seq
                                       ├─ sync store ─► ClickHouse sync_timeline
                                       └─ push ─► im.push.<gateway> ─► devices

Gateways follow ``im.members`` to check membership on the send path without
asking ClickHouse. ``im.presence`` (compacted) tells the push agent which gateway holds which
users; each gateway reads its own ``im.push.<gateway>``. Large groups (read
diffusion) have no deliveries for their messages: the push agent copies their
im.timeline events to every live gateway's push topic.

Stateful stages keep their state in a compacted ``*.state`` changelog with the
same partition count as their input, written in the same Kafka transaction as
their output and input offsets. ``im.deadletter`` takes records that cannot be
processed, with the reason in a header.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.settings import DAY_S, Settings

FOREVER = -1
COMPACTED_SEGMENT_MS = 3_600_000
COMPACTED_SEGMENT_BYTES = 64 * 1024 * 1024
PUSH_RETENTION_MS = 3_600_000  # push is the fast path: stale pushes are worth nothing
# a push topic holds im.inbox records (a user's entries) and, with this header,
# im.timeline records of large groups (broadcast to every gateway)
PUSH_KIND_HEADER = "imstream.kind"
PUSH_KIND_TIMELINE = b"timeline"


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
            # compaction never touches the active segment: roll it hourly (or at
            # 64 MiB) so that a compacted topic stays about the size of its keys
            return {
                "cleanup.policy": "compact",
                "min.compaction.lag.ms": "0",
                "segment.ms": str(COMPACTED_SEGMENT_MS),
                "segment.bytes": str(COMPACTED_SEGMENT_BYTES),
            }
        config = {"cleanup.policy": "delete", "retention.ms": str(self.retention_ms)}
        if self.log_append_time:
            config["message.timestamp.type"] = "LogAppendTime"
        return config


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str
    messages: TopicSpec
    timeline: TopicSpec
    sync: TopicSpec
    inbox: TopicSpec
    dead_letter: TopicSpec
    sequencer_state: TopicSpec
    sync_state: TopicSpec
    presence: TopicSpec
    roster: TopicSpec

    def push(self, gateway_id: str) -> TopicSpec:
        """The topic the push agent fills for one gateway (its users' new entries)."""
        return TopicSpec(
            f"{self.prefix}im.push.{gateway_id}",
            "user_id",
            1,
            retention_ms=PUSH_RETENTION_MS,
        )

    def all(self) -> tuple[TopicSpec, ...]:
        return (
            self.messages,
            self.timeline,
            self.sync,
            self.inbox,
            self.dead_letter,
            self.sequencer_state,
            self.sync_state,
            self.presence,
            self.roster,
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
        prefix=prefix,
        # the broker stamps each command: the sequencer's clock is the log's
        messages=TopicSpec(prefix + "im.messages", "conversation_id", conv, log_append_time=True),
        timeline=spec("im.timeline", "conversation_id", conv),
        sync=spec("im.sync", "user_id", users, retention_ms=sync_ms),
        inbox=spec("im.inbox", "user_id", users, retention_ms=sync_ms),
        dead_letter=spec("im.deadletter", "source key", 1, retention_ms=dlq_ms),
        sequencer_state=spec("im.sequencer.state", "state key", conv, compacted=True),
        sync_state=spec("im.sync.state", "state key", users, compacted=True),
        # one partition: a gateway's heartbeats and user records stay in order
        presence=spec("im.presence", "gateway/user", 1, compacted=True),
        # who is in which conversation (pipeline/model/roster.py), written by the sequencer
        roster=spec("im.members", "[conversation, user]", conv, compacted=True),
    )
