"""Deliveries and inbox entries without decoding the same event over and over.

A message to a group of n members reaches the sync stage, the sync store and
the push path as n records that all embed the same timeline event, byte for
byte. The records are framed as

    delivery:  {"v":1,"user_id":<user>,"event":<event>}
    inbox:     {"v":1,"user_id":<user>,"sync_seq":<n>,"ts_ms":<t>,"event":<event>}

so the event's bytes can be cut out, validated once and remembered
(:class:`EventCache`), and an inbox entry can be made by splicing the bytes of
its delivery's event instead of encoding it again. A record that is not framed
exactly so (written by another tool, say) is decoded the slow way, through
pipeline/model/events.py: the result is the same, only slower.
"""

from __future__ import annotations

import re

import orjson

from pipeline.errors import EventError, ValidationError
from pipeline.model.events import (
    ID_PATTERN,
    MAX_ID_CHARS,
    MAX_TS_MS,
    SCHEMA_VERSION,
    Delivery,
    Event,
    InboxEntry,
    Limits,
    TimelineEvent,
    UserEvent,
    decode_delivery,
    decode_event,
    decode_inbox,
    event_dict,
)

DELIVERY = re.compile(rb'\{"v":%d,"user_id":"([^"\\]+)","event":(\{.*\})\}' % SCHEMA_VERSION, re.S)
INBOX = re.compile(
    rb'\{"v":%d,"user_id":"([^"\\]+)","sync_seq":(\d+),"ts_ms":(\d+),"event":(\{.*\})\}'
    % SCHEMA_VERSION,
    re.S,
)


class EventCache:
    """Validated timeline events by their exact bytes (a small, bounded memo)."""

    def __init__(self, limits: Limits, size: int = 4096) -> None:
        self.limits = limits
        self.size = size
        self._events: dict[bytes, Event] = {}
        self._users: dict[bytes, str] = {}
        self.hits = 0

    def timeline(self, raw: bytes) -> TimelineEvent:
        event = self.event(raw)
        if not isinstance(event, TimelineEvent):
            raise ValidationError("a user event is not a timeline event")
        return event

    def event(self, raw: bytes) -> Event:
        """A timeline event or a user event (what deliveries and inbox entries hold).
        Only timeline events are remembered: a user event comes once (one receiver),
        and a burst of read markers would push out the events of a group's fan-out."""
        event = self._events.get(raw)
        if event is not None:
            self.hits += 1
            return event
        event = decode_event(raw, self.limits)
        if isinstance(event, UserEvent):
            return event
        if len(self._events) >= self.size:
            self._events.clear()
        self._events[raw] = event
        return event

    def user(self, raw: bytes) -> str:
        """A user id, checked once (the same receivers come back again and again)."""
        user = self._users.get(raw)
        if user is None:
            user = _user(raw)
            if len(self._users) >= self.size * 16:
                self._users.clear()
            self._users[raw] = user
        return user

    def delivery(self, raw: bytes | None) -> tuple[Delivery, bytes]:
        """The delivery and its event's bytes; EventError if it is not one."""
        match = DELIVERY.fullmatch(raw) if raw else None
        if match is not None:
            try:
                event = self.event(match[2])
                user = self.user(match[1])
            except EventError:
                pass  # let the slow path say exactly what is wrong
            else:
                if not isinstance(event, UserEvent) or event.user_id == user:
                    return Delivery(user, event), match[2]
        delivery = decode_delivery(raw, self.limits)
        return delivery, orjson.dumps(event_dict(delivery.event))

    def inbox(self, raw: bytes | None) -> InboxEntry:
        match = INBOX.fullmatch(raw) if raw else None
        if match is not None:
            try:
                event = self.event(match[4])
                user, sync_seq, ts_ms = self.user(match[1]), int(match[2]), int(match[3])
            except EventError:
                pass
            else:
                mine = not isinstance(event, UserEvent) or event.user_id == user
                if sync_seq >= 1 and ts_ms <= MAX_TS_MS and mine:
                    return InboxEntry(user, sync_seq, ts_ms, event)
        return decode_inbox(raw, self.limits)


def inbox_record(user_id: str, sync_seq: int, ts_ms: int, event: bytes) -> bytes:
    """An inbox entry around an event's bytes (what ``encode_inbox`` gives, spliced)."""
    return b'{"v":%d,"user_id":%s,"sync_seq":%d,"ts_ms":%d,"event":%s}' % (
        SCHEMA_VERSION,
        orjson.dumps(user_id),
        sync_seq,
        ts_ms,
        event,
    )


def _user(raw: bytes) -> str:
    """The id between the quotes (no escapes: the pattern refused them), by the rules
    of every id."""
    user = raw.decode("utf-8", "replace")
    if not (0 < len(user) <= MAX_ID_CHARS and ID_PATTERN.fullmatch(user)):
        raise ValidationError("field 'user_id' is not a valid id")
    return user
