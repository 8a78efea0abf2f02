"""Analytics on history the real pipeline produced: the rollups, the built-in
reports and every query of docs/analytics.md, each compared with figures the
test computes from what it sent (tests/traffic.py) and, for the days things
happened on, from the event log read straight from Kafka. A replayed sink
batch (the same rows written again) changes none of them.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest
from chdb import session as chdb_session
from clickhouse_driver.util.escape import escape_param

from agents import store as store_agent
from agents import sync_store as sync_agent
from pipeline.log import kafka
from pipeline.log.topics import catalogue
from pipeline.model.events import (
    ConversationCreated,
    InboxEntry,
    Limits,
    MessageSent,
    TimelineEvent,
    decode_inbox,
)
from pipeline.ops import checker, reports
from pipeline.sdk.producer import Producer
from pipeline.settings import Settings
from pipeline.store import clickhouse, queries, schema
from pipeline.store.clickhouse import ClickHouse
from tests.conftest import isolated, unique_name
from tests.integration.store.test_sql_modern import CONTEXT, migrate
from tests.support import ROOT, converged, read_topic, running_worker
from tests.traffic import Model, publish, script

DOCS = ROOT / "docs" / "analytics.md"
LIMITS = Limits(1 << 30, 1 << 30)
# merges stopped on these during the module: copies stay visible, reads must fold them
FROZEN = (
    "messages",
    "sync_timeline",
    "conversation_days",
    "sender_days",
    "user_sync_days",
    "conversation_minutes",
    "sender_minutes",
)
Rows = list[tuple[Any, ...]]


def day_of(ts_ms: int) -> date:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).date()


@dataclass
class Truth:
    """What was sent (the model) and where the log put it (read from Kafka)."""

    model: Model
    events: list[TimelineEvent]
    entries: list[InboxEntry]

    def messages(self) -> list[TimelineEvent]:
        return sorted(
            (e for e in self.events if isinstance(e.command, MessageSent)),
            key=lambda e: (e.conversation_id, e.seq),
        )

    def by_day(self) -> dict[date, list[TimelineEvent]]:
        days: dict[date, list[TimelineEvent]] = defaultdict(list)
        for event in self.messages():
            days[day_of(event.ts_ms)].append(event)
        return dict(sorted(days.items()))

    def entries_by_day(self) -> dict[date, list[InboxEntry]]:
        days: dict[date, list[InboxEntry]] = defaultdict(list)
        for entry in self.entries:
            days[day_of(entry.ts_ms)].append(entry)
        return dict(sorted(days.items()))


def docs_queries() -> dict[str, str]:
    """Every ```sql block of docs/analytics.md, by the name in its first line."""
    blocks = re.findall(r"```sql\n(.*?)```", DOCS.read_text("utf-8"), flags=re.DOTALL)
    named = {}
    for block in blocks:
        first = block.splitlines()[0]
        assert first.startswith("-- "), f"start with a comment naming the query: {first!r}"
        assert ":" in first, f"'-- <name>: <what it answers>': {first!r}"
        named[first[3:].split(":")[0]] = block
    assert len(named) == len(blocks), "two queries share a name"
    return named


@pytest.fixture(scope="module")
async def produced(stack: Settings) -> AsyncIterator[tuple[Settings, Truth]]:
    name = unique_name("an")
    settings = isolated(stack, name)
    topics = catalogue(settings)
    await kafka.ensure_topics(settings, topics.all())
    schema.migrate(settings)
    try:
        model = script()
        async with running_worker(settings), Producer(settings) as producer:
            await publish(producer, model)
            report = await converged(settings, model.accepted)
        assert report.ok, report.summary()
        events = [e for es in (await checker.read_timeline(settings)).values() for e in es]
        entries = [decode_inbox(v, LIMITS) for v in await read_topic(settings, topics.inbox)]
        truth = Truth(model, events, entries)
        # the log holds what the model says it should: the rest compares with either
        for conversation, senders in model.senders.items():
            stored = [
                e.command.sender_id for e in truth.messages() if e.conversation_id == conversation
            ]
            assert stored == senders, conversation
        assert Counter(e.user_id for e in entries) == model.entries
        conn = clickhouse.client(settings)
        for table in FROZEN:
            conn.execute(f"SYSTEM STOP MERGES {name}.{table}")
        conn.disconnect()
        yield settings, truth
    finally:
        await kafka.delete_topics(settings, [t.name for t in topics.all()])
        clickhouse.drop_database(settings, name)


# ------------------------------------------------------------------ expected answers


def daily(t: Truth) -> Rows:
    return [(d, len(ms), len({m.conversation_id for m in ms})) for d, ms in t.by_day().items()]


def per_conversation(t: Truth) -> Counter[str]:
    return Counter({c: len(s) for c, s in t.model.senders.items() if s})


def busiest(t: Truth, limit: int = 10) -> Rows:
    ranked = sorted(per_conversation(t).items(), key=lambda kv: (-kv[1], kv[0]))
    return ranked[:limit]


def minute_of(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms // 1000, UTC).strftime("%Y-%m-%d %H:%M:00")


def by_minute(t: Truth) -> dict[str, list[TimelineEvent]]:
    minutes: dict[str, list[TimelineEvent]] = defaultdict(list)
    for event in t.messages():
        minutes[minute_of(event.ts_ms)].append(event)
    return dict(sorted(minutes.items()))


def per_minute(t: Truth) -> Rows:
    return [(m, len(es), len({e.conversation_id for e in es})) for m, es in by_minute(t).items()]


def senders_per_minute(t: Truth) -> Rows:
    return [(m, len({e.command.sender_id for e in es})) for m, es in by_minute(t).items()]


def senders_per_day(t: Truth) -> Rows:
    return [(d, len({m.command.sender_id for m in ms})) for d, ms in t.by_day().items()]


def fanout(t: Truth) -> Rows:
    entries = {d: len(es) for d, es in t.entries_by_day().items()}
    return [
        (d, len(ms), entries[d], pytest.approx(entries[d] / len(ms), abs=0.006))
        for d, ms in t.by_day().items()
    ]


def by_kind(t: Truth) -> Rows:
    kinds: dict[str, list[int]] = defaultdict(list)
    for conversation, n in per_conversation(t).items():
        kinds[t.model.kinds[conversation]].append(n)
    return [(k, sum(ns), len(ns)) for k, ns in sorted(kinds.items())]


def created(t: Truth) -> Rows:
    found = Counter(
        (day_of(e.ts_ms), e.command.kind)
        for e in t.events
        if isinstance(e.command, ConversationCreated)
    )
    return sorted((d, k, n) for (d, k), n in found.items())


def per_member(t: Truth) -> Rows:
    sent = t.model.sent_by("team")
    members = t.model.members["team"]
    return sorted(((u, sent[u]) for u in members), key=lambda r: (-r[1], r[0]))


def sizes(t: Truth) -> Rows:
    return sorted(Counter(len(m) for m in t.model.members.values()).items())


def receivers(t: Truth) -> Rows:
    return sorted(t.model.entries.items(), key=lambda kv: (-kv[1], kv[0]))[:10]


def quantile(values: list[int], level: float) -> int:
    ordered = sorted(values)
    return ordered[min(int(level * len(ordered)), len(ordered) - 1)]


def latency(t: Truth) -> Rows:
    rows = []
    for d, ms in t.by_day().items():
        lat = [m.ts_ms - m.command.ts_ms for m in ms]
        rows.append((d, len(lat), quantile(lat, 0.5), quantile(lat, 0.99), max(lat)))
    return rows


def hourly(t: Truth) -> Rows:
    hours = Counter(datetime.fromtimestamp(m.ts_ms // 1000, UTC).hour for m in t.messages())
    return sorted(hours.items())


EXPECTED: dict[str, Callable[[Truth], Rows]] = {
    "daily volume": daily,
    "messages per minute": per_minute,
    "senders per minute": senders_per_minute,
    "busiest conversations": busiest,
    "volume by kind": by_kind,
    "new conversations": created,
    "senders per day": senders_per_day,
    "senders in the period": lambda t: [(len({s for ss in t.model.senders.values() for s in ss}),)],
    "messages per member": per_member,
    "conversation sizes": sizes,
    "fan-out ratio": fanout,
    "heaviest receivers": receivers,
    "send latency": latency,
    "hourly profile": hourly,
}


# ------------------------------------------------------------------ the tests


def as_json(rows: Rows) -> list[list[Any]]:
    return [[v.isoformat() if isinstance(v, date) else v for v in row] for row in rows]


def report_answers(store: ClickHouse) -> dict[str, Rows]:
    period = reports.Period.ending()
    return {name: report(store, period, 3).rows for name, report in reports.REPORTS.items()}


def docs_answers(store: ClickHouse) -> dict[str, Rows]:
    return {name: store.execute_sync(sql) for name, sql in docs_queries().items()}


def test_every_documented_query_has_an_expected_answer() -> None:
    assert set(docs_queries()) == set(EXPECTED)


async def test_reports_match_what_was_sent(produced: tuple[Settings, Truth]) -> None:
    settings, t = produced
    store = ClickHouse(settings, size=1)
    got = report_answers(store)
    store.close()
    period = reports.Period.ending()
    assert got["daily"] == daily(t)
    assert got["top"] == [
        (
            c,
            t.model.kinds[c],
            t.model.titles[c],
            n,
            len({day_of(m.ts_ms) for m in t.messages() if m.conversation_id == c}),
        )
        for c, n in busiest(t, 3)
    ]
    reached = {d: len({e.user_id for e in es}) for d, es in t.entries_by_day().items()}
    everyone = {s for ss in t.model.senders.values() for s in ss}
    assert got["active"] == [
        *((d, n, reached[d]) for d, n in senders_per_day(t)),
        (f"{period.since}..{period.until}", len(everyone), len(t.model.entries)),
    ]
    assert got["fanout"] == fanout(t)
    assert sum(n for _, n, _ in got["daily"]) == t.model.messages


async def test_documented_queries_answer_right_on_the_server(
    produced: tuple[Settings, Truth],
) -> None:
    settings, t = produced
    store = ClickHouse(settings, size=1)
    got = docs_answers(store)
    store.close()
    for name, expected in EXPECTED.items():
        assert got[name] == expected(t), name


async def test_documented_queries_answer_right_on_modern_clickhouse(
    produced: tuple[Settings, Truth],
) -> None:
    """The same rows, copied into a current ClickHouse engine (chdb) whose
    materialized views build their own rollups from them."""
    settings, t = produced
    store = ClickHouse(settings, size=1)
    session = chdb_session.Session()
    try:
        migrate(session, "imstream")
        for insert in (
            queries.INSERT_CONVERSATIONS,
            queries.INSERT_MEMBERSHIP,
            queries.INSERT_MESSAGES,
            queries.INSERT_SYNC_TIMELINE,
        ):
            rows = store.execute_sync(f"SELECT {', '.join(insert.columns)} FROM {insert.table}")
            values = ", ".join(
                "(" + ", ".join(str(escape_param(v, CONTEXT)) for v in row) + ")" for row in rows
            )
            session.query(f"{insert.sql} {values}")
        session.query("SET output_format_json_quote_64bit_integers = 0")
        for name, sql in docs_queries().items():
            answer = json.loads(session.query(sql, "JSONCompact").data())["data"]
            assert answer == as_json(EXPECTED[name](t)), name
    finally:
        session.cleanup()
        store.close()


async def test_a_replayed_batch_changes_no_figure(produced: tuple[Settings, Truth]) -> None:
    settings, t = produced
    store = ClickHouse(settings, size=1)
    count = "SELECT count() FROM {}"
    before = {table: store.execute_sync(count.format(table))[0][0] for table in FROZEN}
    answers = (report_answers(store), docs_answers(store))
    # what a sink does after a crash between its write and its offset commit:
    # the same records again, through its own write function
    await store_agent.write_events(store, t.events)
    await sync_agent.write_entries(store, t.entries)
    after = {table: store.execute_sync(count.format(table))[0][0] for table in FROZEN}
    assert after["messages"] == before["messages"] + t.model.messages
    assert after["sync_timeline"] == before["sync_timeline"] + len(t.entries)
    assert all(after[r] > before[r] for r in FROZEN[2:]), "the views saw the replay too"
    assert (report_answers(store), docs_answers(store)) == answers
    store.close()
