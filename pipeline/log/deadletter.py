"""Dead-letter records: the original key and value, the reason in headers.

A record that a stage cannot process (not an event, wrong version, invalid
fields, refused by the rules) is copied as it is to ``im.deadletter`` with
these headers, and its partition keeps flowing:

    imstream.reason   why it was refused, in words
    imstream.stage    which stage refused it (sequencer, sync, store, ...)
    imstream.source   <topic>/<partition>/<offset> of the original record
    imstream.kind     the class of problem, one of a small fixed set (invalid,
                      undecodable, rejected, wrong_key, wrong_partition, ...): what
                      dashboards count by; absent on dead letters written before it
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REASON = "imstream.reason"
STAGE = "imstream.stage"
SOURCE = "imstream.source"
KIND = "imstream.kind"


def dead_letter_headers(
    record: Any, stage: str, reason: str, kind: str = "invalid"
) -> list[tuple[str, bytes]]:
    return [
        (REASON, reason.encode("utf-8", "replace")),
        (STAGE, stage.encode()),
        (SOURCE, f"{record.topic}/{record.partition}/{record.offset}".encode()),
        (KIND, kind.encode()),
    ]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str
    stage: str
    source: str
    key: bytes | None
    value: bytes
    kind: str = ""

    @classmethod
    def from_record(cls, record: Any) -> DeadLetter:
        headers = {name: value.decode("utf-8", "replace") for name, value in record.headers or ()}
        return cls(
            reason=headers.get(REASON, ""),
            stage=headers.get(STAGE, ""),
            source=headers.get(SOURCE, ""),
            key=record.key,
            value=record.value or b"",
            kind=headers.get(KIND, ""),
        )
