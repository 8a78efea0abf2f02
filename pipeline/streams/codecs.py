"""faust codecs for imstream's topics: imstream's own orjson encoders and decoders.

A value is decoded by the function the pipeline itself uses for that topic (the
same checks, the same version rule), then turned into the typed records of
:mod:`pipeline.streams.records`; encoding goes the other way, so a record an app
forwards is byte-compatible with what the pipeline writes. A value that does not
decode raises, and faust skips that event with a logged ``ValueDecodeError``: a
consumer tolerates what it cannot read (a newer ``v``, an event kind it does not
know), as docs/streams.md asks of every consumer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from faust.serializers.codecs import Codec

from pipeline.model import events
from pipeline.model.events import Limits
from pipeline.streams import records


class RecordCodec(Codec):
    """bytes <-> a typed record, through a decoder and an encoder of the pipeline."""

    def __init__(
        self, decode: Callable[[bytes], Any], encode: Callable[[Any], bytes], name: str
    ) -> None:
        super().__init__()
        self._decode = decode
        self._encode = encode
        self.name = name

    def _loads(self, s: bytes) -> Any:
        return self._decode(s)

    def _dumps(self, s: Any) -> bytes:
        return self._encode(s)

    def __repr__(self) -> str:
        return f"<imstream codec {self.name}>"


def timeline_codec(limits: Limits) -> RecordCodec:
    return RecordCodec(
        lambda raw: records.timeline_record(events.decode_timeline(raw, limits)),
        lambda record: events.encode_timeline(records.timeline_of(record)),
        "timeline",
    )


def command_codec(limits: Limits) -> RecordCodec:
    return RecordCodec(
        lambda raw: records.command_record(events.decode_command(raw, limits)),
        lambda record: events.encode_command(records.command_of(record)),
        "command",
    )


def inbox_codec(limits: Limits) -> RecordCodec:
    return RecordCodec(
        lambda raw: records.inbox_record(events.decode_inbox(raw, limits)),
        lambda record: events.encode_inbox(records.inbox_of(record)),
        "inbox",
    )
