"""The live views' arithmetic: what one window holds, how an event folds into it,
and how windows add up to per-minute figures. Pure: no faust, no Kafka.

Exact after a crash, by construction. faust-streaming commits its input offsets
and writes its table changelogs separately (the changelog is flushed before each
commit, so it is never behind), so after a kill -9 the app reads again the
events since its last commit, and some of their table updates are already in
the changelog. Every value here carries what it has counted, so that an event
counted once is recognised when it comes again:

* a conversation's window keeps the first and last message ``seq`` it counted.
  Seqs are dense and in order within a conversation (one partition, one
  sequencer), so its message count is ``last - first + 1`` and an event with
  ``seq <= last`` is one already counted: it is skipped whole, latency sample
  included. (The same argument as the ClickHouse rollups of migration 0003.)
* a dead-letter count is kept per dead-letter partition, with the last offset
  counted; an offset at or below it is skipped.
* active senders are a set (a key per conversation and sender): adding one
  twice changes nothing.

Each update is one table value, written as one changelog record, so a value
and the guard that protects it are never out of step.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

LATENCY_RATIO = 1.05
"""Latency buckets grow by 5%: a percentile is reported within 5% above."""

WindowKey = tuple[str, tuple[float, float]]


def latency_bucket(ms: float) -> int:
    """The bucket of a latency: 0 holds up to 1 ms, bucket b up to 1.05**b ms."""
    if ms <= 1:
        return 0
    return math.ceil(math.log(ms) / math.log(LATENCY_RATIO))


def bucket_bound(bucket: int) -> float:
    return round(LATENCY_RATIO**bucket, 1)


def fold_message(
    value: Mapping[str, Any] | None, seq: int, latency_ms: float
) -> dict[str, Any] | None:
    """A conversation's window after its message ``seq`` (``value``: what the window
    holds, empty or None for nothing yet); None: that message is already counted."""
    bucket = str(latency_bucket(latency_ms))
    if not value:
        return {"first": seq, "last": seq, "lat": {bucket: 1}}
    if seq <= value["last"]:
        return None
    lat = dict(value["lat"])
    lat[bucket] = lat.get(bucket, 0) + 1
    return {"first": value["first"], "last": seq, "lat": lat}


def fold_dead_letter(value: Mapping[str, Any] | None, offset: int) -> dict[str, Any] | None:
    """A dead-letter partition's count after the record at ``offset``; None: counted."""
    if not value:
        return {"count": 1, "offset": offset}
    if offset <= value["offset"]:
        return None
    return {"count": value["count"] + 1, "offset": offset}


def sender_key(conversation_id: str, sender_id: str) -> str:
    return f"{conversation_id}\t{sender_id}"


def dead_letter_key(kind: str, partition: int) -> str:
    return f"{kind}\t{partition}"


class Seen:
    """The last ``size`` keys added, in memory: ``add`` says whether a key is new
    here. A key it has forgotten (or never saw, after a restart) is new again; the
    table it guards decides then."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._keys: OrderedDict[Any, None] = OrderedDict()

    def add(self, key: Any) -> bool:
        if key in self._keys:
            self._keys.move_to_end(key)
            return False
        self._keys[key] = None
        if len(self._keys) > self.size:
            self._keys.popitem(last=False)
        return True


@dataclass(slots=True)
class Minute:
    """One window's figures, over every conversation."""

    start: float
    messages: int = 0
    conversations: int = 0
    senders: int = 0
    latency: Counter[int] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    top: list[tuple[str, int]] = field(default_factory=list)

    def percentile(self, q: float) -> float | None:
        """The send → stored latency (ms) under which a fraction ``q`` of the
        window's messages fall, within 5%; None for a window with none."""
        total = sum(self.latency.values())
        if not total:
            return None
        rank, running = q * total, 0
        for bucket in sorted(self.latency):
            running += self.latency[bucket]
            if running >= rank:
                return bucket_bound(bucket)
        return bucket_bound(max(self.latency))

    def as_dict(self, closed: bool) -> dict[str, Any]:
        return {
            "start": int(self.start),
            "closed": closed,
            "messages": self.messages,
            "conversations": self.conversations,
            "senders": self.senders,
            "latency_ms": {
                "p50": self.percentile(0.5),
                "p95": self.percentile(0.95),
                "p99": self.percentile(0.99),
                "count": sum(self.latency.values()),
            },
            "dead_letters": dict(sorted(self.dead_letters.items())),
            "top": [{"conversation_id": c, "messages": n} for c, n in self.top],
        }


def _window(key: Any) -> tuple[str, float]:
    """(key, window start) of a windowed table's key, as faust keeps it in memory
    (a tuple) or as it comes back from RocksDB through JSON (a list)."""
    name, (start, _end) = key
    return str(name), float(start)


def minutes(
    conversations: Iterable[tuple[Any, Mapping[str, Any]]],
    senders: Iterable[Any],
    dead_letters: Iterable[tuple[Any, Mapping[str, Any]]],
    top_n: int,
    since: float = 0.0,
) -> list[Minute]:
    """Per-window figures from the three tables' items, newest window first, for
    windows starting at ``since`` or later."""
    by_start: dict[float, Minute] = {}
    counts: dict[float, list[tuple[str, int]]] = defaultdict(list)

    def minute(start: float) -> Minute:
        if start not in by_start:
            by_start[start] = Minute(start)
        return by_start[start]

    for key, value in conversations:
        conversation, start = _window(key)
        if start < since:
            continue
        m = minute(start)
        n = value["last"] - value["first"] + 1
        m.messages += n
        m.conversations += 1
        m.latency.update({int(b): c for b, c in value["lat"].items()})
        counts[start].append((conversation, n))
    distinct: dict[float, set[str]] = defaultdict(set)
    for key in senders:
        pair, start = _window(key)
        if start >= since:
            distinct[start].add(pair.split("\t", 1)[1])
    for start, who in distinct.items():
        minute(start).senders = len(who)
    for key, value in dead_letters:
        kind_partition, start = _window(key)
        if start >= since:
            minute(start).dead_letters[kind_partition.split("\t", 1)[0]] += value["count"]
    for start, pairs in counts.items():
        pairs.sort(key=lambda pair: (-pair[1], pair[0]))
        by_start[start].top = pairs[:top_n]
    return [by_start[s] for s in sorted(by_start, reverse=True)]
