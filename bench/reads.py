"""Read latency: history pages and sync pulls with millions of rows stored.

Synthetic rows go straight into the scenario's own database with columnar
INSERTs in the column order of ``pipeline.store.queries`` (``INSERT_MESSAGES``,
``INSERT_SYNC_TIMELINE``, and the membership, conversations and sync_heads
rows the reads consult): ``reads_messages`` messages over
``reads_conversations`` 1:1 conversations spread over the last 90 days, and
``reads_sync_entries`` sync entries over ``reads_users`` users spread over the
sync lifetime. Once background merges settle, the real read functions
(``pipeline.read.history.page``, ``pipeline.read.sync_timeline.pull``) are timed one
request at a time at random places: full pages of 50 messages (a fifth of them
the newest page) and of 100 sync entries.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from bench import stats
from bench.context import Context
from bench.isolation import isolated
from bench.load import body
from bench.procs import Monitor
from pipeline.model.naming import direct_conversation_id
from pipeline.read import history, sync_timeline
from pipeline.settings import DAY_S, Settings
from pipeline.store import queries
from pipeline.store.clickhouse import ClickHouse

CHUNK_ROWS = 250_000
HISTORY_DAYS = 90
HISTORY_PAGE = 50
SYNC_PAGE = 100
WARM_QUERIES = 20
SEED = 5
MERGES = "SELECT count() FROM system.merges WHERE database = %(database)s"
PARTS = """
SELECT table, count(), sum(rows), sum(bytes_on_disk)
FROM system.parts
WHERE database = %(database)s AND active
GROUP BY table
ORDER BY table
"""


def user(i: int) -> str:
    return f"r{i:07d}"


def conversation(k: int) -> str:
    return direct_conversation_id(user(2 * k), user(2 * k + 1))


def message_columns(first: int, count: int, per: int, text: str, now_ms: int) -> list[list[Any]]:
    """Columns of INSERT_MESSAGES for conversations first .. first+count-1, ``per`` each."""
    span = HISTORY_DAYS * DAY_S * 1000
    rows = count * per
    ks = [k for k in range(first, first + count) for _ in range(per)]
    seqs = list(range(1, per + 1)) * count
    ts = [now_ms - span + (s * span) // (per + 1) + k % 1000 for k, s in zip(ks, seqs, strict=True)]
    base = first * per
    return [
        [conversation(k) for k in range(first, first + count) for _ in range(per)],
        seqs,
        [s + 2 for s in seqs],  # events 1 and 2 of each conversation: creation, join
        [uuid.UUID(int=base + i + 1) for i in range(rows)],
        [user(2 * k + s % 2) for k, s in zip(ks, seqs, strict=True)],
        [f"m{base + i}" for i in range(rows)],
        ["text/plain"] * rows,
        [text] * rows,
        ts,
        ts,
        [t // 1000 for t in ts],
    ]


def sync_columns(
    first: int, count: int, per: int, text: str, *, now_ms: int, days: int
) -> list[list[Any]]:
    """Columns of INSERT_SYNC_TIMELINE for users first .. first+count-1, ``per`` each."""
    span = max(1, days - 1) * DAY_S * 1000
    rows = count * per
    us = [u for u in range(first, first + count) for _ in range(per)]
    seqs = list(range(1, per + 1)) * count
    ts = [now_ms - span + (s * span) // (per + 1) for s in seqs]
    base = (1 << 64) + first * per
    return [
        [user(u) for u in us],
        seqs,
        [conversation(u // 2) for u in us],
        [s + 1 for s in seqs],
        seqs,
        ["message"] * rows,
        [uuid.UUID(int=base + i) for i in range(rows)],
        [user(u ^ 1) for u in us],
        [""] * rows,
        [f"s{base + i}" for i in range(rows)],
        ["text/plain"] * rows,
        [text] * rows,
        ts,
        [t // 1000 for t in ts],
    ]


def membership_columns(first: int, count: int, now_ms: int) -> list[list[Any]]:
    """Conversation k: user 2k created it (event 1), user 2k+1 joined (event 2).

    Two events, not one creation naming both: on this schema a creation's rows
    share their key (conversation_id, event_no), and a merge folds them into
    one, leaving the other member unable to read (see the issue note)."""
    rows = 2 * count
    ks = [k for k in range(first, first + count) for _ in range(2)]
    at = now_ms - HISTORY_DAYS * DAY_S * 1000
    return [
        [conversation(k) for k in ks],
        [1 + i % 2 for i in range(rows)],
        [user(2 * k + i % 2) for i, k in enumerate(ks)],
        ["join"] * rows,
        [user(2 * k) for k in ks],
        [0] * rows,
        [uuid.UUID(int=2 * k + i % 2 + 1) for i, k in enumerate(ks)],
        [at] * rows,
        [at // 1000] * rows,
    ]


async def fill(ctx: Context, store: ClickHouse) -> dict[str, Any]:
    """Insert the synthetic store in chunks; how long it took."""
    p = ctx.profile
    text = body(p.body_bytes)
    now_ms = int(time.time() * 1000)
    days = ctx.settings.pipeline.sync_retention_days
    per_conversation = max(1, p.reads_messages // p.reads_conversations)
    per_user = max(1, p.reads_sync_entries // p.reads_users)
    started = time.monotonic()
    step = max(1, CHUNK_ROWS // per_conversation)
    for first in range(0, p.reads_conversations, step):
        count = min(step, p.reads_conversations - first)
        cols = message_columns(first, count, per_conversation, text, now_ms)
        await store.insert_columns(queries.INSERT_MESSAGES.sql, cols)
        await store.insert_columns(
            queries.INSERT_MEMBERSHIP.sql, membership_columns(first, count, now_ms)
        )
    messages_s = time.monotonic() - started
    step = max(1, CHUNK_ROWS // per_user)
    for first in range(0, p.reads_users, step):
        count = min(step, p.reads_users - first)
        cols = sync_columns(first, count, per_user, text, now_ms=now_ms, days=days)
        await store.insert_columns(queries.INSERT_SYNC_TIMELINE.sql, cols)
        heads: list[list[Any]] = [
            [user(u) for u in range(first, first + count)],
            [per_user] * count,
        ]
        await store.insert_columns(queries.INSERT_SYNC_HEADS.sql, heads)
    total_s = time.monotonic() - started
    messages = per_conversation * p.reads_conversations
    entries = per_user * p.reads_users
    return {
        "messages": messages,
        "messages_per_conversation": per_conversation,
        "sync_entries": entries,
        "sync_entries_per_user": per_user,
        "insert_s": round(total_s, 1),
        "insert_rows_per_s": round((messages + entries) / total_s, 1),
        "messages_insert_s": round(messages_s, 1),
    }


async def settle(store: ClickHouse, database: str, within_s: float) -> dict[str, Any]:
    """Wait (at most ``within_s``) until no merge runs in the database twice in a row."""
    started = time.monotonic()
    quiet = 0
    while time.monotonic() - started < within_s and quiet < 2:
        running = int((await store.execute(MERGES, {"database": database}))[0][0])
        quiet = quiet + 1 if running == 0 else 0
        await asyncio.sleep(1.0)
    parts = await store.execute(PARTS, {"database": database})
    return {
        "settle_s": round(time.monotonic() - started, 1),
        "merges_done": quiet >= 2,
        "tables": {
            t: {"parts": int(n), "rows": int(r), "mib": round(int(b) / 2**20, 1)}
            for t, n, r, b in parts
        },
    }


async def timed(call: Callable[[], Awaitable[int]], count: int) -> tuple[list[float], int]:
    """Run ``call`` ``count`` times (after a few untimed); durations and short pages."""
    for _ in range(WARM_QUERIES):
        await call()
    seconds, short = [], 0
    for _ in range(count):
        started = time.perf_counter()
        returned = await call()
        seconds.append(time.perf_counter() - started)
        short += returned == 0
    return seconds, short


async def run(ctx: Context) -> dict[str, Any]:
    async with isolated(ctx.settings, "read", keep=ctx.keep, pipeline_topics=False) as settings:
        store = ClickHouse(settings, size=2)
        try:
            filled = await fill(ctx, store)
            settled = await settle(store, settings.clickhouse.database, ctx.profile.reads_settle_s)
            measured = await measure(ctx, settings, store, filled)
        finally:
            store.close()
    return {"store": filled, **settled, **measured}


async def measure(
    ctx: Context, settings: Settings, store: ClickHouse, filled: dict[str, Any]
) -> dict[str, Any]:
    rng = random.Random(SEED)  # noqa: S311 - where to read, not a secret
    conversations, per_conversation = (
        ctx.profile.reads_conversations,
        filled["messages_per_conversation"],
    )
    users, per_user = ctx.profile.reads_users, filled["sync_entries_per_user"]
    retention = settings.pipeline.sync_retention_days

    async def history_page() -> int:
        k = rng.randrange(conversations)
        before = None if rng.random() < 0.2 else rng.randint(HISTORY_PAGE + 1, per_conversation + 1)
        page = await history.page(
            store, conversation(k), user(2 * k), before=before, limit=HISTORY_PAGE
        )
        return int(len(page.messages) == min(HISTORY_PAGE, per_conversation))

    async def sync_pull() -> int:
        after = rng.randint(0, max(0, per_user - SYNC_PAGE))
        page = await sync_timeline.pull(
            store, user(rng.randrange(users)), after, SYNC_PAGE, retention
        )
        return int(len(page.entries) == min(SYNC_PAGE, per_user - after))

    monitor = Monitor(ctx.base_procs())
    monitor.start()
    history_s, history_bad = await timed(history_page, ctx.profile.reads_queries)
    pull_s, pull_bad = await timed(sync_pull, ctx.profile.reads_queries)
    usage = await monitor.stop()
    return {
        "history_page": {
            "limit": HISTORY_PAGE,
            **stats.summary_ms(history_s),
            "short_pages": history_bad,
            "cdf": stats.cdf_ms(history_s),
        },
        "sync_pull": {
            "limit": SYNC_PAGE,
            **stats.summary_ms(pull_s),
            "short_pages": pull_bad,
            "cdf": stats.cdf_ms(pull_s),
        },
        "usage": usage,
    }
