"""Read state: the conversation list, the app badge and "read by N", and how fast
read markers go through the pipeline (docs/read-state.md).

**Reads**, on a synthetic store in the scenario's own database (rows inserted in
the column order of ``pipeline.store.queries``, the read-state tables filled by
their materialized views as in production): one user (``me``) in
``readstate_conversations`` conversations of ``readstate_messages`` messages
each (every fourth message theirs, never the last), read half way in half of them, 20 pinned,
a tenth muted (messages inserted a round at a time, each conversation's next, as
they arrive in production: the views' tables get a part per round, and merges fold
them to a row per conversation as they would); and a group of
``readstate_group_members`` members, three quarters of whom have read some of
its messages. Once merges settle, the
gateway's own read functions are timed one call at a time:
``conversations.page`` (the first page of 50), ``conversations.unread`` (the
badge) and ``Receipts.count`` with its cache off (every call reads the
group's distribution of read points, as a cold call does). These are library
calls; a request through the gateway adds its HTTP round trip (about a
millisecond, see the latency scenario).

**Markers**: ``readstate_marker_workers`` workers on the scenario's topics (as
many as the throughput scenario's best rate had). ``readstate_markers`` read
markers, each moving its conversation's marker forward (100 conversations,
each of its own reader), are published through the SDK in batches of 1,000 and
timed from the first publish until every conversation's marker is its last in
ClickHouse (the sync stage, the inbox, the sync store, the views); the sync
stage makes one entry of a batch's markers of a conversation, so the entries
written and the sync-store sink's batches and rows are its ClickHouse write
cost. The target compares this rate with the send rate the throughput
scenario sustained.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from typing import Any

from bench import stats
from bench.context import Context
from bench.isolation import isolated
from bench.procs import Monitor
from bench.reads import settle, timed
from bench.services import Service, Services, services
from pipeline.observe.scrape import since
from pipeline.read import conversations, read_latency
from pipeline.read.receipts import Receipts
from pipeline.sdk.producer import Producer, user_event
from pipeline.settings import Settings
from pipeline.store import queries
from pipeline.store.clickhouse import ClickHouse

ME = "me"
GROUP = "crowd"
GROUP_MESSAGES = 10
PINNED = 20
PAGE = 50
SEED = 16
MARKER_BATCH = 1_000
MARKER_CONVERSATIONS = 100
READ_ENTRIES = "SELECT count() FROM sync_timeline WHERE kind = 'read'"
MARKERS_AT = """
SELECT count()
FROM
(
    SELECT user_id, maxMerge(marker) AS marker
    FROM user_conversations
    WHERE user_id IN %(users)s
    GROUP BY user_id, conversation_id
)
WHERE marker >= %(last)s
"""


def _conv(i: int) -> str:
    return f"rs{i:05d}"


def _member(i: int) -> str:
    return f"gm{i:05d}"


def _peer(i: int) -> str:
    return f"peer{i % 100:03d}"


async def fill(ctx: Context, store: ClickHouse) -> dict[str, Any]:
    """The synthetic store: ``me``'s conversations, then the large group."""
    p = ctx.profile
    n, per = p.readstate_conversations, p.readstate_messages
    rng = random.Random(SEED)  # noqa: S311 - synthetic data, not a secret
    now = int(time.time() * 1000)
    started = time.monotonic()
    convs = [_conv(i) for i in range(n)]
    at = [now - (n - i) * 60_000 for i in range(n)]  # created a minute apart
    await store.insert_columns(
        queries.INSERT_CONVERSATIONS.sql,
        [convs, ["group"] * n, [f"chat {i}" for i in range(n)], [ME] * n,
         [uuid.uuid4() for _ in range(n)], at, [t // 1000 for t in at]],
    )  # fmt: skip
    members = [(c, u) for i, c in enumerate(convs) for u in (ME, _peer(i))]
    await store.insert_columns(
        queries.INSERT_MEMBERSHIP.sql,
        [[c for c, _ in members], [1] * len(members), [u for _, u in members],
         ["join"] * len(members), [ME] * len(members), [0] * len(members),
         [uuid.uuid4() for _ in members], [now] * len(members), [now // 1000] * len(members)],
    )  # fmt: skip
    messages = 0
    for seq in range(1, per + 1):  # as time goes: every conversation's next message
        rows = [
            (c, seq, ME if seq % 4 == 2 else _peer(i), at[i] + seq * 1000)
            for i, c in enumerate(convs)
        ]
        await _messages(store, rows)
        messages += len(rows)
    own = []  # me's read markers, pins and mutes, as the sync stage writes them
    for i, c in enumerate(convs):
        if i % 2:
            own.append((c, "read", per // 2, ""))
        if i % 10 == 0:
            own.append((c, "muted", 0, "on"))
    own += [(convs[i], "pinned", 0, "on") for i in rng.sample(range(n), min(PINNED, n))]
    await _entries(store, [(ME, *entry) for entry in own], now)

    size = p.readstate_group_members
    crowd = [_member(i) for i in range(size)]
    await store.insert_columns(
        queries.INSERT_MEMBERSHIP.sql,
        [[GROUP] * size, [1] * size, crowd, ["join"] * size, [crowd[0]] * size, [0] * size,
         [uuid.uuid4() for _ in crowd], [now] * size, [now // 1000] * size],
    )  # fmt: skip
    await _messages(store, [(GROUP, s, crowd[0], now + s) for s in range(1, GROUP_MESSAGES + 1)])
    readers = crowd[1 : 1 + (3 * size) // 4]
    await _entries(
        store, [(u, GROUP, "read", rng.randint(1, GROUP_MESSAGES), "") for u in readers], now
    )
    return {
        "conversations": n,
        "messages": messages + GROUP_MESSAGES,
        "own_entries": len(own),
        "group_members": size,
        "group_readers": len(readers),
        "insert_s": round(time.monotonic() - started, 1),
    }


async def _messages(store: ClickHouse, rows: list[tuple[str, int, str, int]]) -> None:
    count = len(rows)
    await store.insert_columns(
        queries.INSERT_MESSAGES.sql,
        [[c for c, *_ in rows], [s for _, s, *_ in rows], [s + 1 for _, s, *_ in rows],
         [uuid.uuid4() for _ in rows], [u for _, _, u, _ in rows],
         [f"m{i}" for i in range(count)], ["text/plain"] * count,
         [f"message {s} of {c}" for c, s, *_ in rows], [t for *_, t in rows],
         [t for *_, t in rows], [t // 1000 for *_, t in rows]],
    )  # fmt: skip


async def _entries(
    store: ClickHouse, entries: list[tuple[str, str, str, int, str]], now: int
) -> None:
    """(user, conversation, kind, seq, body) as sync entries, each user's dense."""
    counts: dict[str, int] = {}
    sync_seqs = []
    for user, *_ in entries:
        counts[user] = counts.get(user, 0) + 1
        sync_seqs.append(counts[user])
    count = len(entries)
    await store.insert_columns(
        queries.INSERT_SYNC_TIMELINE.sql,
        [[u for u, *_ in entries], sync_seqs, [c for _, c, *_ in entries], [0] * count,
         [s for *_, s, _ in entries], [k for _, _, k, *_ in entries],
         [uuid.uuid4() for _ in entries], [u for u, *_ in entries], ["bench"] * count,
         [""] * count, [""] * count, [b for *_, b in entries], [now] * count,
         [now // 1000] * count],
    )  # fmt: skip


async def reads(ctx: Context) -> dict[str, Any]:
    async with isolated(ctx.settings, "rstate", keep=ctx.keep, pipeline_topics=False) as settings:
        store = ClickHouse(settings, size=4)
        try:
            filled = await fill(ctx, store)
            settled = await settle(store, settings.clickhouse.database, ctx.profile.reads_settle_s)
            measured = await _time_reads(ctx, store)
        finally:
            store.close()
    return {"store": filled, **settled, **measured}


async def _time_reads(ctx: Context, store: ClickHouse) -> dict[str, Any]:
    rng = random.Random(SEED)  # noqa: S311 - which message to ask about
    n = ctx.profile.readstate_queries
    crowd = {_member(i) for i in range(ctx.profile.readstate_group_members)}
    receipts = Receipts(store, ttl_s=0.0)  # no cache: each call reads the index
    listed: dict[str, Any] = {}

    async def first_page() -> int:
        page = await conversations.page(store, ME, lambda _: 2, limit=PAGE, before=None)
        listed["first"] = page.conversations[0]
        return int(len(page.conversations) == PAGE)

    async def badge() -> int:
        listed["total"] = (await conversations.unread(store, ME)).total
        return int(listed["total"] > 0)

    async def read_by() -> int:
        found = await receipts.count(GROUP, rng.randint(1, GROUP_MESSAGES), crowd)
        return int(found.of == len(crowd) - 1)

    monitor = Monitor(ctx.base_procs())
    monitor.start()
    results = {}
    calls = (("list_first_page", first_page), ("unread_total", badge), ("read_by", read_by))
    for name, call in calls:
        seconds, wrong = await timed(call, n)  # calls that returned 0: a wrong answer
        results[name] = {
            **stats.summary_ms(seconds),
            "wrong": wrong,
            "cdf": stats.cdf_ms(seconds),
        }
    started = time.perf_counter()  # the retention agent's hourly roll-up, over these markers
    await read_latency.roll_up(store, int(time.time() * 1000))
    rollup_s = time.perf_counter() - started
    first = listed["first"]
    return {
        "read_latency_rollup_s": stats.rounded(rollup_s, 3),
        **results,
        "badge": listed["total"],
        "first_item": {"conversation_id": first.conversation_id, "pinned": first.pinned},
        "usage": await monitor.stop(),
    }


async def markers(ctx: Context) -> dict[str, Any]:
    report: list[dict[str, Any]] = []
    async with (
        isolated(ctx.settings, "rmark", keep=ctx.keep) as settings,
        services(settings, ctx.logs, report) as svc,
    ):
        workers = [svc.start_worker() for _ in range(ctx.profile.readstate_marker_workers)]
        await svc.assigned()
        result = await _publish_markers(ctx, settings, svc, workers)
    return {**result, "processes": report}


async def _publish_markers(
    ctx: Context, settings: Settings, svc: Services, workers: list[Service]
) -> dict[str, Any]:
    total = ctx.profile.readstate_markers
    per = -(-total // MARKER_CONVERSATIONS)
    events = [
        user_event(f"mk{c:03d}", f"reader{c:03d}", "read", seq=s, device="bench")
        for s in range(1, per + 1)
        for c in range(MARKER_CONVERSATIONS)
    ][:total]
    store = ClickHouse(settings, size=1)
    before = [await svc.metrics(w) for w in workers]
    monitor = Monitor([*ctx.base_procs(), *(w.as_proc() for w in workers)])
    try:
        async with Producer(settings) as producer:
            monitor.start()
            started = time.monotonic()
            for first in range(0, total, MARKER_BATCH):
                await producer.publish_user_events(events[first : first + MARKER_BATCH])
            published_s = time.monotonic() - started
            # applied: every conversation's marker at its last (a batch's markers of
            # one conversation are one entry: count what they did, not entries)
            readers = tuple(f"reader{c:03d}" for c in range(MARKER_CONVERSATIONS))
            applied = 0
            deadline = started + ctx.profile.drain_timeout_s
            while applied < MARKER_CONVERSATIONS and time.monotonic() < deadline:
                found = await store.execute(MARKERS_AT, {"users": readers, "last": per})
                applied = int(found[0][0])
                await asyncio.sleep(0.05)
            stored_s = time.monotonic() - started
            entries = int((await store.execute(READ_ENTRIES))[0][0])
            usage = await monitor.stop()
    finally:
        store.close()
    windows = [since(b, await svc.metrics(w)) for b, w in zip(before, workers, strict=True)]
    batches = sum(w.value("imstream_sink_insert_seconds_count", sink="sync-store") for w in windows)
    rows = sum(w.value("imstream_sink_rows_total", sink="sync-store") for w in windows)
    insert_s = sum(w.value("imstream_sink_insert_seconds_sum", sink="sync-store") for w in windows)
    return {
        "markers": total,
        "workers": len(workers),
        "conversations": MARKER_CONVERSATIONS,
        "applied": applied == MARKER_CONVERSATIONS,
        "entries": entries,
        "markers_per_entry": stats.rounded(total / entries if entries else None),
        "published_per_s": stats.rounded(total / published_s),
        "stored_per_s": stats.rounded(total / stored_s)
        if applied == MARKER_CONVERSATIONS
        else None,
        "seconds": stats.rounded(stored_s),
        "clickhouse": {
            "batches": int(batches),
            "rows": int(rows),
            "rows_per_batch": stats.rounded(rows / batches if batches else None),
            "batches_per_s": stats.rounded(batches / stored_s),
            "insert_seconds": stats.rounded(insert_s, 2),
            "insert_ms_per_marker": stats.rounded(1000 * insert_s / total, 4),
        },
        "usage": usage,
    }


async def run(ctx: Context) -> dict[str, Any]:
    result: dict[str, Any] = {"reads": await reads(ctx)}
    try:
        result["markers"] = await markers(ctx)
    except Exception as exc:  # noqa: BLE001 - the reads measured stay in the results
        result["markers"] = {"error": repr(exc)}
    return result
