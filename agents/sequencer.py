"""The sequencer agent: im.messages → im.timeline and im.sync, in one transaction.

Decodes every command, checks it against the conversation's membership,
drops repeated client_msg_ids within the dedupe window, and gives each
accepted command its place in the conversation (see pipeline/model/sequencing.py).
In one transaction it writes the timeline event to ``im.timeline`` (the storage
timeline), membership facts to ``im.members`` (pipeline/model/roster.py), and
one delivery per receiving member to ``im.sync`` (fan-out planning,
pipeline/model/diffusion.py: both are keyed by conversation, so the sequencer's
membership is exactly what planning needs, and a message pays one commit here
instead of one per stage). Anything it cannot accept goes to the dead-letter
topic with the reason.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import ConsumerRecord

from agents.runtime.transactional import Output, StageSpec, dead_letter
from pipeline.errors import EventError
from pipeline.log.kafka import partition_for
from pipeline.log.topics import Topics
from pipeline.model.events import (
    decode_command,
    delivery_view,
    encode_deliveries,
    encode_timeline,
    limits_from,
)
from pipeline.model.roster import facts as roster_facts
from pipeline.model.sequencing import STATE_SETS, Accepted, Duplicate, Sequencer
from pipeline.model.state import StateStore
from pipeline.observe.sensor import Sensor
from pipeline.settings import Settings

log = logging.getLogger(__name__)
STAGE = "sequencer"
WARN_EVERY_MS = 60_000


class SequencerProcessor:
    def __init__(
        self, settings: Settings, topics: Topics, state: StateStore, sensor: Sensor | None = None
    ) -> None:
        self.sensor = sensor or Sensor()
        self._warned_ms = 0
        self.limits = limits_from(settings.pipeline)
        self.topics = topics
        self.sequencer = Sequencer(
            state,
            dedupe_window_ms=settings.pipeline.dedupe_window_s * 1000,
            dedupe_max=settings.pipeline.dedupe_max_per_partition,
            max_group_size=settings.pipeline.max_group_size,
            read_diffusion_threshold=settings.pipeline.read_diffusion_threshold,
        )
        self.duplicates = 0

    def process(self, record: ConsumerRecord[Any, Any], out: Output) -> None:
        dlq = self.topics.dead_letter.name
        try:
            command = decode_command(record.value, self.limits)
        except EventError as exc:
            dead_letter(out, dlq, record, STAGE, str(exc), kind=exc.kind)
            return
        if record.key != command.conversation_id.encode():
            reason = "record key is not the event's conversation_id"
            dead_letter(out, dlq, record, STAGE, reason, kind="wrong_key")
            return
        home = partition_for(record.key, self.topics.messages.partitions)
        if record.partition != home:
            # a conversation on two partitions would have two sequencers (two seq 1s)
            reason = (
                f"record is on partition {record.partition}, its key's is {home}: use the "
                "Java client's default partitioner, murmur2 (librdkafka: "
                "partitioner=murmur2_random)"
            )
            dead_letter(out, dlq, record, STAGE, reason, kind="wrong_partition")
            return
        outcome = self.sequencer.apply(command, record.timestamp)
        if isinstance(outcome, Accepted):
            # no hop stamps here: the event holds the send time (its command's ts_ms)
            # and the log's (its ts_ms), the records' own timestamps the sequencer's
            event = encode_timeline(outcome.event)
            out.send(self.topics.timeline.name, record.key, event)
            sync = self.topics.sync.name
            view = delivery_view(outcome.event)
            body = event if view is outcome.event else None
            for user, value in encode_deliveries(view, outcome.recipients, body):
                out.send(sync, user.encode(), value)
            roster = self.topics.roster.name
            for key, fact in roster_facts(outcome.event):
                out.send(roster, key, fact)
        elif isinstance(outcome, Duplicate):
            self.duplicates += 1
            log.debug("duplicate of seq %d dropped: %s", outcome.seq, command.event_id)
        else:
            dead_letter(out, dlq, record, STAGE, f"rejected: {outcome.reason}", kind="rejected")

    def end_batch(self, now_ms: int, out: Output) -> None:
        _, early = self.sequencer.expire(now_ms)
        if early:
            self.sensor.on_dedupe_evicted_early(early)
            if now_ms - self._warned_ms > WARN_EVERY_MS:
                self._warned_ms = now_ms
                log.warning(
                    "dedupe: more than %d entries in the %ds window of a partition: the "
                    "oldest go early (raise IMSTREAM_PIPELINE_DEDUPE_MAX_PER_PARTITION)",
                    self.sequencer.dedupe_max,
                    self.sequencer.dedupe_window_ms // 1000,
                )


def stage(settings: Settings, topics: Topics, sensor: Sensor | None = None) -> StageSpec:
    return StageSpec(
        name=STAGE,
        input=topics.messages,
        changelog=topics.sequencer_state,
        dead_letter=topics.dead_letter,
        make_processor=lambda state: SequencerProcessor(settings, topics, state, sensor),
        state_sets=STATE_SETS,
    )
