"""The invariant checker: compares the stores with the event log.

It reads ``im.timeline`` (committed records only) as the truth about what was
accepted and who was a member when, and verifies in ClickHouse that

* every conversation's seqs are dense (1..n) in log order, each event once;
* every accepted message is in its conversation's history exactly once, at its seq;
* every user's sync timeline is dense (1..m) and holds exactly one entry per
  event they were a member for, in each conversation's order, nothing else
  (messages of a large group excepted from the event it became large: its
  members read them from its storage timeline, see pipeline/model/diffusion.py);
* a conversation, once large, stays large, and becomes large at a creation or a join;
* what pulls read large groups by (large_groups, membership_by_user) gives every
  user exactly the read-diffused periods of membership the log gives them;
* every acknowledged send given by the caller is in the history exactly once;
* read state (docs/read-state.md): a user's read markers in their sync timeline
  only move forward and never pass the conversation's last message; the tables
  the conversation list reads agree with the log and the sync timelines (each
  marker the latest of its entries, each last sent seq and each head the log's),
  so every unread count derived from them is the log's.

Copies of a row written twice by an at-least-once sink are folded, as every
reader folds them; two *different* events at one seq or sync_seq are a problem.

    imstream check
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from pipeline.errors import EventError
from pipeline.log import kafka
from pipeline.log.topics import catalogue
from pipeline.model.diffusion import Fanout
from pipeline.model.events import (
    ConversationCreated,
    Limits,
    MemberJoined,
    MemberLeft,
    MessageSent,
    TimelineEvent,
    decode_timeline,
)
from pipeline.model.state import StateStore
from pipeline.read.periods import MembershipRow, Period, periods
from pipeline.settings import Settings
from pipeline.store import queries
from pipeline.store.clickhouse import ClickHouse

MAX_LISTED = 20
EntryKey = tuple[str, int]  # (conversation_id, event_no)
Reader = tuple[str, str]  # (user_id, conversation_id)


@dataclass
class Report:
    conversations: int = 0
    messages: int = 0
    users: int = 0
    sync_entries: int = 0
    large_groups: int = 0
    read_markers: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.out_of_order or self.unexpected)

    def summary(self) -> str:
        head = (
            f"{self.conversations} conversations, {self.messages} messages, {self.users} users, "
            f"{self.sync_entries} sync entries: {len(self.lost)} lost, "
            f"{len(self.duplicated)} duplicated, {len(self.out_of_order)} out of order, "
            f"{len(self.unexpected)} unexpected"
        )
        if self.large_groups:
            head += f" ({self.large_groups} large groups read diffused)"
        if self.read_markers:
            head += f" ({self.read_markers} read markers)"
        details = [
            f"  {kind}: {item}"
            for kind, items in (
                ("lost", self.lost),
                ("duplicated", self.duplicated),
                ("out of order", self.out_of_order),
                ("unexpected", self.unexpected),
            )
            for item in items[:MAX_LISTED]
        ]
        return "\n".join([head, *details])


async def read_timeline(settings: Settings) -> dict[str, list[TimelineEvent]]:
    """Every committed timeline event, per conversation in log order (records that are
    not events, which the store sends to the dead-letter topic, are left out)."""
    topic = catalogue(settings).timeline
    limits = Limits(max_body_bytes=1 << 30, max_group_size=1 << 30)
    consumer = kafka.consumer(settings)
    tps = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
    consumer.assign(tps)
    events: dict[str, list[TimelineEvent]] = defaultdict(list)
    try:
        await consumer.start()
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=1000, max_records=10_000)
            for records in batch.values():
                for record in records:
                    try:
                        event = decode_timeline(record.value, limits)
                    except EventError:
                        continue  # not an event: the stages dead-letter it as well
                    events[event.conversation_id].append(event)
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return dict(events)


def expected_sync(timeline: dict[str, list[TimelineEvent]]) -> dict[str, Counter[EntryKey]]:
    """Per user, the (conversation, event_no) entries their sync timeline owes them:
    every event they were a member for, but a large group's messages and the
    membership changes of its other members (the rules of pipeline/model/diffusion.py)."""
    owed: dict[str, Counter[EntryKey]] = defaultdict(Counter)
    fanout = Fanout(StateStore())
    for conversation_id, events in timeline.items():
        for event in events:
            for user in fanout.recipients(event):
                owed[user][(conversation_id, event.event_no)] += 1
    return owed


def check_timeline(timeline: dict[str, list[TimelineEvent]], report: Report) -> None:
    seen: Counter[str] = Counter()
    for conversation_id, events in timeline.items():
        numbers = [e.event_no for e in events]
        if numbers != list(range(1, len(events) + 1)):
            report.out_of_order.append(f"timeline {conversation_id}: event_no {numbers[:10]}...")
        seqs = [e.seq for e in events if isinstance(e.command, MessageSent)]
        if seqs != list(range(1, len(seqs) + 1)):
            report.out_of_order.append(f"timeline {conversation_id}: seqs not dense in log order")
        seen.update(e.command.event_id for e in events)
        _check_large(conversation_id, events, report)
    report.duplicated += [f"event {e} accepted {n} times" for e, n in seen.items() if n > 1]


def _check_large(conversation_id: str, events: list[TimelineEvent], report: Report) -> None:
    flags = [e.large for e in events]
    if True not in flags:
        return
    switch = flags.index(True)
    if not all(flags[switch:]):
        report.out_of_order.append(f"timeline {conversation_id}: large, then not large")
    if not isinstance(events[switch].command, ConversationCreated | MemberJoined):
        report.out_of_order.append(
            f"timeline {conversation_id}: large from event {switch + 1}, not a creation or join"
        )


async def check_history(
    store: ClickHouse, timeline: dict[str, list[TimelineEvent]], report: Report
) -> dict[str, tuple[str, int]]:
    rows = await store.execute(queries.CHECK_HISTORY)
    stored: dict[tuple[str, int], list[str]] = {(c, s): ids for c, s, ids in rows}
    where: dict[str, tuple[str, int]] = {}
    for conversation_id, events in timeline.items():
        for event in events:
            if not isinstance(event.command, MessageSent):
                continue
            key = (conversation_id, event.seq)
            ids = stored.pop(key, [])
            if not ids:
                report.lost.append(f"history {conversation_id} seq {event.seq}")
            elif ids != [event.command.event_id]:
                report.duplicated.append(f"history {conversation_id} seq {event.seq}: {ids}")
            where[event.command.event_id] = key
    report.unexpected += [f"history {c} seq {s} not in the log" for c, s in stored]
    report.messages = len(where)
    return where


async def check_sync(
    store: ClickHouse, timeline: dict[str, list[TimelineEvent]], report: Report
) -> None:
    owed = expected_sync(timeline)
    rows = await store.execute(queries.CHECK_SYNC)
    got: dict[str, list[tuple[int, list[EntryKey]]]] = defaultdict(list)
    for user, sync_seq, keys in rows:
        got[user].append((sync_seq, [tuple(k) for k in keys]))
    for user in sorted(set(owed) | set(got)):
        _check_user(user, owed.get(user, Counter()), got.get(user, []), report)
    report.users = len(set(owed) | set(got))
    report.sync_entries = sum(len(v) for v in got.values())


def _check_user(
    user: str, owed: Counter[EntryKey], got: list[tuple[int, list[EntryKey]]], report: Report
) -> None:
    seqs = [s for s, _ in got]
    if seqs != list(range(1, len(seqs) + 1)):
        report.out_of_order.append(f"sync {user}: sync_seqs not dense ({_gaps(seqs)})")
    entries: list[EntryKey] = []
    for sync_seq, keys in got:
        if len(keys) > 1:
            report.duplicated.append(f"sync {user} sync_seq {sync_seq}: {keys}")
        if keys[0][1] > 0:  # event_no 0: the user's own event (check_read_state)
            entries.append(keys[0])
    have = Counter(entries)
    for key, n in (have - owed).items():
        kind = report.duplicated if key in owed else report.unexpected
        kind.append(f"sync {user}: {key} x{n} more than owed")
    report.lost += [f"sync {user}: {key}" for key in (owed - have)]
    last: dict[str, int] = {}
    for conversation_id, event_no in entries:
        if event_no < last.get(conversation_id, 0):
            report.out_of_order.append(f"sync {user}: {conversation_id} event {event_no} late")
        last[conversation_id] = event_no


def expected_periods(timeline: dict[str, list[TimelineEvent]]) -> dict[Reader, list[Period]]:
    """Per (user, large group), the periods of membership the log gives them."""
    found: dict[Reader, list[Period]] = {}
    for conversation_id, events in timeline.items():
        switch = next((e for e in events if e.large), None)
        if switch is None:
            continue
        rows: dict[str, list[MembershipRow]] = defaultdict(list)
        for event in events:
            c = event.command
            if isinstance(c, ConversationCreated):
                for member in c.members:
                    rows[member].append((event.event_no, "join", event.seq))
            elif isinstance(c, MemberJoined | MemberLeft):
                action = "join" if isinstance(c, MemberJoined) else "leave"
                rows[c.user_id].append((event.event_no, action, event.seq))
        for user, changes in rows.items():
            if found_periods := periods(changes, switch.seq):
                found[(user, conversation_id)] = found_periods
    return found


async def check_groups(
    store: ClickHouse, timeline: dict[str, list[TimelineEvent]], report: Report
) -> None:
    owed = expected_periods(timeline)
    large = {c: int(seq) for c, _, seq in await store.execute(queries.CHECK_LARGE_GROUPS)}
    rows: dict[Reader, list[MembershipRow]] = defaultdict(list)
    for user, conv, event_no, action, after_seq in await store.execute(
        queries.CHECK_LARGE_MEMBERSHIP
    ):
        rows[(user, conv)].append((int(event_no), str(action), int(after_seq)))
    got = {  # a group stored as large between the two reads is seen next time
        key: found
        for key, r in rows.items()
        if key[1] in large and (found := periods(r, large[key[1]]))
    }
    for key in sorted(set(owed) | set(got)):
        if key not in got:
            report.lost.append(f"groups {key}: periods {owed[key]} not readable")
        elif owed.get(key) != got[key]:
            report.unexpected.append(f"groups {key}: periods {got[key]}, owed {owed.get(key)}")
    report.large_groups = len(large)


async def check_read_state(
    store: ClickHouse, timeline: dict[str, list[TimelineEvent]], report: Report
) -> None:
    heads: dict[str, int] = {}
    sent: dict[Reader, int] = {}
    for conversation_id, events in timeline.items():
        for event in events:
            if isinstance(event.command, MessageSent):
                heads[conversation_id] = event.seq
                sent[(event.command.sender_id, conversation_id)] = event.seq
    marked: dict[Reader, int] = {}
    for user, sync_seq, conversation_id, seq in await store.execute(queries.CHECK_READ_ENTRIES):
        key = (str(user), str(conversation_id))
        if seq <= marked.get(key, 0):
            report.out_of_order.append(f"read {key}: marker {seq} at sync_seq {sync_seq} went back")
        if seq > heads.get(key[1], 0):
            report.unexpected.append(f"read {key}: marker {seq} past the last message")
        marked[key] = max(seq, marked.get(key, 0))
    tables: dict[str, dict[Reader, int]] = defaultdict(dict)
    for what, user, conversation_id, value in await store.execute(queries.CHECK_READ_TABLES):
        tables[str(what)][(str(user), str(conversation_id))] = int(value)
    for name, owed, got in (
        ("user_conversations marker", marked, tables["marker"]),
        ("user_conversations sent", sent, tables["sent"]),
        ("conversation_heads", {("", c): s for c, s in heads.items()}, tables["head"]),
    ):
        for key in sorted(set(owed) | set(got)):
            if key not in got:
                report.lost.append(f"{name} {key}: {owed[key]} not stored")
            elif got[key] != owed.get(key) and (name != "user_conversations marker" or key in owed):
                # a marker whose entries retention dropped is only in the table
                report.unexpected.append(f"{name} {key}: {got[key]}, owed {owed.get(key)}")
    report.read_markers = len(marked)


def check_acknowledged(
    acked: Iterable[str], where: dict[str, tuple[str, int]], report: Report
) -> None:
    report.lost += [f"acknowledged send {e} not in history" for e in acked if e not in where]


def _gaps(seqs: list[int]) -> str:
    missing = sorted(set(range(1, max(seqs, default=0) + 1)) - set(seqs))
    return f"missing {missing[:5]}" if missing else "repeated"


async def check(settings: Settings, acknowledged: Iterable[str] = ()) -> Report:
    timeline = await read_timeline(settings)
    report = Report(conversations=len(timeline))
    check_timeline(timeline, report)
    store = ClickHouse(settings, size=1)
    try:
        where = await check_history(store, timeline, report)
        await check_sync(store, timeline, report)
        await check_groups(store, timeline, report)
        await check_read_state(store, timeline, report)
    finally:
        store.close()
    check_acknowledged(acknowledged, where, report)
    return report
