from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from pipeline.errors import DecodeError, ValidationError
from pipeline.model.events import (
    MAX_TS_MS,
    ConversationCreated,
    Delivery,
    InboxEntry,
    Limits,
    MessageSent,
    TimelineEvent,
    decode_command,
    decode_delivery,
    decode_inbox,
    decode_timeline,
    delivery_view,
    encode_command,
    encode_deliveries,
    encode_delivery,
    encode_inbox,
    encode_timeline,
    new_event_id,
)

LIMITS = Limits(max_body_bytes=64, max_group_size=3)


def message(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "v": 1,
        "type": "message.sent",
        "event_id": new_event_id(),
        "conversation_id": "c1",
        "sender_id": "alice",
        "client_msg_id": "m1",
        "content_type": "text/plain",
        "body": "hi",
        "ts_ms": 5,
    }
    data.update(overrides)
    return data


def test_every_event_round_trips() -> None:
    created = ConversationCreated(new_event_id(), "c1", "alice", "group", "t", ("alice", "bob"), 1)
    sent = MessageSent(new_event_id(), "c1", "alice", "m1", "text/plain", "héllo", 2)
    for command in (created, sent):
        assert decode_command(encode_command(command), LIMITS) == command
    event = TimelineEvent(sent, event_no=2, seq=1, ts_ms=9)
    assert decode_timeline(encode_timeline(event), LIMITS) == event
    assert decode_delivery(encode_delivery(Delivery("bob", event)), LIMITS) == Delivery(
        "bob", event
    )
    entry = InboxEntry("bob", 4, 9, event)
    assert decode_inbox(encode_inbox(entry), LIMITS) == entry


def test_encode_deliveries_matches_encode_delivery() -> None:
    sent = MessageSent(new_event_id(), "c1", "alice", "m1", "text/plain", "x", 2)
    event = TimelineEvent(sent, 1, 1, 3)
    for user, raw in encode_deliveries(event, ["alice", "bob"]):
        assert orjson.loads(raw) == orjson.loads(encode_delivery(Delivery(user, event)))


@pytest.mark.parametrize(
    ("raw", "error", "reason"),
    [
        (b"{not json", DecodeError, "not valid JSON"),
        (b'"a string"', DecodeError, "must be a JSON object"),
        (b'{"v":1,"body":"\xff"}', DecodeError, "not valid JSON"),
        (orjson.dumps(message(v=2)), DecodeError, "unsupported schema version 2"),
        (orjson.dumps(message(type="message.exploded")), DecodeError, "unknown event type"),
        (
            orjson.dumps({k: v for k, v in message().items() if k != "sender_id"}),
            ValidationError,
            "'sender_id'",
        ),
        (orjson.dumps(message(body="x" * 65)), ValidationError, "larger than 64 bytes"),
        (orjson.dumps(message(body="é" * 33)), ValidationError, "larger than 64 bytes"),
        (orjson.dumps(message(body="")), ValidationError, "must not be empty"),
        (orjson.dumps(message(ts_ms="yesterday")), ValidationError, "'ts_ms'"),
        (orjson.dumps(message(ts_ms=True)), ValidationError, "'ts_ms'"),
        (orjson.dumps(message(ts_ms=2**63)), ValidationError, "'ts_ms' must be at most"),
        (orjson.dumps(message(event_id="nope")), ValidationError, "UUID"),
        (orjson.dumps(message(sender_id="has space")), ValidationError, "'sender_id'"),
        (orjson.dumps(message(conversation_id="x" * 129)), ValidationError, "'conversation_id'"),
    ],
)
def test_bad_input_gets_a_clear_reason(raw: bytes, error: type[Exception], reason: str) -> None:
    with pytest.raises(error, match=reason):
        decode_command(raw, LIMITS)


def created(**overrides: object) -> bytes:
    data: dict[str, object] = {
        "v": 1,
        "type": "conversation.created",
        "event_id": new_event_id(),
        "conversation_id": "c1",
        "actor_id": "alice",
        "kind": "group",
        "title": "",
        "members": ["alice", "bob"],
        "ts_ms": 1,
    }
    data.update(overrides)
    return orjson.dumps(data)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"kind": "channel"}, "'kind'"),
        ({"members": []}, "non-empty list"),
        ({"members": ["alice", "alice"]}, "twice"),
        ({"members": ["alice", "b", "c", "d"]}, "at most 3 members"),
        ({"members": ["bob", "carol"]}, "creator"),
        ({"kind": "direct", "members": ["alice", "bob", "carol"]}, "exactly 2"),
    ],
)
def test_conversation_rules_checked_at_decode(overrides: dict[str, object], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        decode_command(created(**overrides), LIMITS)


def test_timestamps_no_table_can_hold_are_refused_everywhere() -> None:
    """A timeline event or inbox entry from 2**63 ms crashed the sinks (no DateTime holds
    it) over and over: it must be refused at decode, so the stages dead-letter it."""
    sent = MessageSent(new_event_id(), "c1", "alice", "m1", "text/plain", "x", 2)
    event = TimelineEvent(sent, event_no=1, seq=1, ts_ms=MAX_TS_MS)
    assert decode_timeline(encode_timeline(event), LIMITS) == event
    far = TimelineEvent(sent, event_no=1, seq=1, ts_ms=MAX_TS_MS + 1)
    with pytest.raises(ValidationError, match="'ts_ms' must be at most"):
        decode_timeline(encode_timeline(far), LIMITS)
    with pytest.raises(ValidationError, match="'ts_ms' must be at most"):
        decode_delivery(encode_delivery(Delivery("bob", far)), LIMITS)
    with pytest.raises(ValidationError, match="'ts_ms' must be at most"):
        decode_inbox(encode_inbox(InboxEntry("bob", 1, 2**63, event)), LIMITS)


def test_a_record_without_value_is_named_a_tombstone() -> None:
    for decode in (decode_command, decode_timeline, decode_delivery, decode_inbox):
        with pytest.raises(DecodeError, match="no value"):
            decode(None, LIMITS)


def test_ids_with_a_trailing_newline_are_refused() -> None:
    with pytest.raises(ValidationError, match="'sender_id'"):
        decode_command(orjson.dumps(message(sender_id="alice\n")), LIMITS)


def test_event_ids_are_normalised_to_canonical_uuids() -> None:
    upper = "5899B688-0000-4000-8000-000000000001"
    command = decode_command(orjson.dumps(message(event_id=upper)), LIMITS)
    assert command.event_id == upper.lower()


def test_the_large_flag_is_encoded_only_when_set_and_old_records_decode() -> None:
    sent = MessageSent(new_event_id(), "c1", "alice", "m1", "text/plain", "x", 2)
    small = TimelineEvent(sent, event_no=2, seq=1, ts_ms=9)
    large = TimelineEvent(sent, event_no=3, seq=2, ts_ms=9, large=True)
    assert "large" not in orjson.loads(encode_timeline(small))  # as records were before
    assert orjson.loads(encode_timeline(large))["large"] is True
    assert decode_timeline(encode_timeline(large), LIMITS) == large
    assert decode_timeline(encode_timeline(small), LIMITS).large is False
    for user, raw in encode_deliveries(large, ["bob"]):
        assert decode_delivery(raw, LIMITS) == Delivery(user, large)
    bad = orjson.loads(encode_timeline(large)) | {"large": 1}
    with pytest.raises(ValidationError, match="'large' must be a boolean"):
        decode_timeline(orjson.dumps(bad), LIMITS)


def test_a_group_creation_is_delivered_without_its_members_and_title() -> None:
    members = tuple(f"user{n}" for n in range(500))
    created = ConversationCreated(new_event_id(), "g", "user0", "group", "t" * 200, members, 5)
    event = TimelineEvent(created, event_no=1, seq=0, ts_ms=5)
    view = delivery_view(event)
    assert view.command == replace(created, members=("user0",), title="")
    assert (view.event_no, view.seq, view.ts_ms) == (1, 0, 5)
    # it still decodes as the event it stands for, as the sync stage reads it
    [(_, raw)] = encode_deliveries(view, ["user7"])
    assert len(raw) < 400
    assert decode_delivery(raw, Limits(1_000, 1_000)).event == view
    direct = TimelineEvent(replace(created, kind="direct", members=("a", "b"), title=""), 1, 0, 5)
    assert delivery_view(direct) is direct
