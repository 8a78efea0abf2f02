"""The faust SDK's typed records: every record the pipeline writes decodes into them
(nested records are records, not dicts) and encodes back byte for byte."""

from __future__ import annotations

import pytest
from faust.serializers import codecs as faust_codecs
from hypothesis import given
from hypothesis import strategies as st

from pipeline.errors import DecodeError
from pipeline.model.events import (
    decode_delivery,
    delivery_view,
    encode_command,
    encode_deliveries,
    encode_inbox,
    encode_timeline,
)
from pipeline.model.sequencing import Accepted, Sequencer
from pipeline.model.state import StateStore
from pipeline.model.syncing import SyncSequencer
from pipeline.streams import codecs, records
from tests.unit.log.test_schemas import EXAMPLES, LIMITS, _history

KINDS = {
    "message.sent": records.MessageSent,
    "conversation.created": records.ConversationCreated,
    "member.joined": records.MemberJoined,
    "member.left": records.MemberLeft,
}


@EXAMPLES
@given(st.data())
def test_what_the_pipeline_writes_round_trips_through_the_records(data: st.DataObject) -> None:
    sequencer = Sequencer(StateStore(), dedupe_window_ms=1_000, max_group_size=6)
    sync = SyncSequencer(StateStore())
    command_codec = codecs.command_codec(LIMITS)
    timeline_codec = codecs.timeline_codec(LIMITS)
    inbox_codec = codecs.inbox_codec(LIMITS)
    for ts, command in enumerate(_history(data)):
        raw = encode_command(command)
        typed = command_codec.loads(raw)
        assert isinstance(typed, KINDS[command.type])
        assert typed.type == command.type
        assert command_codec.dumps(typed) == raw
        outcome = sequencer.apply(command, ts)
        if not isinstance(outcome, Accepted):
            continue
        body = encode_timeline(outcome.event)
        event = timeline_codec.loads(body)
        assert isinstance(event.command, KINDS[command.type])
        assert event.conversation_id == command.conversation_id
        assert event.is_message == (command.type == "message.sent")
        assert (event.seq, event.event_no, event.large) == (
            outcome.event.seq,
            outcome.event.event_no,
            outcome.event.large,
        )
        assert timeline_codec.dumps(event) == body
        view = delivery_view(outcome.event)
        for _, value in encode_deliveries(view, outcome.recipients):
            entry_raw = encode_inbox(sync.assign(decode_delivery(value, LIMITS)))
            entry = inbox_codec.loads(entry_raw)
            assert isinstance(entry.event, records.TimelineEvent)
            assert isinstance(entry.event.command, KINDS[command.type])
            assert inbox_codec.dumps(entry) == entry_raw


def test_a_record_the_pipeline_would_refuse_does_not_decode() -> None:
    codec = codecs.timeline_codec(LIMITS)
    with pytest.raises(DecodeError, match="unsupported schema version"):
        codec.loads(b'{"v": 2, "seq": 1}')
    # faust turns the error into a ValueDecodeError and skips the event
    with pytest.raises(Exception, match="unsupported schema version"):
        faust_codecs.loads(codec, b'{"v": 2}')
