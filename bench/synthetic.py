"""A synthetic message history, day by day, as columns ready for ClickHouse.

Reproducible from a seed, and true to the invariants the rollups rely on:
seqs are dense per conversation and a conversation's ts never goes back;
sync_seqs are dense per user and a user's entries never go back in time.

The shape: people chat in sessions (a conversation with a burst of messages
on a day, about 12 on average); most conversations are direct (2 members),
a share are groups of 3 to 50 (most of them small); a few conversations are
far busier than the rest, the busiest group being ``team`` (the conversation
docs/analytics.md looks into). A conversation is created the day of its
first session. Every message goes to every member's sync timeline (write
diffusion), and each creation gives every member a "created" entry.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from pipeline.store import queries

DAY_MS = 86_400_000
ROWS = 10_000_000
DAYS = 90
Columns = list[list[Any]]


@dataclass(frozen=True, slots=True)
class Shape:
    rows: int = ROWS
    days: int = DAYS
    seed: int = 1
    session_mean: float = 12.0
    group_share: float = 0.3

    @property
    def users(self) -> int:
        return max(20, self.rows // 100)

    @property
    def conversations(self) -> int:
        return max(30, self.rows // 60)


@dataclass(slots=True)
class Day:
    """One day of inserts, one list of columns per table (pipeline/store/queries.py order)."""

    day: date
    messages: Columns = field(default_factory=lambda: _empty(queries.INSERT_MESSAGES))
    conversations: Columns = field(default_factory=lambda: _empty(queries.INSERT_CONVERSATIONS))
    membership: Columns = field(default_factory=lambda: _empty(queries.INSERT_MEMBERSHIP))
    sync: Columns = field(default_factory=lambda: _empty(queries.INSERT_SYNC_TIMELINE))


def _empty(insert: queries.Insert) -> Columns:
    return [[] for _ in insert.columns]


class History:
    def __init__(self, shape: Shape, until: date) -> None:
        self.shape = shape
        self.first = until - timedelta(days=shape.days - 1)
        self.rng = random.Random(shape.seed)  # noqa: S311 - reproducible data, not secrets
        n = shape.conversations
        self.groups = int(n * 0.1)  # conversation ids below this are groups
        self.members: list[tuple[str, ...]] = [self._members(c) for c in range(n)]
        self.last_seq = [0] * n
        self.last_ts = [0] * n
        self.sync_seq: dict[str, int] = {}
        self.ids = 0

    def days(self) -> Iterator[Day]:
        per_day, extra = divmod(self.shape.rows, self.shape.days)
        for i in range(self.shape.days):
            yield self._day(self.first + timedelta(days=i), per_day + (i < extra))

    def _members(self, conversation: int) -> tuple[str, ...]:
        users = self.shape.users
        if conversation >= self.groups:
            a, b = self.rng.sample(range(users), 2)
            return (f"user-{a}", f"user-{b}")
        size = min(50, 3 + int(self.rng.expovariate(1 / 5)))
        return tuple(f"user-{u}" for u in self.rng.sample(range(users), size))

    def _pick(self) -> int:
        """A conversation: groups get ``group_share`` of the sessions; within each
        kind, low ids are much busier (a squared uniform skews towards 0)."""
        if self.rng.random() < self.shape.group_share:
            return int(self.groups * self.rng.random() ** 2)
        return self.groups + int((len(self.members) - self.groups) * self.rng.random() ** 2)

    def _day(self, day: date, messages: int) -> Day:
        out = Day(day)
        start_ms = (day - date(1970, 1, 1)).days * DAY_MS
        # ts_ms, conversation, seq (0: its creation), sender; emitted in time order
        events: list[tuple[int, int, int, str]] = []
        sent = 0
        while sent < messages:
            conversation = self._pick()
            burst = min(messages - sent, 1 + int(self.rng.expovariate(1 / 11)))
            ts = max(start_ms + self.rng.randrange(DAY_MS - 3_600_000), self.last_ts[conversation])
            if self.last_ts[conversation] == 0:
                events.append((ts, conversation, 0, ""))
            for _ in range(burst):
                ts = min(ts + self.rng.randrange(1000, 60_000), start_ms + DAY_MS - 1)
                self.last_seq[conversation] += 1
                sender = self.rng.choice(self.members[conversation])
                events.append((ts, conversation, self.last_seq[conversation], sender))
            self.last_ts[conversation] = ts
            sent += burst
        events.sort()
        for ts, conversation, seq, sender in events:
            if seq == 0:
                self._create(out, conversation, ts)
            else:
                self._message(out, ts, conversation, seq, sender)
        return out

    def _create(self, out: Day, conversation: int, ts: int) -> None:
        cid, members = _cid(conversation), self.members[conversation]
        kind = "group" if conversation < self.groups else "direct"
        event_id, at = self._event_id(), ts // 1000
        title = f"group {conversation}" if kind == "group" else ""
        _append(out.conversations, (cid, kind, title, members[0], event_id, ts, at))
        for user in members:
            _append(out.membership, (cid, 1, user, "join", members[0], 0, event_id, ts, at))
        self._entries(out, members, (cid, 1, 0, "created", event_id, members[0]), ("", "", ""), ts)

    def _message(self, out: Day, ts: int, conversation: int, seq: int, sender: str) -> None:
        cid, event_id, at = _cid(conversation), self._event_id(), ts // 1000
        client_msg_id, body = f"m{self.ids}", f"message {seq} in {cid}"
        latency = int(self.rng.lognormvariate(3.5, 0.8)) - 5  # ms; a few clocks run fast
        row = (cid, seq, seq + 1, event_id, sender, client_msg_id, "text/plain", body)
        _append(out.messages, (*row, ts - latency, ts, at))
        head = (cid, seq + 1, seq, "message", event_id, sender)
        self._entries(
            out, self.members[conversation], head, (client_msg_id, "text/plain", body), ts
        )

    def _entries(
        self,
        out: Day,
        users: tuple[str, ...],
        head: tuple[Any, ...],
        text: tuple[str, ...],
        ts: int,
    ) -> None:
        """One sync entry per user: columns of INSERT_SYNC_TIMELINE."""
        n, cols = len(users), out.sync
        cols[0].extend(users)
        cols[1].extend(self._next_sync_seq(u) for u in users)
        for i, value in enumerate(head, start=2):  # conversation .. sender
            cols[i].extend([value] * n)
        cols[8].extend([""] * n)  # subject_id
        for i, value in enumerate(text, start=9):  # client_msg_id, content_type, body
            cols[i].extend([value] * n)
        cols[12].extend([ts] * n)
        cols[13].extend([ts // 1000] * n)

    def _next_sync_seq(self, user: str) -> int:
        seq = self.sync_seq.get(user, 0) + 1
        self.sync_seq[user] = seq
        return seq

    def _event_id(self) -> uuid.UUID:
        self.ids += 1
        return uuid.UUID(int=(self.shape.seed << 64) | self.ids)


def _cid(conversation: int) -> str:
    return "team" if conversation == 0 else f"c{conversation}"


def _append(columns: Columns, row: tuple[Any, ...]) -> None:
    for column, value in zip(columns, row, strict=True):
        column.append(value)
