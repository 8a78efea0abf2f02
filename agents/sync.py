"""The sync agent: im.sync → im.inbox, the per-user sync timelines.

Gives every delivery its user's next dense ``sync_seq`` (see
pipeline/model/syncing.py), exactly once, and writes it to ``im.inbox`` as an
inbox entry, spliced from the delivery's bytes (pipeline/model/framing.py).
agents/sync_store.py writes the entries to ClickHouse for devices to pull.

Read markers are frequent (a device may mark each message it shows) and only
the highest matters: the markers of a user's conversation in one transaction's
batch become one entry, the highest, sequenced at the end of the batch (after
the batch's other entries: a marker says "read up to seq", wherever it stands).
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import ConsumerRecord

from agents.runtime.transactional import Output, StageSpec, dead_letter
from pipeline.errors import EventError
from pipeline.log.topics import Topics
from pipeline.model import hops
from pipeline.model.events import Delivery, TimelineEvent, UserEvent, limits_from
from pipeline.model.framing import EventCache, inbox_record
from pipeline.model.state import StateStore
from pipeline.model.syncing import SyncSequencer
from pipeline.settings import Settings

log = logging.getLogger(__name__)
STAGE = "sync"


class SyncProcessor:
    def __init__(self, settings: Settings, topics: Topics, state: StateStore) -> None:
        self.events = EventCache(limits_from(settings.pipeline))
        self.topics = topics
        self.sequencer = SyncSequencer(state)
        self.stamp = settings.metrics.enabled
        self.reads: dict[tuple[str, str], tuple[UserEvent, bytes, bytes]] = {}
        """The batch's highest read marker per (user, conversation): event, its bytes,
        the record's key."""

    def process(self, record: ConsumerRecord[Any, Any], out: Output) -> None:
        try:
            delivery, event = self.events.delivery(record.value)
        except EventError as exc:
            dead_letter(out, self.topics.dead_letter.name, record, STAGE, str(exc), kind=exc.kind)
            return
        if record.key != delivery.user_id.encode():
            reason = "record key is not the delivery's user_id"
            dead_letter(out, self.topics.dead_letter.name, record, STAGE, reason, kind="wrong_key")
            return
        if isinstance(delivery.event, UserEvent) and delivery.event.kind == "read":
            self._read(delivery.event, event, record.key)
            return
        entry = self.sequencer.assign(delivery)
        if entry is None:
            return  # a read marker behind the user's, a mute or pin already so
        out.send(
            self.topics.inbox.name,
            record.key,
            inbox_record(entry.user_id, entry.sync_seq, entry.ts_ms, event),
            self._stamps(delivery, record.timestamp),
        )

    def _stamps(self, delivery: Delivery, sequenced_ms: int) -> list[tuple[str, bytes]] | None:
        """The entry's hop stamps, from what the delivery holds: the send (its
        command's ts_ms), the log (the event's ts_ms) and the sequencer (the
        delivery record's timestamp); then now."""
        event = delivery.event
        if not self.stamp or not isinstance(event, TimelineEvent):
            return None
        chain = hops.first(event.command.ts_ms, event.ts_ms, sequenced_ms)
        return [(hops.HEADER, hops.extend(chain, hops.SYNCED, hops.now_ms()))]

    def _read(self, marker: UserEvent, raw: bytes, key: bytes) -> None:
        where = (marker.user_id, marker.conversation_id)
        held = self.reads.get(where)
        if held is None or marker.seq > held[0].seq:
            self.reads[where] = (marker, raw, key)

    def end_batch(self, now_ms: int, out: Output) -> None:
        """The batch's read markers, the highest of each conversation of each user."""
        for marker, raw, key in self.reads.values():
            entry = self.sequencer.assign(Delivery(marker.user_id, marker))
            if entry is not None:  # None: not past the user's marker
                out.send(
                    self.topics.inbox.name,
                    key,
                    inbox_record(entry.user_id, entry.sync_seq, entry.ts_ms, raw),
                )
        self.reads.clear()


def stage(settings: Settings, topics: Topics) -> StageSpec:
    return StageSpec(
        name=STAGE,
        input=topics.sync,
        changelog=topics.sync_state,
        dead_letter=topics.dead_letter,
        make_processor=lambda state: SyncProcessor(settings, topics, state),
    )
