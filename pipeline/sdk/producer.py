"""The producer SDK: publish commands to ``im.messages``, keyed by conversation.

Store-then-sync: every call returns once the broker has the record on all
in-sync replicas (acks=all, idempotent producer), so an acknowledged send is
durable; sequencing, storage and fan-out follow from the log. A command that
breaks a field limit raises ValidationError before anything is sent.

    async with Producer(settings) as producer:
        await producer.create_conversation("team", "alice", ["alice", "bob"])
        await producer.send_message("team", "alice", "hi")
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType

from aiokafka import AIOKafkaProducer

from pipeline.errors import ValidationError
from pipeline.log import kafka
from pipeline.log.topics import catalogue
from pipeline.model.events import (
    Command,
    ConversationCreated,
    ConversationKind,
    MemberJoined,
    MemberLeft,
    MemberRoleSet,
    MessageSent,
    Role,
    UserEvent,
    UserEventKind,
    decode_command,
    decode_delivery,
    encode_command,
    encode_user_event,
    limits_from,
    new_event_id,
)
from pipeline.model.naming import direct_conversation_id, misnamed
from pipeline.settings import Settings


@dataclass(frozen=True, slots=True)
class Ack:
    """Where the log holds a published command."""

    event_id: str
    conversation_id: str
    partition: int
    offset: int


def now_ms() -> int:
    return int(time.time() * 1000)


class Producer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        topics = catalogue(settings)
        self.topic = topics.messages.name
        self.partitions = topics.messages.partitions
        self.sync_topic = topics.sync.name
        self.sync_partitions = topics.sync.partitions
        self.limits = limits_from(settings.pipeline)
        self._producer: AIOKafkaProducer = kafka.producer(settings)

    async def __aenter__(self) -> Producer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    def encode(self, command: Command) -> bytes:
        """The record value for ``command``, checked against every field limit."""
        raw = encode_command(command)
        decode_command(raw, self.limits)
        return raw

    async def publish(self, command: Command) -> Ack:
        return (await self.publish_many([command]))[0]

    async def publish_many(self, commands: Sequence[Command]) -> list[Ack]:
        """Publish in order (one conversation's commands stay in order); wait for all acks."""
        encoded = [self.encode(c) for c in commands]
        writer = kafka.BatchWriter(self._producer, {self.topic: self.partitions})
        for command, raw in zip(commands, encoded, strict=True):
            writer.add(self.topic, command.conversation_id.encode(), raw)
        metas = await writer.send()
        return [
            Ack(c.event_id, c.conversation_id, m.partition, m.offset)
            for c, m in zip(commands, metas, strict=True)
        ]

    async def publish_user_events(self, events: Sequence[UserEvent]) -> list[Ack]:
        """A user's own events (read markers, mutes, pins) to ``im.sync``, keyed by the
        user, where the sync stage puts them in the user's sync timeline (in order
        with everything else the user's devices get)."""
        writer = kafka.BatchWriter(self._producer, {self.sync_topic: self.sync_partitions})
        for event in events:
            raw = encode_user_event(event)
            decode_delivery(raw, self.limits)
            writer.add(self.sync_topic, event.user_id.encode(), raw)
        metas = await writer.send()
        return [
            Ack(e.event_id, e.conversation_id, m.partition, m.offset)
            for e, m in zip(events, metas, strict=True)
        ]

    async def mark_read(self, conversation_id: str, user: str, seq: int, device: str = "") -> Ack:
        """``user`` has read ``conversation_id`` up to ``seq`` (a marker behind the
        user's is dropped by the sync stage). No check that ``seq`` exists: the
        gateway's ``PUT /v1/conversations/{id}/read`` makes it."""
        event = user_event(conversation_id, user, "read", seq=seq, device=device)
        return (await self.publish_user_events([event]))[0]

    async def set_pref(
        self, conversation_id: str, user: str, pref: UserEventKind, on: bool, device: str = ""
    ) -> Ack:
        """Mute (``pref="muted"``) or pin (``"pinned"``) a conversation for ``user``."""
        if pref == "read":
            raise ValidationError("a read marker is set with mark_read")
        event = user_event(conversation_id, user, pref, on=on, device=device)
        return (await self.publish_user_events([event]))[0]

    async def create_conversation(
        self,
        conversation_id: str,
        creator: str,
        members: Iterable[str],
        *,
        kind: ConversationKind = "group",
        title: str = "",
        admins: Iterable[str] = (),
    ) -> Ack:
        """A conversation with ``creator`` among ``members``; a group's creator is its
        owner, and ``admins`` (members) its first admins."""
        everyone = list(dict.fromkeys([creator, *members]))
        command = ConversationCreated(
            new_event_id(),
            conversation_id,
            creator,
            kind,
            title,
            tuple(everyone),
            now_ms(),
            admins=tuple(admins),
        )
        reserved = misnamed(command)
        if reserved is not None:  # the sequencer would refuse it: say so now
            raise ValidationError(reserved)
        return await self.publish(command)

    async def create_direct(self, a: str, b: str) -> tuple[str, Ack]:
        conversation_id = direct_conversation_id(a, b)
        ack = await self.create_conversation(conversation_id, a, [b], kind="direct")
        return conversation_id, ack

    async def join(self, conversation_id: str, actor: str, user: str) -> Ack:
        return await self.publish(
            MemberJoined(new_event_id(), conversation_id, actor, user, now_ms())
        )

    async def leave(self, conversation_id: str, actor: str, user: str) -> Ack:
        return await self.publish(
            MemberLeft(new_event_id(), conversation_id, actor, user, now_ms())
        )

    async def set_role(self, conversation_id: str, actor: str, user: str, role: Role) -> Ack:
        """``actor`` (an owner) gives member ``user`` a role: owner, admin or member."""
        return await self.publish(
            MemberRoleSet(new_event_id(), conversation_id, actor, user, role, now_ms())
        )

    async def send_message(
        self,
        conversation_id: str,
        sender: str,
        body: str,
        *,
        content_type: str = "text/plain",
        client_msg_id: str | None = None,
    ) -> Ack:
        return await self.publish(
            message(
                conversation_id,
                sender,
                body,
                content_type=content_type,
                client_msg_id=client_msg_id,
            )
        )


def user_event(
    conversation_id: str,
    user: str,
    kind: UserEventKind,
    *,
    seq: int = 0,
    on: bool = True,
    device: str = "",
) -> UserEvent:
    """A user event; ``device`` defaults to ``sdk`` (the event names where it was made)."""
    return UserEvent(
        new_event_id(), user, conversation_id, kind, seq, on, device or "sdk", now_ms()
    )


def message(
    conversation_id: str,
    sender: str,
    body: str,
    *,
    content_type: str = "text/plain",
    client_msg_id: str | None = None,
) -> MessageSent:
    """A MessageSent command; ``client_msg_id`` defaults to a fresh one."""
    return MessageSent(
        event_id=new_event_id(),
        conversation_id=conversation_id,
        sender_id=sender,
        client_msg_id=client_msg_id or uuid.uuid4().hex,
        content_type=content_type,
        body=body,
        ts_ms=now_ms(),
    )
