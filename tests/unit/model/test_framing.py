from __future__ import annotations

import orjson
import pytest

from pipeline.errors import EventError
from pipeline.model.events import (
    Delivery,
    InboxEntry,
    Limits,
    TimelineEvent,
    decode_delivery,
    decode_inbox,
    encode_deliveries,
    encode_inbox,
)
from pipeline.model.framing import EventCache, inbox_record
from pipeline.sdk.producer import message

LIMITS = Limits(max_body_bytes=1000, max_group_size=100)


EVENT = TimelineEvent(message("c1", "alice", 'hi "there" \\ é'), event_no=3, seq=2, ts_ms=1_000)


def event() -> TimelineEvent:
    return EVENT


def test_deliveries_of_one_event_are_decoded_once_and_equal_the_slow_path() -> None:
    cache = EventCache(LIMITS)
    records = encode_deliveries(event(), ["bob", "carol", "dave"])
    for user, raw in records:
        delivery, event_bytes = cache.delivery(raw)
        assert delivery == decode_delivery(raw, LIMITS) == Delivery(user, event())
        spliced = inbox_record(user, 7, 1_500, event_bytes)
        assert orjson.loads(spliced) == orjson.loads(
            encode_inbox(InboxEntry(user, 7, 1_500, event()))
        )
        assert cache.inbox(spliced) == decode_inbox(spliced, LIMITS)
    assert cache.hits >= 4


@pytest.mark.parametrize(
    "raw",
    [
        None,
        b"",
        b"junk",
        b'{"v":1,"user_id":"bad id","event":{}}',
        b'{"v":1,"user_id":"bob","event":{"v":1}}',
        b'{"v":2,"user_id":"bob","event":{}}',
    ],
)
def test_what_the_slow_path_refuses_the_fast_one_refuses_too(raw: bytes | None) -> None:
    with pytest.raises(EventError):
        decode_delivery(raw, LIMITS)
    with pytest.raises(EventError):
        EventCache(LIMITS).delivery(raw)


def test_other_framings_still_decode() -> None:
    good = orjson.loads(encode_deliveries(event(), ["bob"])[0][1])
    reordered = orjson.dumps({"event": good["event"], "user_id": "bob", "v": 1})
    delivery, event_bytes = EventCache(LIMITS).delivery(reordered)
    assert delivery == Delivery("bob", event())
    assert orjson.loads(event_bytes) == good["event"]
    entry = orjson.dumps(
        {"ts_ms": 5, "event": good["event"], "sync_seq": 1, "user_id": "bob", "v": 1}
    )
    assert EventCache(LIMITS).inbox(entry) == InboxEntry("bob", 1, 5, event())


def test_inbox_limits_apply_on_the_fast_path() -> None:
    body = orjson.dumps(orjson.loads(encode_deliveries(event(), ["bob"])[0][1])["event"])
    for bad in (inbox_record("bob", 0, 5, body), inbox_record("bob", 1, 2**63, body)):
        with pytest.raises(EventError):
            EventCache(LIMITS).inbox(bad)
