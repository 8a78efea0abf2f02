"""The gateway's API as OpenAPI 3.0, served at GET /openapi.json."""

from __future__ import annotations

import copy
from typing import Any

from pipeline.model.events import (
    ENTRY_KINDS,
    ID_PATTERN,
    MAX_ADMINS,
    MAX_CONTENT_TYPE_CHARS,
    MAX_COUNTER,
    MAX_ID_CHARS,
    MAX_TITLE_CHARS,
    USER_EVENT_KINDS,
)
from pipeline.read import conversations, history, sync_timeline

MAX_QUERY_INT = 2**62
BODY_CHARS = 32_768
"""A message body's length as stated in SPEC; :func:`spec` states the deployment's
PIPELINE_MAX_BODY_BYTES instead. The server's bound is in UTF-8 bytes, which JSON
Schema cannot state: no body of more characters than that fits, so it is the
characters' bound too (a body within it in characters can still be refused with
400 for its bytes)."""


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "400": _json(_ref("Error"), "invalid request: the reason says which field"),
    "408": _json(_ref("Error"), "the request body did not arrive within GATEWAY_BODY_TIMEOUT_S"),
    "413": _json(_ref("Error"), "request body over GATEWAY_MAX_REQUEST_BYTES"),
    "401": _json(_ref("Error"), "missing, malformed, forged or expired token"),
    "403": _json(
        _ref("Error"), "not a member / not your device / the group's roles do not allow it"
    ),
    "503": _json(
        _ref("Error"),
        "Kafka or ClickHouse unavailable: retry after Retry-After; request_id names the "
        "log line with the details",
    ),
}
LIMITED = {
    "429": _json(
        _ref("Error"), "over one of the user's limits: the Retry-After header says when to retry"
    )
}
ACCEPTED = {"202": _json(_ref("Accepted"), "in the log; sequencing follows"), **ERRORS, **LIMITED}


ID = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_ID_CHARS,
    # $(?!\n): Python's $ also matches before a final newline; ECMA's never does
    "pattern": f"^{ID_PATTERN.pattern}$(?!\\n)",
}


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": ID}


def _query_int(
    name: str, description: str, low: int = 0, high: int = MAX_QUERY_INT
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "integer", "minimum": low, "maximum": high},
    }


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


STR = {"type": "string"}
INT = {"type": "integer"}
COUNTER = {"type": "integer", "minimum": 0, "maximum": MAX_COUNTER}
OPTIONAL = {"nullable": True, "description": "optional; null is the same as absent"}

SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "imstream gateway",
        "version": "1",
        "description": "Send, history, sync pull, cursor acks; push over GET /v1/stream.",
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT (HS256, kid)"}
        },
        "schemas": {
            "Error": _obj(["error", "reason"], error=STR, reason=STR, request_id=STR),
            "Accepted": _obj(
                ["event_id", "conversation_id"],
                event_id=STR,
                conversation_id=STR,
                partition=INT,
                offset=INT,
            ),
            "Message": _obj(
                ["seq", "sender_id", "body"],
                conversation_id=STR,
                seq=INT,
                event_id=STR,
                sender_id=STR,
                client_msg_id=STR,
                content_type=STR,
                body=STR,
                client_ts_ms=INT,
                ts_ms=INT,
            ),
            "SyncEntry": _obj(
                ["sync_seq", "conversation_id", "kind"],
                sync_seq=INT,
                conversation_id=STR,
                event_no=INT,
                seq=INT,
                kind={
                    "type": "string",
                    "enum": sorted({*ENTRY_KINDS.values(), *USER_EVENT_KINDS}),
                    "description": "role: body holds the member's (subject_id) new role; "
                    "read, muted, pinned: the user's own (sender_id) events, made on device "
                    "subject_id: read up to seq, or a mute or pin set (body on or off)",
                },
                event_id=STR,
                sender_id=STR,
                subject_id=STR,
                client_msg_id=STR,
                content_type=STR,
                body=STR,
                ts_ms=INT,
                large={
                    "type": "boolean",
                    "description": "a large group's membership change: its messages after "
                    "seq come in groups of a pull and as group_message pushes, not here",
                },
            ),
            "GroupPage": _obj(
                ["conversation_id", "after", "messages", "head"],
                conversation_id=STR,
                after={"type": "integer", "description": "the seq this page reads after"},
                messages={"type": "array", "items": _ref("Message")},
                head={"type": "integer", "description": "the last seq this device may read now"},
                until={"type": "integer", "description": "present if the user left: their last"},
            ),
            "GroupCursors": {
                "type": "object",
                "description": "large group id -> the last seq the device applied",
                "additionalProperties": COUNTER,
            },
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/v1/me": {
            "get": {
                "summary": "who the token names",
                "responses": {
                    "200": _json(_obj(["user_id", "device_id"], user_id=STR, device_id=STR), "ok"),
                    **ERRORS,
                },
            }
        },
        "/v1/conversations": {
            "post": {
                "summary": "create a group (the caller is a member and its owner)",
                "description": "admins are its first admins (added as members if not "
                "listed; the caller, its owner, is not one). Ids starting with dm: are "
                "reserved for direct conversations "
                "(400): POST /v1/direct makes the one between two users. Without "
                "conversation_id the gateway picks an unguessable one (g-<22 characters>, "
                "in the answer): a chosen id can be probed (409 says it is taken), a "
                "picked one cannot be guessed",
                "requestBody": _body(
                    _obj(
                        ["members"],
                        conversation_id={**ID, "not": {"pattern": "^dm:"}, **OPTIONAL},
                        title={**STR, "maxLength": MAX_TITLE_CHARS, **OPTIONAL},
                        members={"type": "array", "items": ID, "maxItems": 10_000},
                        admins={"type": "array", "items": ID, "maxItems": MAX_ADMINS, **OPTIONAL},
                    )
                ),
                "responses": {**ACCEPTED, "409": _json(_ref("Error"), "id already taken")},
            }
        },
        "/v1/direct": {
            "post": {
                "summary": "create the 1:1 conversation with a peer",
                "requestBody": _body(_obj(["peer"], peer=ID)),
                "responses": {**ACCEPTED, "409": _json(_ref("Error"), "already exists")},
            }
        },
        "/v1/conversations/{cid}": {
            "get": {
                "summary": "a conversation and its current members (members only); a "
                "group's roles: its owners and admins, {user: role}",
                "parameters": [_path_param("cid")],
                "responses": {"200": _json({"type": "object"}, "ok"), **ERRORS},
            }
        },
        "/v1/conversations/{cid}/members": {
            "post": {
                "summary": "add a member (by an owner or admin of a group)",
                "parameters": [_path_param("cid")],
                "requestBody": _body(_obj(["user_id"], user_id=ID)),
                "responses": {**ACCEPTED, "409": _json(_ref("Error"), "already a member")},
            }
        },
        "/v1/conversations/{cid}/members/{uid}": {
            "delete": {
                "summary": "leave (anyone but a group's last owner), or remove a member "
                "(owners remove anyone, admins plain members)",
                "parameters": [_path_param("cid"), _path_param("uid")],
                "responses": {
                    **ACCEPTED,
                    "409": _json(_ref("Error"), "not a member, or the last owner leaving"),
                },
            }
        },
        "/v1/conversations/{cid}/members/{uid}/role": {
            "put": {
                "summary": "set a member's role (by an owner): owner, admin or member",
                "description": "a group always keeps an owner: the last one cannot step "
                "down (409) before making another member an owner",
                "parameters": [_path_param("cid"), _path_param("uid")],
                "requestBody": _body(_obj(["role"], role={"enum": ["owner", "admin", "member"]})),
                "responses": {
                    **ACCEPTED,
                    "409": _json(
                        _ref("Error"),
                        "not a member, already that role, the last owner stepping down, or "
                        "a group without roles (made before they existed)",
                    ),
                },
            }
        },
        "/v1/conversations/{cid}/messages": {
            "post": {
                "summary": "send a message (members only; client_msg_id dedupes retries)",
                "description": "429 past the user's send limit (GATEWAY_SENDS_PER_S after "
                "GATEWAY_SEND_BURST) or fan-out budget (a send costs its conversation's "
                "members, 1 in a read-diffused group: GATEWAY_FANOUT_PER_S after "
                "GATEWAY_FANOUT_BURST); a 429 is sent after min(Retry-After, "
                "GATEWAY_LIMITED_DELAY_S)",
                "parameters": [_path_param("cid")],
                "requestBody": _body(
                    _obj(
                        ["body"],
                        body={
                            **STR,
                            "minLength": 1,
                            "maxLength": BODY_CHARS,
                            "description": "at most PIPELINE_MAX_BODY_BYTES UTF-8 bytes "
                            "(400 past it): maxLength counts characters",
                        },
                        content_type={
                            **STR,
                            "minLength": 1,
                            "maxLength": MAX_CONTENT_TYPE_CHARS,
                            **OPTIONAL,
                        },
                        client_msg_id={
                            **STR,
                            "minLength": 1,
                            "maxLength": MAX_ID_CHARS,
                            **OPTIONAL,
                        },
                    )
                ),
                "responses": {**ACCEPTED, "413": _json(_ref("Error"), "request body too large")},
            },
            "get": {
                "summary": "history, newest first, paged by seq (members only)",
                "parameters": [
                    _path_param("cid"),
                    _query_int("before", "return seqs below this one", low=1),
                    _query_int("limit", "default 50", low=1, high=history.MAX_PAGE),
                ],
                "responses": {
                    "200": _json(
                        _obj(
                            ["messages"],
                            messages={"type": "array", "items": _ref("Message")},
                            next_before={
                                **INT,
                                "nullable": True,
                                "description": "pass as before for the next (older) page; "
                                "null once no older message is readable",
                            },
                        ),
                        "ok",
                    ),
                    **ERRORS,
                },
            },
        },
        "/v1/sync": {
            "get": {
                "summary": "the caller's sync timeline after a cursor, in order, never past a gap; "
                "and a page of each large group the device reads (read diffusion)",
                "parameters": [
                    _query_int("after", "the device's cursor (default 0)"),
                    _query_int(
                        "limit",
                        "default 100 (entries, and messages per group)",
                        low=1,
                        high=sync_timeline.MAX_PAGE,
                    ),
                    {
                        "name": "groups",
                        "in": "query",
                        "required": False,
                        "description": "the device's cursors in large groups, "
                        "<conversation>:<seq>,...; a group not named reads after the "
                        "device's acked cursor, else from the user's join",
                        "schema": {
                            "type": "string",
                            "pattern": "^([^,]+:[0-9]{1,18})?(,([^,]+:[0-9]{1,18})?)*$",
                        },
                    },
                ],
                "responses": {
                    "200": _json(
                        _obj(
                            ["entries", "cursor", "head", "caught_up", "groups"],
                            entries={"type": "array", "items": _ref("SyncEntry")},
                            cursor=INT,
                            head=INT,
                            caught_up={"type": "boolean"},
                            groups={"type": "array", "items": _ref("GroupPage")},
                        ),
                        "ok",
                    ),
                    "410": _json(
                        _ref("Error"), "cursor older than the sync retention: re-sync from history"
                    ),
                    **ERRORS,
                },
            }
        },
        "/v1/devices/{device}/cursor": {
            "put": {
                "summary": "ack the device's cursor, and its cursors in large groups (only the "
                "token's own device; 403 for a group the user has not been a member of). "
                "Acks are written at most once per device per GATEWAY_ACK_INTERVAL_MS (1 s), "
                "the highest cursor winning; this gateway's reads see them at once",
                "parameters": [_path_param("device")],
                "requestBody": _body(_obj(["cursor"], cursor=COUNTER, groups=_ref("GroupCursors"))),
                "responses": {
                    "204": {"description": "accepted: stored within the interval"},
                    **ERRORS,
                },
            }
        },
        "/v1/devices": {
            "get": {
                "summary": "the cursor of each of the caller's devices, and their group cursors",
                "responses": {
                    "200": _json(
                        _obj(
                            ["devices", "groups"],
                            devices={"type": "object", "additionalProperties": INT},
                            groups={"type": "object", "additionalProperties": _ref("GroupCursors")},
                        ),
                        "ok",
                    ),
                    **ERRORS,
                },
            }
        },
        "/v1/stream": {
            "get": {
                "summary": "WebSocket: server frames {type: hello|entry|pull|error} and {type: "
                "group_message, conversation_id, seq, entry: Message} (apply when seq is the "
                "group cursor + 1, else pull); client may send {type: ack, cursor, groups?}. "
                "Token in Authorization, or in ?token= (this route only: a browser's "
                "WebSocket cannot set a header).",
                "responses": {"101": {"description": "switching protocols"}, **ERRORS, **LIMITED},
            }
        },
    },
}


# ------------------------------------------------------------------ read state
# (docs/read-state.md)

_LAST_MESSAGE = _obj(
    ["seq", "sender_id", "content_type", "preview", "ts_ms"],
    seq=COUNTER,
    sender_id=STR,
    content_type=STR,
    preview={**STR, "description": "the body's first 100 characters"},
    ts_ms=INT,
)
SPEC["components"]["schemas"]["ConversationSummary"] = _obj(
    [
        "conversation_id",
        "kind",
        "title",
        "members",
        "last_message",
        "unread",
        "mentions",
        "muted",
        "pinned",
        "read_seq",
        "activity_ts_ms",
    ],
    conversation_id=STR,
    kind=STR,
    title=STR,
    members={
        "type": "integer",
        "nullable": True,
        "description": "current members (null: a conversation the gateway's roster does not know)",
    },
    last_message={**_LAST_MESSAGE, "nullable": True},
    unread={
        **COUNTER,
        "description": "the others' messages after max(read marker, own last message, join point)",
    },
    mentions={**COUNTER, "description": "kept for mentions: 0 until they are counted"},
    muted={"type": "boolean"},
    pinned={"type": "boolean"},
    read_seq={**COUNTER, "description": "the user's read marker (0: none yet)"},
    activity_ts_ms={**INT, "description": "the last message's ts_ms, else the creation's"},
)
_USER_EVENT_RESPONSES = {
    **ACCEPTED,
    "409": _json(_ref("Error"), "seq is not a message of the conversation (yet)"),
}
SPEC["paths"]["/v1/conversations"]["get"] = {
    "summary": "the caller's conversations: pinned first, then by last activity, newest "
    "first; each with its last message, unread count, mute, pin and read marker (the "
    "badge, a sum over every conversation, is GET /v1/unread)",
    "parameters": [
        _query_int("limit", "default 50", low=1, high=conversations.MAX_PAGE),
        {
            "name": "before",
            "in": "query",
            "required": False,
            "description": "the next_before of the previous page",
            "schema": {"type": "string", "pattern": "^[01]:[0-9]{1,18}:.+$"},
        },
    ],
    "responses": {
        "200": _json(
            _obj(
                ["conversations", "next_before"],
                conversations={"type": "array", "items": _ref("ConversationSummary")},
                next_before={
                    "type": "string",
                    "nullable": True,
                    "description": "pass as before for the next page; null after the last",
                },
            ),
            "ok",
        ),
        **ERRORS,
    },
}
SPEC["paths"]["/v1/unread"] = {
    "get": {
        "summary": "the app badge: unread messages in the caller's conversations that are "
        "not muted",
        "responses": {
            "200": _json(
                _obj(
                    ["total", "conversations", "mentions"],
                    total=COUNTER,
                    conversations={
                        **COUNTER,
                        "description": "conversations with something unread (muted too)",
                    },
                    mentions=COUNTER,
                ),
                "ok",
            ),
            **ERRORS,
        },
    }
}
SPEC["paths"]["/v1/conversations/{cid}/read"] = {
    "put": {
        "summary": "mark the conversation read up to seq (members only): every device of "
        "the caller learns it through its sync timeline (a read entry)",
        "description": "markers only move forward: one behind the caller's is accepted "
        "and changes nothing. 429 past GATEWAY_MARKS_PER_S after GATEWAY_MARK_BURST "
        "(markers, mutes and pins together). Over the WebSocket: "
        '{"type": "read", "conversation_id": ..., "seq": N}',
        "parameters": [_path_param("cid")],
        "requestBody": _body(_obj(["seq"], seq={**COUNTER, "minimum": 1})),
        "responses": _USER_EVENT_RESPONSES,
    }
}
SPEC["paths"]["/v1/conversations/{cid}/settings"] = {
    "put": {
        "summary": "mute or pin the conversation for the caller (members only), synced to "
        "every device of the caller (muted and pinned entries)",
        "description": "give muted, pinned or both; a muted conversation keeps its own "
        "unread count and does not count towards the total",
        "parameters": [_path_param("cid")],
        "requestBody": _body(
            {
                **_obj([], muted={"type": "boolean"}, pinned={"type": "boolean"}),
                "minProperties": 1,
                "additionalProperties": False,
            }
        ),
        "responses": {**ACCEPTED},
    }
}
SPEC["paths"]["/v1/conversations/{cid}/receipts"] = {
    "get": {
        "summary": "read by N of M: how many members other than the message's sender "
        "have read up to seq (members only)",
        "description": "from the conversation's distribution of read points (no row per "
        "message and member), at most 1 s old. Over the WebSocket, "
        '{"type": "receipts", "conversation_id": ..., "seq": N} watches it: a receipt '
        "frame now and whenever the count changes, at most once a second",
        "parameters": [
            _path_param("cid"),
            {**_query_int("seq", "the message", low=1), "required": True},
        ],
        "responses": {
            "200": _json(
                _obj(
                    ["conversation_id", "seq", "read", "of"],
                    conversation_id=STR,
                    seq=COUNTER,
                    read=COUNTER,
                    of=COUNTER,
                ),
                "ok",
            ),
            "409": _json(_ref("Error"), "no such message (yet)"),
            **ERRORS,
        },
    }
}


def spec(max_body_bytes: int) -> dict[str, Any]:
    """SPEC with the deployment's message body limit."""
    document = copy.deepcopy(SPEC)
    send = document["paths"]["/v1/conversations/{cid}/messages"]["post"]
    schema = send["requestBody"]["content"]["application/json"]["schema"]
    schema["properties"]["body"]["maxLength"] = max_body_bytes
    return document
