"""What each ``imstream`` command does; pipeline/cli/main.py parses the arguments.

Each command takes the settings and the parsed arguments and returns the exit
status. It imports what it needs when it runs, so ``imstream --help`` stays
quick. Data goes to stdout; notes and progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pipeline.cli import loop
from pipeline.errors import ConfigError
from pipeline.settings import Settings

if TYPE_CHECKING:
    from pipeline.ops.output import Table
    from pipeline.sdk.producer import Ack, Producer

Command = Callable[[Settings, argparse.Namespace], int]


# ------------------------------------------------------------------ the stack, worker, gateway


def stack(action: str) -> Command:
    def run(settings: Settings, args: argparse.Namespace) -> int:
        from infra import stack as local_stack

        for line in getattr(local_stack, action)(settings):
            print(line)
        return 0

    return run


def status(settings: Settings, args: argparse.Namespace) -> int:
    from infra import stack as local_stack
    from pipeline.ops import status as processes

    for line in local_stack.status(settings):
        print(line)
    for line in processes.lines(processes.endpoints(settings, args.metrics or ())):
        print(line)
    return 0


def probe(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.gateway import auth
    from pipeline.ops.probe import Probe

    url = args.gateway or f"http://{settings.gateway.host}:{settings.gateway.port}"
    secret = settings.gateway.auth_secret
    prober = Probe(
        url, lambda user: auth.issue(secret, user, "probe", 86_400), timeout_s=args.timeout
    )
    return asyncio.run(
        prober.run(
            args.interval, args.count, args.max_failures, lambda line: print(line, flush=True)
        )
    )


def worker(settings: Settings, args: argparse.Namespace) -> int:
    from agents import worker as agents_worker

    every = agents_worker.AGENTS
    agents = tuple(a.strip() for a in args.agents.split(",")) if args.agents else every
    loop.run(settings, agents_worker.main(settings, agents))
    return 0


def gateway(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.gateway import app

    loop.run(settings, app.main(settings))
    return 0


def token(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.gateway import auth

    ttl = args.ttl if args.ttl is not None else settings.gateway.token_ttl_s
    print(auth.issue(settings.gateway.auth_secret, args.user, args.device, ttl))
    return 0


def bench(settings: Settings, args: argparse.Namespace) -> int:
    try:
        from bench import runner
    except ModuleNotFoundError as exc:
        if exc.name != "bench":
            raise
        raise ConfigError(
            "the benchmarks are not installed with imstream: run `python -m bench` "
            "(or `make bench`) in a source checkout"
        ) from None

    options = [o for o in args.options if o != "--"]
    return runner.main(options)


def demo(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.cli import demo as agents_demo

    return asyncio.run(agents_demo.main(settings))


# ------------------------------------------------------------------ writing to the log


def _publish(
    settings: Settings,
    action: Callable[[Producer], Awaitable[Ack]],
    then: str = "the sequencer accepts it, or dead-letters it with the reason "
    "(imstream tail dead-letter)",
) -> int:
    from pipeline.sdk.producer import Producer

    async def run() -> Ack:
        producer = Producer(settings)
        try:
            await producer.start()
            return await action(producer)
        finally:
            await producer.stop()

    ack = asyncio.run(run())
    where = f"partition {ack.partition} offset {ack.offset}"
    print(f"event {ack.event_id} in {ack.conversation_id}: {where}")
    print(then, file=sys.stderr)
    return 0


def send(settings: Settings, args: argparse.Namespace) -> int:
    return _publish(
        settings,
        lambda p: p.send_message(
            args.conversation,
            args.sender,
            args.body,
            content_type=args.content_type,
            client_msg_id=args.client_msg_id,
        ),
    )


def create(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.model.naming import direct_conversation_id

    members = [m.strip() for m in args.members.split(",") if m.strip()]
    if args.direct:
        if len(members) != 1:
            raise argparse.ArgumentTypeError("--direct takes exactly one other member")
        conversation = args.conversation or direct_conversation_id(args.creator, members[0])
    elif not args.conversation:
        raise argparse.ArgumentTypeError("a group conversation needs an id")
    else:
        conversation = args.conversation
    return _publish(
        settings,
        lambda p: p.create_conversation(
            conversation,
            args.creator,
            members,
            kind="direct" if args.direct else "group",
            title=args.title,
            admins=[a for a in args.admins.split(",") if a],
        ),
    )


def join(settings: Settings, args: argparse.Namespace) -> int:
    return _publish(settings, lambda p: p.join(args.conversation, args.actor, args.user))


def leave(settings: Settings, args: argparse.Namespace) -> int:
    actor = args.actor or args.user
    return _publish(settings, lambda p: p.leave(args.conversation, actor, args.user))


def role(settings: Settings, args: argparse.Namespace) -> int:
    return _publish(
        settings, lambda p: p.set_role(args.conversation, args.actor, args.user, args.role)
    )


USER_EVENT_NOTE = (
    "the sync stage puts it in the user's sync timeline (a read marker behind the "
    "user's changes nothing)"
)


def read(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.errors import RejectedError
    from pipeline.store import queries
    from pipeline.store.clickhouse import ClickHouse

    store = ClickHouse(settings, size=1)
    try:
        rows = asyncio.run(
            store.execute(queries.CONVERSATION_HEAD, {"conversation_id": args.conversation})
        )
    finally:
        store.close()
    head = int(rows[0][0]) if rows and rows[0][0] is not None else 0
    if args.seq > head:
        raise RejectedError(
            f"conversation {args.conversation} has no message {args.seq} "
            f"(its last stored is {head})"
        )
    return _publish(
        settings,
        lambda p: p.mark_read(args.conversation, args.user, args.seq, args.device),
        USER_EVENT_NOTE,
    )


def prefs(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.model.events import UserEventKind

    pref: UserEventKind = "muted" if args.command == "mute" else "pinned"
    return _publish(
        settings,
        lambda p: p.set_pref(args.conversation, args.user, pref, not args.off, args.device),
        USER_EVENT_NOTE,
    )


# ------------------------------------------------------------------ reading


def conversations(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.read import conversations as listing
    from pipeline.store.clickhouse import ClickHouse

    store = ClickHouse(settings, size=2)

    async def both() -> tuple[listing.Page, listing.Unread]:
        before = listing.parse_before(args.before)
        return await asyncio.gather(
            listing.page(store, args.user, lambda _: None, limit=args.limit, before=before),
            listing.unread(store, args.user),
        )

    try:
        page, badge = asyncio.run(both())
    finally:
        store.close()
    records = []
    for summary in page.conversations:
        shown = summary.to_json()
        last = summary.last_message
        shown["last"] = "" if last is None else f"{last.sender_id}: {last.preview[:40]}"
        shown["flags"] = " ".join(
            f for f, on in (("pinned", summary.pinned), ("muted", summary.muted)) if on
        )
        records.append(shown)
    columns: tuple[str, ...] = ("conversation_id", "kind", "title", "unread", "flags", "last")
    if args.format != "table":
        columns = ("conversation_id", "kind", "title", "unread", "muted", "pinned", "read_seq")
    _show(_from_records(records, columns), args.format)
    print(f"unread total (not muted): {badge.total}", file=sys.stderr)
    if page.next_before is not None:
        print(f"more: --before {page.next_before}", file=sys.stderr)
    return 0


def _show(table: Table, fmt: str) -> None:
    from pipeline.ops.output import render

    print(render(table, fmt))


def history(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.read import history as roaming
    from pipeline.store.clickhouse import ClickHouse

    store = ClickHouse(settings, size=1)
    try:
        page = asyncio.run(
            roaming.page(store, args.conversation, args.user, before=args.before, limit=args.limit)
        )
    finally:
        store.close()
    records = [m.to_json() for m in page.messages]
    columns: tuple[str, ...] = ("seq", "ts_ms", "sender_id", "body")
    if args.format != "table" and records:
        columns = tuple(records[0])
    _show(_from_records(records, columns), args.format)
    if page.next_before is not None:
        print(f"older messages: --before {page.next_before}", file=sys.stderr)
    return 0


def sync(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.read import sync_timeline
    from pipeline.store.clickhouse import ClickHouse

    store = ClickHouse(settings, size=1)
    days = settings.pipeline.sync_retention_days
    try:
        page = asyncio.run(sync_timeline.pull(store, args.user, args.after, args.limit, days))
    finally:
        store.close()
    records = [e.to_json() for e in page.entries]
    columns: tuple[str, ...] = ("sync_seq", "conversation_id", "seq", "kind", "sender_id", "body")
    if args.format != "table" and records:
        columns = tuple(records[0])
    _show(_from_records(records, columns), args.format)
    state = "caught up" if page.caught_up else "more to pull"
    print(f"cursor {page.cursor}, head {page.head} ({state})", file=sys.stderr)
    return 0


def _from_records(records: list[dict[str, Any]], columns: tuple[str, ...]) -> Table:
    from pipeline.ops.output import Table

    return Table(columns, [tuple(r[c] for c in columns) for r in records])


def tail(settings: Settings, args: argparse.Namespace) -> int:
    import orjson

    from pipeline.ops import tail as follower

    topic = args.topic or ("inbox" if args.user else None)
    if topic is None:
        raise argparse.ArgumentTypeError("name a topic, or a user with --user")

    def emit(shown: dict[str, Any]) -> None:
        line = orjson.dumps(shown).decode() if args.format == "json" else follower.text_line(shown)
        print(line, flush=True)

    asyncio.run(
        follower.follow(
            settings,
            topic,
            emit,
            user=args.user,
            from_beginning=args.from_beginning,
            limit=args.max,
            ready=lambda note: print(note, file=sys.stderr, flush=True),
        )
    )
    return 0


# ------------------------------------------------------------------ analytics and operations


def sql(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.ops.reports import run_query
    from pipeline.store.clickhouse import ClickHouse

    if args.query in (None, "-"):
        if sys.stdin.isatty():
            raise argparse.ArgumentTypeError("give a query, or pipe one in")
        text = sys.stdin.read()
    else:
        text = args.query
    store = ClickHouse(settings, args.database, size=1)
    try:
        _show(run_query(store, text, write=args.write), args.format)
    finally:
        store.close()
    return 0


def stats(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.ops.reports import REPORTS, Period, minute_volume
    from pipeline.store.clickhouse import ClickHouse

    if args.report == "live":
        return _live_stats(settings, args)
    if args.report == "minutes":
        store = ClickHouse(settings, size=1)
        try:
            _show(minute_volume(store, args.minutes), args.format)
        finally:
            store.close()
        return 0

    if args.since is not None:
        period = Period(args.since, args.until or Period.ending().until)
    else:
        period = Period.ending(args.until, args.days)
    store = ClickHouse(settings, size=1)
    try:
        _show(REPORTS[args.report](store, period, args.limit), args.format)
    finally:
        store.close()
    return 0


def _live_stats(settings: Settings, args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.request

    import orjson

    from pipeline.ops.reports import live_minutes

    live = settings.live
    url = f"http://{live.host}:{live.port}/live/minutes?minutes={args.minutes}"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            payload = orjson.loads(answer.read())
    except (urllib.error.URLError, OSError) as exc:
        raise ConfigError(
            f"imstream live does not answer at {url} ({exc}); is it running?"
        ) from None
    if args.format == "json":
        print(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
    else:
        _show(live_minutes(payload), args.format)
    return 0


def live(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.live.app import run

    run(settings, "info" if args.verbose else "warning")
    return 0


def rebuild(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.ops.progress import Progress
    from pipeline.ops.rebuild import rebuild as replay_log

    outcome = asyncio.run(
        replay_log(settings, Progress(sys.stderr), into=args.into, replace=args.replace)
    )
    print("\n".join(outcome.summary()))
    return 0


def check(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.ops import checker

    report = asyncio.run(checker.check(settings))
    print(report.summary())
    return 0 if report.ok else 1


def schemas(settings: Settings, args: argparse.Namespace) -> int:
    """The published JSON Schemas, with this deployment's limits: one file per record
    kind into ``--out``, or all of them as one JSON object on stdout."""
    from pathlib import Path

    import orjson

    from pipeline.log.schemas import schemas as build
    from pipeline.model.events import limits_from

    documents = build(limits_from(settings.pipeline))
    if args.out is None:
        sys.stdout.write(orjson.dumps(documents, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, document in documents.items():
        path = out / f"{name}.schema.json"
        path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
        print(path)
    return 0
