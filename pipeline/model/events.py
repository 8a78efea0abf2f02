"""Event schemas and the one codec (orjson).

Commands are what producers publish to ``im.messages``; a :class:`TimelineEvent`
is a command the sequencer accepted, with its place in the conversation; a
:class:`Delivery` is one timeline event for one receiver (``im.sync``); an
:class:`InboxEntry` is a delivery with its per-user ``sync_seq`` (``im.inbox``).
Every encoded record carries ``"v": SCHEMA_VERSION``. Nothing past
:func:`decode_command` and friends sees a raw dict.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

import orjson

from pipeline.errors import DecodeError, ValidationError

SCHEMA_VERSION = 1

MAX_ID_CHARS = 128
MAX_TITLE_CHARS = 256
MAX_ADMINS = 100  # named at a group's creation; more are made with member.role_set
MAX_CONTENT_TYPE_CHARS = 64
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+\-]*")  # always used with fullmatch
CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# ClickHouse's DateTime is seconds in a UInt32: nothing after 2106-02-07
MAX_TS_MS = (2**32 - 1) * 1000
# seqs and event numbers: a signed 64-bit integer, what any JSON reader (a Java long)
# and ClickHouse's UInt64 hold
MAX_COUNTER = 2**63 - 1

ConversationKind = Literal["direct", "group"]
EntryKind = Literal["message", "created", "joined", "left", "role", "read", "muted", "pinned"]
UserEventKind = Literal["read", "muted", "pinned"]
USER_EVENT_KINDS: tuple[UserEventKind, ...] = ("read", "muted", "pinned")
Role = Literal["owner", "admin", "member"]
ROLES: tuple[Role, ...] = ("owner", "admin", "member")
"""A group member's role, highest first: owners set roles and add or remove anyone;
admins add members and remove plain members; members only leave (rules in
pipeline/model/roles.py)."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_body_bytes: int = 32_768
    max_group_size: int = 10_000


class LimitSettings(Protocol):
    """Where limits come from (``Settings.pipeline``): the event model takes them as
    values and knows nothing of the process's configuration."""

    @property
    def max_body_bytes(self) -> int: ...

    @property
    def max_group_size(self) -> int: ...


def limits_from(source: LimitSettings) -> Limits:
    return Limits(source.max_body_bytes, source.max_group_size)


@dataclass(frozen=True, slots=True)
class ConversationCreated:
    event_id: str
    conversation_id: str
    actor_id: str
    kind: ConversationKind
    title: str
    members: tuple[str, ...]
    ts_ms: int
    admins: tuple[str, ...] = ()
    """A group's first admins, members other than the creator (who is its owner);
    encoded only when there are some, so creations without them read as before."""
    type: Literal["conversation.created"] = "conversation.created"


@dataclass(frozen=True, slots=True)
class MemberJoined:
    event_id: str
    conversation_id: str
    actor_id: str
    user_id: str
    ts_ms: int
    type: Literal["member.joined"] = "member.joined"


@dataclass(frozen=True, slots=True)
class MemberLeft:
    event_id: str
    conversation_id: str
    actor_id: str
    user_id: str
    ts_ms: int
    type: Literal["member.left"] = "member.left"


@dataclass(frozen=True, slots=True)
class MessageSent:
    event_id: str
    conversation_id: str
    sender_id: str
    client_msg_id: str
    content_type: str
    body: str
    ts_ms: int
    type: Literal["message.sent"] = "message.sent"


@dataclass(frozen=True, slots=True)
class MemberRoleSet:
    """An owner gives a group member a role (``member`` takes a role away)."""

    event_id: str
    conversation_id: str
    actor_id: str
    user_id: str
    role: Role
    ts_ms: int
    type: Literal["member.role_set"] = "member.role_set"


Command = ConversationCreated | MemberJoined | MemberLeft | MemberRoleSet | MessageSent
MemberChange = MemberJoined | MemberLeft | MemberRoleSet
"""A command about one member (``user_id``) of a group, made by ``actor_id``."""


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """A command accepted into its conversation's storage timeline.

    ``event_no`` orders every event of the conversation (1, 2, 3, ...); ``seq``
    is the message's dense sequence number, or for a membership event the seq
    of the last message before it. ``ts_ms`` is the sequencer's clock, never
    decreasing within a conversation. ``large``: the conversation is read
    diffused from this event on (see pipeline/model/sequencing.py); encoded only when
    true, so records written before it existed decode as they were.
    """

    command: Command
    event_no: int
    seq: int
    ts_ms: int
    large: bool = False

    @property
    def conversation_id(self) -> str:
        return self.command.conversation_id

    @property
    def entry_kind(self) -> EntryKind:
        return ENTRY_KINDS[self.command.type]


@dataclass(frozen=True, slots=True)
class UserEvent:
    """A user's own event about one of their conversations: it goes to ``im.sync``
    (key: the user) and into that user's sync timeline only, never into the
    conversation's log, so every device of the user learns it by cursor.

    ``read``: the user has read the conversation up to ``seq`` (markers only move
    forward: the sync stage drops one that does not, pipeline/model/syncing.py);
    ``muted`` / ``pinned``: the setting is now ``on``. ``device_id``: where it
    was made (a device may skip its own)."""

    event_id: str
    user_id: str
    conversation_id: str
    kind: UserEventKind
    seq: int
    on: bool
    device_id: str
    ts_ms: int
    type: Literal["user.event"] = "user.event"


Event = TimelineEvent | UserEvent
"""What a delivery (and so a sync entry) holds."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One timeline event for one receiver, or one of the user's own events, before
    it has a sync_seq."""

    user_id: str
    event: Event


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """One entry of a user's sync timeline."""

    user_id: str
    sync_seq: int
    ts_ms: int
    event: Event


ENTRY_KINDS: dict[str, EntryKind] = {
    "message.sent": "message",
    "conversation.created": "created",
    "member.joined": "joined",
    "member.left": "left",
    "member.role_set": "role",
}


# ---------------------------------------------------------------- encoding


def command_dict(command: Command) -> dict[str, Any]:
    data: dict[str, Any] = {"v": SCHEMA_VERSION}
    for name in command.__slots__:
        value = getattr(command, name)
        if name == "admins" and not value:
            continue  # encoded only when there are some
        data[name] = list(value) if isinstance(value, tuple) else value
    return data


def encode_command(command: Command) -> bytes:
    return orjson.dumps(command_dict(command))


def timeline_dict(event: TimelineEvent) -> dict[str, Any]:
    data = {
        "v": SCHEMA_VERSION,
        "event_no": event.event_no,
        "seq": event.seq,
        "ts_ms": event.ts_ms,
        "command": command_dict(event.command),
    }
    if event.large:
        data["large"] = True
    return data


def encode_timeline(event: TimelineEvent) -> bytes:
    return orjson.dumps(timeline_dict(event))


def user_event_dict(event: UserEvent) -> dict[str, Any]:
    return {"v": SCHEMA_VERSION, **{name: getattr(event, name) for name in event.__slots__}}


def encode_user_event(event: UserEvent) -> bytes:
    """The delivery of a user event (what goes to ``im.sync``, keyed by the user)."""
    return encode_delivery(Delivery(event.user_id, event))


def event_dict(event: Event) -> dict[str, Any]:
    return user_event_dict(event) if isinstance(event, UserEvent) else timeline_dict(event)


def encode_delivery(delivery: Delivery) -> bytes:
    return orjson.dumps(
        {"v": SCHEMA_VERSION, "user_id": delivery.user_id, "event": event_dict(delivery.event)}
    )


def encode_inbox(entry: InboxEntry) -> bytes:
    return orjson.dumps(
        {
            "v": SCHEMA_VERSION,
            "user_id": entry.user_id,
            "sync_seq": entry.sync_seq,
            "ts_ms": entry.ts_ms,
            "event": event_dict(entry.event),
        }
    )


# ---------------------------------------------------------------- decoding


def decode_command(raw: bytes | None, limits: Limits) -> Command:
    return command_from(_versioned(_load(raw)), limits)


def decode_timeline(raw: bytes | None, limits: Limits) -> TimelineEvent:
    return timeline_from(_versioned(_load(raw)), limits)


def decode_delivery(raw: bytes | None, limits: Limits) -> Delivery:
    data = _versioned(_load(raw))
    user = _id(data, "user_id")
    event = event_from(_dict(data, "event"), limits)
    if isinstance(event, UserEvent) and event.user_id != user:
        raise ValidationError("a user event goes to its own user's sync timeline only")
    return Delivery(user, event)


def decode_inbox(raw: bytes | None, limits: Limits) -> InboxEntry:
    data = _versioned(_load(raw))
    entry = InboxEntry(
        user_id=_id(data, "user_id"),
        sync_seq=_int(data, "sync_seq", minimum=1),
        ts_ms=_ts(data),
        event=event_from(_dict(data, "event"), limits),
    )
    if isinstance(entry.event, UserEvent) and entry.event.user_id != entry.user_id:
        raise ValidationError("a user event goes to its own user's sync timeline only")
    return entry


def decode_event(raw: bytes | None, limits: Limits) -> Event:
    """A delivery's event: a timeline event, or a user event."""
    return event_from(_versioned(_load(raw)), limits)


def event_from(data: dict[str, Any], limits: Limits) -> Event:
    if data.get("type") == "user.event":
        return user_event_from(data)
    return timeline_from(data, limits)


def user_event_from(data: dict[str, Any]) -> UserEvent:
    kind = data.get("kind")
    if kind not in USER_EVENT_KINDS:
        raise ValidationError(f"field 'kind' must be one of {', '.join(USER_EVENT_KINDS)}")
    on = data.get("on")
    if type(on) is not bool:
        raise ValidationError("field 'on' must be a boolean")
    seq = _int(data, "seq", minimum=1 if kind == "read" else 0)
    if kind == "read" and not on:
        raise ValidationError("a read marker is always 'on' (markers only move forward)")
    if kind != "read" and seq != 0:
        raise ValidationError(f"field 'seq' of a {kind} event must be 0")
    return UserEvent(
        event_id=_event_id(data),
        user_id=_id(data, "user_id"),
        conversation_id=_id(data, "conversation_id"),
        kind=kind,
        seq=seq,
        on=on,
        device_id=_id(data, "device_id"),
        ts_ms=_ts(data),
    )


def timeline_from(data: dict[str, Any], limits: Limits) -> TimelineEvent:
    get = data.get
    command, event_no, seq, ts = get("command"), get("event_no"), get("seq"), get("ts_ms")
    large = get("large", False)
    if (  # the hot path checks inline; anything off goes the slow way for its reason
        type(command) is dict
        and type(event_no) is int
        and type(seq) is int
        and type(ts) is int
        and type(large) is bool
        and 1 <= event_no <= MAX_COUNTER
        and 0 <= seq <= MAX_COUNTER
        and 0 <= ts <= MAX_TS_MS
    ):
        return TimelineEvent(command_from(command, limits), event_no, seq, ts, large)
    if type(large) is not bool:
        raise ValidationError("field 'large' must be a boolean")
    return TimelineEvent(
        command=command_from(_dict(data, "command"), limits),
        event_no=_int(data, "event_no", minimum=1),
        seq=_int(data, "seq"),
        ts_ms=_ts(data),
        large=large,
    )


def command_from(data: dict[str, Any], limits: Limits) -> Command:
    kind = data.get("type")
    if kind == "message.sent":
        fast = _message_fast(data, limits)
        if fast is not None:
            return fast
    if kind not in ENTRY_KINDS:
        if kind is None:
            raise ValidationError("missing field 'type'")
        raise DecodeError(f"unknown event type {kind!r}")
    event_id = _event_id(data)
    conversation_id = _id(data, "conversation_id")
    ts_ms = _ts(data)
    if kind == "message.sent":
        return MessageSent(
            event_id,
            conversation_id,
            sender_id=_id(data, "sender_id"),
            client_msg_id=_text(data, "client_msg_id", MAX_ID_CHARS),
            content_type=_text(data, "content_type", MAX_CONTENT_TYPE_CHARS),
            body=_body(data, limits),
            ts_ms=ts_ms,
        )
    if kind == "conversation.created":
        return _created(data, limits, event_id, conversation_id, ts_ms)
    actor, user = _id(data, "actor_id"), _id(data, "user_id")
    if kind == "member.role_set":
        role = data.get("role")
        if role not in ROLES:
            raise ValidationError(f"field 'role' must be one of {', '.join(ROLES)}")
        return MemberRoleSet(event_id, conversation_id, actor, user, role, ts_ms)
    cls = MemberJoined if kind == "member.joined" else MemberLeft
    return cls(event_id, conversation_id, actor, user, ts_ms)


def _message_fast(data: dict[str, Any], limits: Limits) -> MessageSent | None:
    """MessageSent when every field is plainly valid (the same rules as below, checked
    inline: a decode is on every stage's hot path); None sends it the slow way."""
    get = data.get
    event_id, conv, sender = get("event_id"), get("conversation_id"), get("sender_id")
    cmid, content_type, body, ts = (
        get("client_msg_id"),
        get("content_type"),
        get("body"),
        get("ts_ms"),
    )
    ok = (
        type(event_id) is str
        and CANONICAL_UUID.fullmatch(event_id) is not None
        and type(conv) is str
        and 0 < len(conv) <= MAX_ID_CHARS
        and ID_PATTERN.fullmatch(conv) is not None
        and type(sender) is str
        and 0 < len(sender) <= MAX_ID_CHARS
        and ID_PATTERN.fullmatch(sender) is not None
        and type(cmid) is str
        and 0 < len(cmid) <= MAX_ID_CHARS
        and type(content_type) is str
        and 0 < len(content_type) <= MAX_CONTENT_TYPE_CHARS
        and type(body) is str
        and len(body) > 0
        and len(body) * 4 <= limits.max_body_bytes
        and type(ts) is int
        and 0 <= ts <= MAX_TS_MS
    )
    if not ok:
        return None
    return MessageSent(event_id, conv, sender, cmid, content_type, body, ts)  # type: ignore[arg-type]


def _created(
    data: dict[str, Any], limits: Limits, event_id: str, conversation_id: str, ts_ms: int
) -> ConversationCreated:
    conv_kind = data.get("kind")
    if conv_kind not in ("direct", "group"):
        raise ValidationError("field 'kind' must be 'direct' or 'group'")
    members = data.get("members")
    if not isinstance(members, list) or not members:
        raise ValidationError("field 'members' must be a non-empty list of user ids")
    checked = tuple(_valid_id("members[]", m) for m in members)
    if len(set(checked)) != len(checked):
        raise ValidationError("field 'members' lists a user twice")
    if len(checked) > limits.max_group_size:
        raise ValidationError(f"a conversation has at most {limits.max_group_size} members")
    actor = _id(data, "actor_id")
    if actor not in checked:
        raise ValidationError("the creator (actor_id) must be one of the members")
    if conv_kind == "direct" and len(checked) != 2:
        raise ValidationError("a direct conversation has exactly 2 members")
    return ConversationCreated(
        event_id,
        conversation_id,
        actor_id=actor,
        kind=conv_kind,
        title=_text(data, "title", MAX_TITLE_CHARS, allow_empty=True),
        members=checked,
        ts_ms=ts_ms,
        admins=_admins(data.get("admins", []), conv_kind, actor, checked),
    )


def _admins(
    admins: Any, kind: ConversationKind, actor: str, members: tuple[str, ...]
) -> tuple[str, ...]:
    if not isinstance(admins, list):
        raise ValidationError("field 'admins' must be a list of user ids")
    checked = tuple(_valid_id("admins[]", a) for a in admins)
    if len(checked) > MAX_ADMINS:
        raise ValidationError(f"a group is created with at most {MAX_ADMINS} admins")
    if checked and kind == "direct":
        raise ValidationError("a direct conversation has no admins")
    if len(set(checked)) != len(checked):
        raise ValidationError("field 'admins' lists a user twice")
    if actor in checked:
        raise ValidationError("the creator is the group's owner, not one of its admins")
    if not set(checked) <= set(members):
        raise ValidationError("every admin must be one of the members")
    return checked


def _load(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        raise DecodeError("the record has no value (a tombstone)")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DecodeError("an event must be a JSON object")
    return data


def _versioned(data: dict[str, Any]) -> dict[str, Any]:
    version = data.get("v")
    if version != SCHEMA_VERSION:
        raise DecodeError(f"unsupported schema version {version!r} (expected {SCHEMA_VERSION})")
    return data


def _dict(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    if not isinstance(value, dict):
        raise ValidationError(f"field {name!r} must be an object")
    return value


def _int(data: dict[str, Any], name: str, minimum: int = 0) -> int:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValidationError(f"field {name!r} must be an integer >= {minimum}")
    if value > MAX_COUNTER:
        raise ValidationError(f"field {name!r} must be at most {MAX_COUNTER}")
    return value


def _ts(data: dict[str, Any]) -> int:
    """A timestamp in ms that every table can store (a larger one broke the sinks)."""
    value = _int(data, "ts_ms")
    if value > MAX_TS_MS:
        raise ValidationError(f"field 'ts_ms' must be at most {MAX_TS_MS} (year 2106)")
    return value


def _text(data: dict[str, Any], name: str, max_chars: int, allow_empty: bool = False) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise ValidationError(f"field {name!r} must be a string")
    if not value and not allow_empty:
        raise ValidationError(f"field {name!r} must not be empty")
    if len(value) > max_chars:
        raise ValidationError(f"field {name!r} is longer than {max_chars} characters")
    return value


def _id(data: dict[str, Any], name: str) -> str:
    return _valid_id(name, data.get(name))


def _valid_id(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"field {name!r} must be a string id")
    if not value or len(value) > MAX_ID_CHARS or not ID_PATTERN.fullmatch(value):
        raise ValidationError(
            f"field {name!r} must be 1-{MAX_ID_CHARS} characters of letters, digits and ._:@+-"
        )
    return value


def _event_id(data: dict[str, Any]) -> str:
    value = data.get("event_id")
    if not isinstance(value, str):
        raise ValidationError("field 'event_id' must be a UUID string")
    if CANONICAL_UUID.fullmatch(value):
        return value  # what the SDK writes: no need to parse it
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValidationError("field 'event_id' must be a UUID string") from None


def _body(data: dict[str, Any], limits: Limits) -> str:
    raw = data.get("body")
    body = _text(data, "body", max_chars=len(raw) if isinstance(raw, str) else 0)
    # a char takes 1 to 4 bytes: count the bytes only when the length cannot tell
    chars, limit = len(body), limits.max_body_bytes
    if chars > limit or (chars * 4 > limit and len(body.encode()) > limit):
        raise ValidationError(f"field 'body' is larger than {limits.max_body_bytes} bytes")
    return body


def entry_subject(command: Command) -> str:
    """A sync entry's ``subject_id``: the member a membership or role entry is about."""
    return "" if isinstance(command, MessageSent | ConversationCreated) else command.user_id


def entry_body(command: Command) -> str:
    """A sync entry's ``body``: a message's content, the new role of a ``role``
    entry, else empty."""
    if isinstance(command, MessageSent):
        return command.body
    if isinstance(command, MemberRoleSet):
        return command.role
    return ""


EntryColumns = tuple[str, int, int, EntryKind, str, str, str, str, str, str]
"""conversation_id, event_no, seq, kind, event_id, sender_id, subject_id,
client_msg_id, content_type, body: what a sync entry shows of its event."""


def entry_columns(event: Event) -> EntryColumns:
    """A sync entry's columns (the same in the store and in a push). A user event:
    ``sender_id`` is the user, ``subject_id`` the device it was made on, ``seq``
    the read marker; ``body`` of a mute or pin is ``on`` or ``off``."""
    if isinstance(event, UserEvent):
        body = "" if event.kind == "read" else ("on" if event.on else "off")
        return (
            event.conversation_id,
            0,
            event.seq,
            event.kind,
            event.event_id,
            event.user_id,
            event.device_id,
            "",
            "",
            body,
        )
    c = event.command
    message = c if isinstance(c, MessageSent) else None
    return (
        c.conversation_id,
        event.event_no,
        event.seq,
        event.entry_kind,
        c.event_id,
        message.sender_id if message else c.actor_id,  # type: ignore[union-attr]
        entry_subject(c),
        message.client_msg_id if message else "",
        message.content_type if message else "",
        entry_body(c),
    )


def new_event_id() -> str:
    return str(uuid.uuid4())


def delivery_view(event: TimelineEvent) -> TimelineEvent:
    """What a delivery (and so an inbox entry) embeds of ``event``: the event itself,
    except that a group's creation lists only its creator as members and has no
    title nor admins. A receiver's sync entry shows neither, and the whole event in each of n
    deliveries would write n copies of n members (a 1,660-member creation with a
    60 KB title: 200 MB in one transaction). The full event stays on im.timeline;
    the members are on im.members too."""
    command = event.command
    if not isinstance(command, ConversationCreated) or command.kind != "group":
        return event
    if len(command.members) == 1 and not command.title and not command.admins:
        return event
    summary = replace(command, members=(command.actor_id,), title="", admins=())
    return replace(event, command=summary)


def encode_deliveries(
    event: TimelineEvent, users: Sequence[str], body: bytes | None = None
) -> list[tuple[str, bytes]]:
    """``encode_delivery`` for many receivers of one event, encoding the event once
    (or not at all: ``body`` is its ``encode_timeline``, when the caller has it)."""
    body = body if body is not None else encode_timeline(event)
    head = b'{"v":%d,"user_id":' % SCHEMA_VERSION
    return [(user, head + orjson.dumps(user) + b',"event":' + body + b"}") for user in users]
