"""The fanout agent: im.timeline → im.sync, one delivery per receiving member.

Write diffusion: membership is replayed from the timeline in log order, so a
member who joins later gets nothing from before, and one who left gets nothing
after (see pipeline/model/diffusion.py). Deliveries are keyed by receiver.
"""

from __future__ import annotations

from typing import Any

from aiokafka import ConsumerRecord

from agents.runtime.transactional import Output, StageSpec, dead_letter
from pipeline.errors import EventError
from pipeline.log.topics import Topics
from pipeline.model import hops
from pipeline.model.diffusion import Fanout
from pipeline.model.events import decode_timeline, encode_deliveries, limits_from
from pipeline.model.hops import now_ms
from pipeline.model.state import StateStore
from pipeline.settings import Settings

STAGE = "fanout"


class FanoutProcessor:
    def __init__(self, settings: Settings, topics: Topics, state: StateStore) -> None:
        self.limits = limits_from(settings.pipeline)
        self.topics = topics
        self.fanout = Fanout(state)
        self.stamp = settings.metrics.enabled

    def process(self, record: ConsumerRecord[Any, Any], out: Output) -> None:
        try:
            event = decode_timeline(record.value, self.limits)
        except EventError as exc:
            dead_letter(out, self.topics.dead_letter.name, record, STAGE, str(exc), kind=exc.kind)
            return
        sync = self.topics.sync.name
        headers = hops.restamp(record.headers, hops.FANNED_OUT, now_ms()) if self.stamp else None
        for user, value in encode_deliveries(event, self.fanout.recipients(event)):
            out.send(sync, user.encode(), value, headers)

    def end_batch(self, now_ms: int, out: Output) -> None:
        return None


def stage(settings: Settings, topics: Topics) -> StageSpec:
    return StageSpec(
        name=STAGE,
        input=topics.timeline,
        changelog=topics.fanout_state,
        dead_letter=topics.dead_letter,
        make_processor=lambda state: FanoutProcessor(settings, topics, state),
    )
