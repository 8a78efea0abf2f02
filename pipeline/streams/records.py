"""Typed faust-streaming models of imstream's public records.

One class per record shape of docs/streams.md (the JSON Schemas in
``docs/schemas/`` are the wire contract; these mirror them field for field).
They are built by the codecs of :mod:`pipeline.streams.codecs`, which decode with
imstream's own decoders: a record that reaches an agent was checked exactly as
the pipeline checks it, and nested records (a timeline event's ``command``, an
inbox entry's ``event``) are real instances. faust-streaming 0.15.3 leaves a
nested ``faust.Record`` field a plain dict when it decodes one itself
(``lazy_coercion`` stays False), which is why decoding is not left to it.
"""

from __future__ import annotations

from typing import Any

import faust

from pipeline.model import events


class _Command(faust.Record, abstract=True):
    """What the commands share: ``type`` is the wire's ``type`` field."""

    @property
    def type(self) -> str:
        return _TYPES[type(self)]


class MessageSent(_Command, namespace="imstream.message.sent"):
    event_id: str
    conversation_id: str
    sender_id: str
    client_msg_id: str
    content_type: str
    body: str
    ts_ms: int
    """The producer's clock when it sent the message (ms since the epoch)."""


class ConversationCreated(_Command, namespace="imstream.conversation.created"):
    event_id: str
    conversation_id: str
    actor_id: str
    kind: str
    """``direct`` or ``group``."""
    title: str
    members: list[str]
    ts_ms: int
    admins: list[str] = []  # noqa: RUF012 (faust copies a field's default)
    """A group's first admins (its creator, ``actor_id``, is its owner)."""


class MemberJoined(_Command, namespace="imstream.member.joined"):
    event_id: str
    conversation_id: str
    actor_id: str
    user_id: str
    ts_ms: int


class MemberLeft(_Command, namespace="imstream.member.left"):
    event_id: str
    conversation_id: str
    actor_id: str
    user_id: str
    ts_ms: int


class MemberRoleSet(_Command, namespace="imstream.member.role_set"):
    event_id: str
    conversation_id: str
    actor_id: str
    user_id: str
    role: str
    """``owner``, ``admin`` or ``member``."""
    ts_ms: int


Command = MessageSent | ConversationCreated | MemberJoined | MemberLeft | MemberRoleSet


class TimelineEvent(faust.Record, namespace="imstream.timeline"):
    """A command accepted into its conversation (``im.timeline``): ``seq`` is the
    message's dense number in the conversation (for a membership change, the seq of
    the last message before it), ``event_no`` orders every event, ``ts_ms`` is the
    log's clock (never decreasing within a conversation)."""

    event_no: int
    seq: int
    ts_ms: int
    command: Any
    """One of :data:`Command`."""
    large: bool = False

    @property
    def conversation_id(self) -> str:
        return str(self.command.conversation_id)

    @property
    def is_message(self) -> bool:
        return isinstance(self.command, MessageSent)


class UserEvent(faust.Record, namespace="imstream.user.event"):
    """A user's own event about a conversation, in their sync timeline only: ``read``
    up to ``seq`` (markers only move forward), or ``muted`` / ``pinned`` set ``on``."""

    event_id: str
    user_id: str
    conversation_id: str
    kind: str
    """``read``, ``muted`` or ``pinned``."""
    seq: int
    on: bool
    device_id: str
    ts_ms: int


class InboxEntry(faust.Record, namespace="imstream.inbox"):
    """One entry of a user's sync timeline (``im.inbox``), ``sync_seq`` dense per user."""

    user_id: str
    sync_seq: int
    ts_ms: int
    event: Any
    """A :class:`TimelineEvent`, or a :class:`UserEvent` (a read marker, a mute, a pin)."""


_COMMANDS: dict[type[Any], type[faust.Record]] = {
    events.MessageSent: MessageSent,
    events.ConversationCreated: ConversationCreated,
    events.MemberJoined: MemberJoined,
    events.MemberLeft: MemberLeft,
    events.MemberRoleSet: MemberRoleSet,
}
_TYPES: dict[type[Any], str] = {
    record: pipeline_cls.__dataclass_fields__["type"].default
    for pipeline_cls, record in _COMMANDS.items()
}
_BACK: dict[type[faust.Record], type[Any]] = {v: k for k, v in _COMMANDS.items()}


def command_record(command: events.Command) -> Command:
    fields = events.command_dict(command)
    del fields["v"], fields["type"]
    return _COMMANDS[type(command)](**fields)


def timeline_record(event: events.TimelineEvent) -> TimelineEvent:
    return TimelineEvent(
        event_no=event.event_no,
        seq=event.seq,
        ts_ms=event.ts_ms,
        command=command_record(event.command),
        large=event.large,
    )


def user_event_record(event: events.UserEvent) -> UserEvent:
    fields = events.user_event_dict(event)
    del fields["v"], fields["type"]
    return UserEvent(**fields)


def inbox_record(entry: events.InboxEntry) -> InboxEntry:
    return InboxEntry(
        user_id=entry.user_id,
        sync_seq=entry.sync_seq,
        ts_ms=entry.ts_ms,
        event=(
            UserEvent(
                **{
                    k: v
                    for k, v in events.user_event_dict(entry.event).items()
                    if k not in ("v", "type")
                }
            )
            if isinstance(entry.event, events.UserEvent)
            else timeline_record(entry.event)
        ),
    )


def command_of(record: Command) -> events.Command:
    """The pipeline's own (validated, frozen) form of a command record."""
    fields = {name: getattr(record, name) for name in record._options.fields}
    if isinstance(record, ConversationCreated):
        fields["members"] = tuple(record.members)
        fields["admins"] = tuple(record.admins)
    return _BACK[type(record)](**fields)  # type: ignore[no-any-return]


def timeline_of(record: TimelineEvent) -> events.TimelineEvent:
    return events.TimelineEvent(
        command=command_of(record.command),
        event_no=record.event_no,
        seq=record.seq,
        ts_ms=record.ts_ms,
        large=record.large,
    )


def user_event_of(record: UserEvent) -> events.UserEvent:
    return events.UserEvent(**{name: getattr(record, name) for name in record._options.fields})


def inbox_of(record: InboxEntry) -> events.InboxEntry:
    event = record.event
    return events.InboxEntry(
        user_id=record.user_id,
        sync_seq=record.sync_seq,
        ts_ms=record.ts_ms,
        event=user_event_of(event) if isinstance(event, UserEvent) else timeline_of(event),
    )
