"""The published JSON Schemas agree with the code both ways: what the code writes
validates, what the schemas allow decodes, and a record that breaks a schema rule
is refused by the decoder too (so the sequencer dead-letters it)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from jsonschema import Draft7Validator

from pipeline.errors import DecodeError, EventError
from pipeline.log.deadletter import dead_letter_headers
from pipeline.log.schemas import schemas
from pipeline.model import roster
from pipeline.model.events import (
    Command,
    ConversationCreated,
    Delivery,
    Limits,
    MemberJoined,
    MemberLeft,
    MessageSent,
    command_from,
    decode_command,
    decode_delivery,
    decode_event,
    decode_inbox,
    decode_timeline,
    delivery_view,
    encode_command,
    encode_deliveries,
    encode_inbox,
    encode_timeline,
    encode_user_event,
    new_event_id,
)
from pipeline.model.sequencing import Accepted, Sequencer
from pipeline.model.state import StateStore
from pipeline.model.syncing import SyncSequencer
from pipeline.sdk.producer import user_event

LIMITS = Limits(max_body_bytes=512, max_group_size=6)
SCHEMAS = schemas(LIMITS)
VALIDATORS = {name: Draft7Validator(schema) for name, schema in SCHEMAS.items()}
PUBLISHED = Path(__file__).parents[3] / "docs" / "schemas"
EXAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def valid(name: str, record: Any) -> bool:
    return VALIDATORS[name].is_valid(record)


def errors(name: str, record: Any) -> list[str]:
    return [e.message for e in VALIDATORS[name].iter_errors(record)]


def test_the_published_files_are_what_the_code_builds() -> None:
    """docs/schemas is `imstream schemas --out docs/schemas` with the default limits."""
    built = schemas()
    files = {p.name.removesuffix(".schema.json"): p for p in PUBLISHED.glob("*.schema.json")}
    assert set(files) == set(built)
    for name, path in files.items():
        assert orjson.loads(path.read_bytes()) == built[name], f"regenerate {path}"
    for schema in built.values():
        Draft7Validator.check_schema(schema)


# ------------------------------------------------------------ what the code writes


def _history(data: st.DataObject) -> list[Command]:
    """A random little history of commands on two conversations (some refused)."""
    users = ["alice", "bob", "carol", "dave", "u:1@x.org", "e" * 128]
    commands: list[Command] = []
    for conv in ("g1", "dm:alice:bob"):
        kind = "direct" if conv.startswith("dm:") else "group"
        members = (
            ("alice", "bob")
            if kind == "direct"
            else tuple(
                data.draw(st.lists(st.sampled_from(users), min_size=1, max_size=4, unique=True))
            )
        )
        title = data.draw(st.text(max_size=20)) if kind == "group" else ""
        commands.append(
            ConversationCreated(new_event_id(), conv, members[0], kind, title, members, 1)
        )
    for step in range(data.draw(st.integers(1, 25))):
        conv = data.draw(st.sampled_from(["g1", "dm:alice:bob"]))
        user = data.draw(st.sampled_from(users))
        action = data.draw(st.sampled_from(["send", "send", "join", "leave"]))
        if action == "send":
            body = data.draw(st.text(min_size=1, max_size=40))
            commands.append(
                MessageSent(new_event_id(), conv, user, f"m{step}", "text/plain", body, step)
            )
        else:
            cls = MemberJoined if action == "join" else MemberLeft
            commands.append(cls(new_event_id(), conv, user, user, step))
    return commands


@EXAMPLES
@given(st.data())
def test_every_record_the_pipeline_writes_validates(data: st.DataObject) -> None:
    """Commands through the sequencer's and sync's own rules: each command, timeline
    event, delivery (as the sequencer encodes it), inbox entry and roster record."""
    sequencer = Sequencer(
        StateStore(),
        dedupe_window_ms=1_000,
        max_group_size=6,
        read_diffusion_threshold=data.draw(st.sampled_from([0, 2])),
    )
    sync = SyncSequencer(StateStore())
    for ts, command in enumerate(_history(data)):
        assert errors("command", orjson.loads(encode_command(command))) == []
        outcome = sequencer.apply(command, ts)
        if not isinstance(outcome, Accepted):
            continue
        event = outcome.event
        body = encode_timeline(event)
        assert errors("timeline-event", orjson.loads(body)) == []
        view = delivery_view(event)
        for user, value in encode_deliveries(view, outcome.recipients, encode_timeline(view)):
            assert errors("delivery", orjson.loads(value)) == []
            entry = sync.assign(decode_delivery(value, LIMITS))
            assert entry is not None
            assert errors("inbox-entry", orjson.loads(encode_inbox(entry))) == []
            assert entry.user_id == user
            if isinstance(event.command, MessageSent):  # the receiver reads it, mutes it
                kind = data.draw(st.sampled_from(["read", "muted", "pinned"]))
                mark = user_event(event.conversation_id, user, kind, seq=event.seq)
                if kind != "read":
                    mark = user_event(
                        event.conversation_id, user, kind, on=data.draw(st.booleans())
                    )
                raw = encode_user_event(mark)
                assert errors("delivery", orjson.loads(raw)) == []
                own = sync.assign(decode_delivery(raw, LIMITS))
                if own is not None:
                    assert errors("inbox-entry", orjson.loads(encode_inbox(own))) == []
        for key, fact in roster.facts(event):
            assert errors("roster-key", orjson.loads(key)) == []
            if fact is not None:
                assert errors("roster-value", orjson.loads(fact)) == []


def test_dead_letter_headers_validate() -> None:
    class Record:
        topic, partition, offset = "im.messages", 3, 1234

    headers = dead_letter_headers(Record(), "sequencer", "not valid JSON: ...")
    assert errors("dead-letter-headers", {k: v.decode() for k, v in headers}) == []


# ------------------------------------------------------------ what the schemas allow


def _creator_among_members(command: dict[str, Any]) -> dict[str, Any]:
    """The rules across fields JSON Schema cannot state (its descriptions do): the
    creator is a member; a group's admins are other members, a direct one has none."""
    if command.get("type") == "conversation.created":
        members = command["members"]
        command = {**command, "actor_id": members[0]}
        if "admins" in command:
            group = command["kind"] == "group"
            command["admins"] = [a for a in command["admins"] if group and a in members[1:]]
    return command


def _huge_numbers(value: Any) -> bool:
    """Whether a number anywhere in ``value`` (an unknown field may hold one) is past
    what a double holds: the decoder refuses those (a number past 64 bits but within
    a double is read as a float, which only matters to a field it knows)."""
    if isinstance(value, dict):
        return any(_huge_numbers(v) for v in value.values())
    if isinstance(value, list):
        return any(_huge_numbers(v) for v in value)
    if isinstance(value, int):
        try:
            float(value)
        except OverflowError:
            return True
    return False


def _encoded(record: dict[str, Any]) -> bytes:
    return json.dumps(record).encode()  # orjson cannot write what it would refuse


def _fits_in_bytes(command: dict[str, Any]) -> bool:
    """The body's limit is in bytes; the schema's maxLength bounds characters."""
    body = command.get("body", "")
    return len(body.encode()) <= LIMITS.max_body_bytes


@EXAMPLES
@given(from_schema(SCHEMAS["command"]))
def test_commands_the_schema_allows_decode(command: dict[str, Any]) -> None:
    command = _creator_among_members(command)
    if not _fits_in_bytes(command):
        return
    if _huge_numbers(command):
        with pytest.raises(DecodeError, match="not valid JSON"):
            decode_command(_encoded(command), LIMITS)
        return
    decoded = decode_command(_encoded(command), LIMITS)
    assert decoded.event_id == command["event_id"]
    assert decoded.type == command["type"]


@settings(EXAMPLES, max_examples=50)  # a nested schema: each example takes longer
@given(from_schema(SCHEMAS["inbox-entry"]))
def test_inbox_entries_the_schema_allows_decode(entry: dict[str, Any]) -> None:
    if entry["event"].get("type") == "user.event":  # a read marker, a mute, a pin
        entry["event"]["user_id"] = entry["user_id"]  # its own user's (the description)
        if _huge_numbers(entry):
            return
        decoded_entry = decode_inbox(_encoded(entry), LIMITS)
        assert decoded_entry.event == decode_event(_encoded(entry["event"]), LIMITS)
        delivery = {"v": 1, "user_id": entry["user_id"], "event": entry["event"]}
        assert valid("delivery", delivery)
        assert decode_delivery(_encoded(delivery), LIMITS).event == decoded_entry.event
        return
    entry["event"]["command"] = _creator_among_members(entry["event"]["command"])
    if not _fits_in_bytes(entry["event"]["command"]):
        return
    if _huge_numbers(entry):
        with pytest.raises(DecodeError, match="not valid JSON"):
            decode_inbox(_encoded(entry), LIMITS)
        return
    decoded = decode_inbox(_encoded(entry), LIMITS)
    assert (decoded.user_id, decoded.sync_seq) == (entry["user_id"], entry["sync_seq"])
    timeline = decode_timeline(_encoded(entry["event"]), LIMITS)
    assert timeline == decoded.event
    delivery = {"v": 1, "user_id": entry["user_id"], "event": entry["event"]}
    assert valid("delivery", delivery)
    assert decode_delivery(_encoded(delivery), LIMITS) == Delivery(entry["user_id"], timeline)


# ------------------------------------------------------------ what the schemas refuse


def _message() -> dict[str, Any]:
    return orjson.loads(
        encode_command(MessageSent(new_event_id(), "g", "alice", "m1", "text/plain", "hi", 5))
    )


def _created() -> dict[str, Any]:
    return orjson.loads(
        encode_command(
            ConversationCreated(new_event_id(), "g", "alice", "group", "t", ("alice", "bob"), 5)
        )
    )


def _joined() -> dict[str, Any]:
    return orjson.loads(encode_command(MemberJoined(new_event_id(), "g", "alice", "bob", 5)))


Mutation = Callable[[dict[str, Any]], None]


def _set(field: str, value: Any) -> Mutation:
    def mutate(record: dict[str, Any]) -> None:
        record[field] = value

    mutate.__name__ = f"{field}={value!r:.30}"
    return mutate


def _drop(field: str) -> Mutation:
    def mutate(record: dict[str, Any]) -> None:
        del record[field]

    mutate.__name__ = f"no {field}"
    return mutate


def violations(limits: Limits = LIMITS) -> list[tuple[str, dict[str, Any]]]:
    """Commands (of conversation "g", from alice) that each break one rule of the
    schema: every required field missing, a value out of each field's range or type.
    Also used on the real broker (tests/integration/agents/test_bad_input.py)."""
    cases: list[tuple[str, dict[str, Any]]] = []
    for make in (_message, _created, _joined):
        base = make()
        mutations: list[Mutation] = [_drop(f) for f in base]
        mutations += [
            _set("v", 2),
            _set("v", "1"),
            _set("type", "message.edited"),
            _set("event_id", "not-a-uuid"),
            _set("event_id", 7),
            _set("conversation_id", ""),
            _set("conversation_id", "-g"),
            _set("conversation_id", "g h"),
            _set("conversation_id", "g" * 129),
            _set("conversation_id", "g\n"),
            _set("ts_ms", -1),
            _set("ts_ms", 2**32 * 1000),
            _set("ts_ms", 1.5),
            _set("ts_ms", True),
        ]
        if base["type"] == "message.sent":
            mutations += [
                _set("body", ""),
                _set("body", "x" * (limits.max_body_bytes + 1)),
                _set("body", 5),
                _set("client_msg_id", ""),
                _set("client_msg_id", "m" * 129),
                _set("content_type", ""),
                _set("content_type", "t" * 65),
                _set("sender_id", "é"),
            ]
        if base["type"] == "conversation.created":
            mutations += [
                _set("kind", "channel"),
                _set("members", []),
                _set("members", ["alice", "alice"]),
                _set("members", "alice"),
                _set("members", ["alice", *(f"u{i}" for i in range(limits.max_group_size))]),
                _set("members", ["alice", 5]),
                _set("title", "t" * 257),
                _set("title", None),
            ]
            direct = {**base, "kind": "direct", "members": ["alice", "bob", "carol"]}
            cases.append(("direct with 3 members", direct))
        for mutate in mutations:
            record = copy.deepcopy(base)
            mutate(record)
            cases.append((f"{base['type']}: {mutate.__name__}", record))
    return cases


@pytest.mark.parametrize(("case", "record"), violations(), ids=lambda v: str(v)[:60])
def test_what_the_schema_refuses_the_decoder_refuses(case: str, record: dict[str, Any]) -> None:
    assert not valid("command", record), f"{case}: the schema allows it"
    with pytest.raises(EventError):
        decode_command(orjson.dumps(record), LIMITS)


def test_a_reader_tolerates_fields_it_does_not_know() -> None:
    known = _message()
    record = {**known, "reactions": {"+1": 3}}
    assert valid("command", record)
    assert command_from(record, LIMITS) == command_from(known, LIMITS)


def _entry() -> dict[str, Any]:
    event = {"v": 1, "event_no": 2, "seq": 1, "ts_ms": 9, "command": _message()}
    return {"v": 1, "user_id": "bob", "sync_seq": 4, "ts_ms": 9, "event": event}


@pytest.mark.parametrize(
    ("where", "field", "value"),
    [
        ("entry", "sync_seq", 0),
        ("entry", "sync_seq", 2**63),
        ("entry", "user_id", ""),
        ("entry", "v", 2),
        ("event", "event_no", 0),
        ("event", "seq", -1),
        ("event", "seq", 2**63),
        ("event", "large", "yes"),
        ("event", "command", None),
        ("command", "sender_id", None),
    ],
)
def test_an_inbox_entry_the_schema_refuses_the_decoder_refuses(
    where: str, field: str, value: Any
) -> None:
    entry = _entry()
    target = {"entry": entry, "event": entry["event"], "command": entry["event"]["command"]}
    target[where][field] = value
    assert not valid("inbox-entry", entry)
    with pytest.raises(EventError):
        decode_inbox(_encoded(entry), LIMITS)
