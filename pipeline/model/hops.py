"""Per-hop timestamps that travel with a message, for latency by hop.

Every record that carries a message through the pipeline has a header
``imstream.t``: the wall-clock milliseconds at which the message passed each
hop so far, comma-separated in the order of :data:`STAMPS`, an empty field for
a hop it skipped (a large group's events go from the sequencer straight to the
push agent)::

    send        the producer's clock when it sent the command (its ts_ms)
    log         the broker appended the command to im.messages (LogAppendTime)
    sequenced   the sequencer wrote it to im.timeline, and its deliveries to im.sync
    synced      the sync stage wrote the entry, with its sync_seq, to im.inbox
    pushed      the push agent copied it to a gateway's push topic

Stamps travel only where a record cannot tell them itself: the sequencer's
records carry none (an event holds its send time, its command's ``ts_ms``, and
the log's, its own ``ts_ms``; a record's Kafka timestamp is when the sequencer
wrote it), so the sync stage starts the header on ``im.inbox`` and the push
agent extends it. Each stage stamps when it writes the record; the record becomes visible when
that stage's transaction commits, so a hop's time includes the previous
stage's commit and this stage's wait and work. The gateway closes the chain
when it writes the entry to a socket: the hops then add up to send → socket.
Clocks of different machines can disagree: a hop measured across two hosts is
only as good as their clock sync.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

HEADER = "imstream.t"
STAMPS = ("send", "log", "sequenced", "synced", "pushed")
SEND, LOG, SEQUENCED, SYNCED, PUSHED = range(len(STAMPS))
SOCKET = "socket"
"""The last hop: from the last stamp to the entry written to a device's socket."""

Headers = Sequence[tuple[str, bytes]]
Stamps = list[int | None]


def first(send_ms: int, log_ms: int, sequenced_ms: int) -> bytes:
    """The header value the sequencer starts the chain with."""
    return b"%d,%d,%d" % (send_ms, log_ms, sequenced_ms)


def extend(value: bytes, at: int, now_ms: int) -> bytes:
    """``value`` with the stamp of hop ``at`` (an index into STAMPS) set to ``now_ms``;
    hops between the last one stamped and ``at`` stay empty."""
    fields = value.count(b",") + 1 if value else 0
    if fields > at:
        return value  # stamped already (a record replayed through a stage)
    return value + b"," * (at - fields + (1 if value else 0)) + b"%d" % now_ms


def with_origin(value: bytes, send_ms: int, log_ms: int) -> bytes:
    """``value`` with its send and log stamps filled in where they are empty (a
    record whose first stamps are in its payload rather than its header)."""
    fields = value.split(b",") if value else []
    fields += [b""] * (2 - len(fields))
    fields[SEND] = fields[SEND] or b"%d" % send_ms
    fields[LOG] = fields[LOG] or b"%d" % log_ms
    return b",".join(fields)


def restamp(headers: Headers | None, at: int, now_ms: int) -> list[tuple[str, bytes]] | None:
    """Headers for a record made from one with ``headers``: its stamps with hop ``at``
    stamped ``now_ms``; None if it carried no stamps (nothing to measure from)."""
    chain = find(headers)
    if not chain:
        return None
    return [(HEADER, extend(chain, at, now_ms))]


def find(headers: Iterable[tuple[str, bytes]] | None) -> bytes:
    """The stamps header's value among ``headers`` (empty if there is none)."""
    for name, value in headers or ():
        if name == HEADER:
            return value
    return b""


def parse(value: bytes) -> Stamps:
    """The stamps of a header value; None for a hop not stamped. Junk reads as none."""
    if not value:
        return []
    stamps: Stamps = []
    for field in value.split(b",")[: len(STAMPS)]:
        try:
            stamps.append(int(field) if field else None)
        except ValueError:
            stamps.append(None)
    return stamps


def hops(stamps: Stamps, end_ms: int | None = None) -> list[tuple[str, float]]:
    """(hop, seconds) for each stamped hop whose predecessor is stamped too, named
    after the hop it ends at; with ``end_ms``, the last hop up to it (``socket``)."""
    found: list[tuple[str, float]] = []
    previous: int | None = None
    for index, stamp in enumerate(stamps):
        if stamp is None:
            continue
        if previous is not None:
            found.append((STAMPS[index], max(0, stamp - previous) / 1000))
        previous = stamp
    if end_ms is not None and previous is not None:
        found.append((SOCKET, max(0, end_ms - previous) / 1000))
    return found


def sent_prefix(value: bytes) -> int | None:
    """The send stamp of a header value without parsing the rest (the cheap path)."""
    head = value.partition(b",")[0]
    return int(head) if head.isdigit() else None


def sent_ms(stamps: Stamps) -> int | None:
    return stamps[SEND] if stamps else None


def now_ms() -> int:
    """The wall clock in milliseconds: what stamps are made of."""
    return int(time.time() * 1000)
