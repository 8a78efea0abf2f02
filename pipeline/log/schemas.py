"""The published JSON Schemas of imstream's public records, built from the same
constants the decoders check (pipeline/model/events.py), so they cannot drift.

``imstream schemas --out docs/schemas`` writes them; a test keeps the committed
copies equal to what this module builds. What each topic holds, its key and
ordering, and the rules for reading it are in docs/streams.md.

A schema states every rule a single record must follow. Rules across fields that
JSON Schema cannot say are in the ``description`` (the creator is one of the
members; a body's limit is in UTF-8 bytes, ``maxLength`` counts characters).
Rules that depend on the conversation's history (only a member may send) are the
sequencer's: a record that breaks one is dead-lettered with the reason. Objects
allow fields they do not name: a reader must ignore what it does not know.
"""

from __future__ import annotations

from typing import Any

from pipeline.log.deadletter import KIND, REASON, SOURCE, STAGE
from pipeline.model.events import (
    CANONICAL_UUID,
    ENTRY_KINDS,
    ID_PATTERN,
    MAX_ADMINS,
    MAX_CONTENT_TYPE_CHARS,
    MAX_COUNTER,
    MAX_ID_CHARS,
    MAX_TITLE_CHARS,
    MAX_TS_MS,
    ROLES,
    SCHEMA_VERSION,
    USER_EVENT_KINDS,
    Limits,
)

# draft-07: what validators and generators in most languages support
DIALECT = "http://json-schema.org/draft-07/schema#"
BASE = "urn:imstream:schemas:v1:"  # an identifier, not an address

Schema = dict[str, Any]


def _whole(pattern: str) -> str:
    """``pattern`` matching a whole string. ``(?!\\n)``: Python's re, and so Python's
    validators, let ``$`` match before a final newline; ECMA-262 (JSON Schema's
    dialect) does not. With it both refuse "id\\n", as the decoders do."""
    return f"^{pattern}$(?!\\n)"


def _id(what: str) -> Schema:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_ID_CHARS,
        "pattern": _whole(ID_PATTERN.pattern),
        "description": f"{what}: 1-{MAX_ID_CHARS} letters, digits and ._:@+- "
        "(starting with a letter or digit)",
    }


def _text(max_chars: int, description: str, min_chars: int = 1) -> Schema:
    return {
        "type": "string",
        "minLength": min_chars,
        "maxLength": max_chars,
        "description": description,
    }


_VERSION: Schema = {
    "const": SCHEMA_VERSION,
    "description": "schema version: a reader refuses a version it does not know",
}
_TS: Schema = {
    "type": "integer",
    "minimum": 0,
    "maximum": MAX_TS_MS,
    "description": "milliseconds since the Unix epoch (at most 2106-02-07: a DateTime's range)",
}
_EVENT_ID: Schema = {
    "type": "string",
    "pattern": _whole(CANONICAL_UUID.pattern),
    "description": "a UUID, lowercase and hyphenated; made by the producer, it makes a "
    "retried send land once (the sequencer drops a repeated event_id within its "
    "dedupe window)",
}


def _command(
    kind: str,
    fields: Schema,
    description: str,
    extra: Schema | None = None,
    optional: Schema | None = None,
) -> Schema:
    properties: Schema = {
        "v": _VERSION,
        "type": {"const": kind},
        "event_id": _EVENT_ID,
        "conversation_id": _id("the conversation"),
        **fields,
        "ts_ms": {**_TS, "description": "when the producer made it (ms since the epoch)"},
    }
    return {
        "type": "object",
        "description": description,
        "required": list(properties),
        "properties": {**properties, **(optional or {})},
        **(extra or {}),
    }


def command_schemas(limits: Limits) -> dict[str, Schema]:
    """One schema per command type, by its ``type``."""
    members = {
        "type": "array",
        "items": _id("a member"),
        "minItems": 1,
        "maxItems": limits.max_group_size,
        "uniqueItems": True,
        "description": "every member, the creator (actor_id) among them; at most "
        f"{limits.max_group_size} (the deployment's PIPELINE_MAX_GROUP_SIZE)",
    }
    return {
        "message.sent": _command(
            "message.sent",
            {
                "sender_id": _id("the sender, a member of the conversation"),
                "client_msg_id": _text(MAX_ID_CHARS, "the sending device's own id of it"),
                "content_type": _text(MAX_CONTENT_TYPE_CHARS, "e.g. text/plain"),
                "body": _text(
                    limits.max_body_bytes,
                    f"the content: at most {limits.max_body_bytes} bytes of UTF-8 (the "
                    "deployment's PIPELINE_MAX_BODY_BYTES); maxLength bounds the characters",
                ),
            },
            "a message sent to a conversation",
        ),
        "conversation.created": _command(
            "conversation.created",
            {
                "actor_id": _id("the creator, one of the members"),
                "kind": {"enum": ["direct", "group"]},
                "title": _text(MAX_TITLE_CHARS, "may be empty", min_chars=0),
                "members": members,
            },
            "a conversation made with its members; the creator (actor_id) must be one "
            "of them, and a direct conversation has exactly 2",
            extra={
                "if": {"properties": {"kind": {"const": "direct"}}},
                "then": {"properties": {"members": {"minItems": 2, "maxItems": 2}}},
            },
            optional={
                "admins": {
                    "type": "array",
                    "items": _id("an admin"),
                    "uniqueItems": True,
                    "maxItems": MAX_ADMINS,
                    "description": "a group's first admins: members other than the creator, "
                    "who is its owner (absent: none; a direct conversation has none)",
                }
            },
        ),
        "member.joined": _command(
            "member.joined",
            {"actor_id": _id("who added them"), "user_id": _id("who joined")},
            "a user joins (or is added to) a group",
        ),
        "member.left": _command(
            "member.left",
            {"actor_id": _id("who removed them"), "user_id": _id("who left")},
            "a user leaves (or is removed from) a group",
        ),
        "member.role_set": _command(
            "member.role_set",
            {
                "actor_id": _id("the owner who sets it"),
                "user_id": _id("the member it is set for"),
                "role": {
                    "enum": list(ROLES),
                    "description": "owner, admin, or member (no role)",
                },
            },
            "an owner gives a member of a group a role (the rules: docs/roles.md)",
        ),
    }


def _document(name: str, title: str, body: Schema) -> Schema:
    """A schema file. Each is whole, without $ref: any tool in any language reads it."""
    document: Schema = {"$schema": DIALECT, "$id": f"{BASE}{name}", "title": title}
    document.update(body)
    return document


def schemas(limits: Limits | None = None) -> dict[str, Schema]:
    """Every published schema, by file stem: the command on ``im.messages``, the
    timeline event on ``im.timeline``, the delivery on ``im.sync``, the inbox entry
    on ``im.inbox``, a roster record of ``im.members`` and the headers of a dead
    letter on ``im.deadletter``."""
    limits = limits or Limits()
    commands = command_schemas(limits)
    command = {
        "oneOf": list(commands.values()),
        "description": f"one of the command types ({', '.join(ENTRY_KINDS)}); a reader "
        "skips a type it does not know",
    }
    timeline: Schema = {
        "type": "object",
        "description": "a command the sequencer accepted, with its place in the conversation",
        "required": ["v", "event_no", "seq", "ts_ms", "command"],
        "properties": {
            "v": _VERSION,
            "event_no": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_COUNTER,
                "description": "1, 2, 3, ... over every event of the conversation: dense",
            },
            "seq": {
                "type": "integer",
                "minimum": 0,
                "maximum": MAX_COUNTER,
                "description": "a message's dense number in the conversation (1, 2, ...); "
                "for a membership event, the seq of the last message before it",
            },
            "ts_ms": {
                **_TS,
                "description": "the sequencer's clock: never decreases within a conversation",
            },
            "command": command,
            "large": {
                "type": "boolean",
                "description": "present and true: the conversation is read diffused from "
                "this event on (no per-receiver deliveries)",
            },
        },
    }
    user_event: Schema = {
        "type": "object",
        "description": "a user's own event about one of their conversations, in their "
        "sync timeline only (docs/read-state.md): read up to seq (markers only move "
        "forward: one behind the user's gets no entry), or a mute or pin set on or off",
        "required": [
            "v",
            "type",
            "event_id",
            "user_id",
            "conversation_id",
            "kind",
            "seq",
            "on",
            "device_id",
            "ts_ms",
        ],
        "properties": {
            "v": _VERSION,
            "type": {"const": "user.event"},
            "event_id": _EVENT_ID,
            "user_id": _id("the user: the same as the record's user_id"),
            "conversation_id": _id("the conversation"),
            "kind": {"enum": list(USER_EVENT_KINDS)},
            "seq": {
                "type": "integer",
                "minimum": 0,
                "maximum": MAX_COUNTER,
                "description": "read: the marker (read up to this seq, at least 1); else 0",
            },
            "on": {"type": "boolean", "description": "muted/pinned: set or cleared; read: true"},
            "device_id": _id("the device it was made on"),
            "ts_ms": _TS,
        },
        "if": {"properties": {"kind": {"const": "read"}}},
        "then": {"properties": {"seq": {"minimum": 1}, "on": {"const": True}}},
        "else": {"properties": {"seq": {"const": 0}}},
    }
    delivered = {"oneOf": [timeline, user_event]}
    return {
        "command": _document("command", "imstream command (im.messages)", command),
        "timeline-event": _document(
            "timeline-event", "imstream timeline event (im.timeline)", timeline
        ),
        "delivery": _document(
            "delivery",
            "imstream delivery (im.sync)",
            {
                "type": "object",
                "description": "one timeline event for one receiver, before its sync_seq "
                "(a group's creation lists only its creator and has no title here), or "
                "one of the user's own events (a read marker, a mute, a pin)",
                "required": ["v", "user_id", "event"],
                "properties": {"v": _VERSION, "user_id": _id("the receiver"), "event": delivered},
            },
        ),
        "inbox-entry": _document(
            "inbox-entry",
            "imstream inbox entry (im.inbox)",
            {
                "type": "object",
                "description": "one entry of a user's sync timeline",
                "required": ["v", "user_id", "sync_seq", "ts_ms", "event"],
                "properties": {
                    "v": _VERSION,
                    "user_id": _id("whose timeline"),
                    "sync_seq": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_COUNTER,
                        "description": "1, 2, 3, ... over the user's entries: dense, "
                        "a device's cursor",
                    },
                    "ts_ms": {**_TS, "description": "when the entry was made"},
                    "event": delivered,
                },
            },
        ),
        "roster-key": _document(
            "roster-key",
            "imstream roster key (im.members)",
            {
                "type": "array",
                "description": "[conversation] for the conversation's record, "
                "[conversation, user] for a member's (no value: they left)",
                "items": [_id("the conversation"), _id("the member")],
                "additionalItems": False,
                "minItems": 1,
                "maxItems": 2,
            },
        ),
        "roster-value": _document(
            "roster-value",
            "imstream roster value (im.members)",
            {
                "type": "object",
                "description": "a conversation's record has kind and created_by (and "
                "roles: true for a group with roles); a member's has event_no (the event "
                "that made them one, or last set their role) and their role if they have one",
                "required": ["event_no"],
                "properties": {
                    "event_no": {"type": "integer", "minimum": 1, "maximum": MAX_COUNTER},
                    "kind": {"enum": ["direct", "group"]},
                    "created_by": _id("the creator"),
                    "roles": {"const": True},
                    "role": {"enum": ["owner", "admin"]},
                },
            },
        ),
        "dead-letter-headers": _document(
            "dead-letter-headers",
            "imstream dead letter headers (im.deadletter)",
            {
                "type": "object",
                "description": "the headers of a dead letter (UTF-8 values), as an object; "
                "its key and value are the refused record's, byte for byte",
                "required": [REASON, STAGE, SOURCE],
                "properties": {
                    REASON: {"type": "string", "minLength": 1, "description": "why, in words"},
                    STAGE: {
                        "type": "string",
                        "minLength": 1,
                        "description": "the stage that refused it",
                    },
                    SOURCE: {
                        "type": "string",
                        "pattern": "^.+/[0-9]+/[0-9]+$",
                        "description": "<topic>/<partition>/<offset> of the refused record",
                    },
                    KIND: {
                        "type": "string",
                        "pattern": "^[a-z_]+$",
                        "description": "the class of problem (invalid, undecodable, rejected, "
                        "wrong_key, wrong_partition, ...); absent on older dead letters",
                    },
                },
            },
        ),
    }
