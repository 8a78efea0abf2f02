"""``imstream``: the command line. ``imstream <command> --help`` explains each.

This module parses the arguments; pipeline/cli/commands.py does the work, importing
what it needs when it runs, so ``imstream --help`` is quick. Data goes to
stdout; progress, notes and errors to stderr. Bad input is an ``error: ...``
line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from datetime import date

from pipeline.cli import commands
from pipeline.cli.commands import Command
from pipeline.errors import ImstreamError
from pipeline.observe import logs
from pipeline.settings import Settings

Adder = Callable[[str, Command, str], argparse.ArgumentParser]
FORMATS = ("table", "json", "csv")
EXIT_ERROR = 2
LOGGING_COMMANDS = ("worker", "gateway", "demo", "live")  # long-running: their logs are the point
QUIET_LOGGERS = ("aiokafka", "clickhouse_driver", "asyncio")


# ------------------------------------------------------------------ the parser


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD)") from None


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds > 0")
    return value


def _seq(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return value


def _fmt(p: argparse.ArgumentParser, choices: tuple[str, ...] = FORMATS) -> None:
    p.add_argument("--format", choices=choices, default=choices[0], help="output format")


def _add_operations(add: Adder) -> None:
    add(
        "up",
        commands.stack("up"),
        "start local Kafka and ClickHouse (installing them if needed), "
        "create the topics and apply the migrations; harmless when already up",
    )
    add("down", commands.stack("down"), "stop the local Kafka and ClickHouse started by `up`")
    status = add(
        "status",
        commands.status,
        "show whether the local servers answer, and the worker's and gateway's lag and "
        "p99 latencies from their /metrics",
    )
    status.add_argument(
        "--metrics",
        action="append",
        metavar="URL",
        help="also this process's metrics (http://host:port[/metrics]); repeatable",
    )
    probe = add(
        "probe",
        commands.probe,
        "send a message between two probe users through a running gateway every few "
        "seconds and report send → push and send → pullable; exit 1 after failures",
    )
    probe.add_argument("--gateway", metavar="URL", help="default: the configured gateway")
    probe.add_argument("--interval", type=_seconds, default=10.0, help="seconds between rounds")
    probe.add_argument("--count", type=_seq, default=0, help="rounds (default 0: forever)")
    probe.add_argument(
        "--max-failures", type=_count, default=3, help="failed rounds in a row that end it"
    )
    probe.add_argument(
        "--timeout", type=_seconds, default=5.0, help="seconds to wait for the push and the pull"
    )
    add("logs", commands.stack("logs"), "print the end of the local servers' logs")
    worker = add("worker", commands.worker, "run the pipeline agents until SIGTERM / Ctrl-C")
    worker.add_argument(
        "--agents",
        help="comma-separated subset of: sequencer, sync, "
        "store, sync-store, retention, push (default: all)",
    )
    add("gateway", commands.gateway, "serve the HTTP API and WebSocket push until SIGTERM")
    add(
        "live",
        commands.live,
        "run the faust-streaming app of live per-minute views (messages, senders, latency, "
        "dead letters) until SIGTERM; `imstream stats live` prints them",
    )
    token = add("token", commands.token, "print a signed token for a user's device (local use)")
    token.add_argument("user")
    token.add_argument("device")
    token.add_argument("--ttl", type=_count, help="seconds the token is valid")
    add(
        "demo",
        commands.demo,
        "run a worker, send messages in a 1:1 and a group conversation, and "
        "print sync timelines and history from ClickHouse",
    )


def _add_writes(add: Adder) -> None:
    send = add("send", commands.send, "publish a message to im.messages")
    send.add_argument("conversation")
    send.add_argument("body")
    send.add_argument("--as", dest="sender", required=True, metavar="USER", help="the sender")
    send.add_argument("--content-type", default="text/plain")
    send.add_argument("--client-msg-id", help="the client's id, for dedupe (default: a new one)")
    create = add("create", commands.create, "publish the creation of a conversation")
    create.add_argument("conversation", nargs="?", help="its id (a direct one gets dm:<a>:<b>)")
    create.add_argument("--as", dest="creator", required=True, metavar="USER")
    create.add_argument("--members", required=True, help="comma-separated user ids")
    create.add_argument("--title", default="")
    create.add_argument("--direct", action="store_true", help="a 1:1 conversation")
    create.add_argument("--admins", default="", help="comma-separated members: its first admins")
    join = add("join", commands.join, "publish a member joining a group")
    join.add_argument("conversation")
    join.add_argument("user")
    join.add_argument("--by", dest="actor", required=True, metavar="USER", help="an owner or admin")
    leave = add("leave", commands.leave, "publish a member leaving a group")
    leave.add_argument("conversation")
    leave.add_argument("user")
    leave.add_argument(
        "--by", dest="actor", metavar="USER", help="an owner or admin (default: the user)"
    )
    role = add("role", commands.role, "publish an owner setting a member's role in a group")
    role.add_argument("conversation")
    role.add_argument("user")
    role.add_argument("role", choices=["owner", "admin", "member"])
    role.add_argument("--by", dest="actor", required=True, metavar="USER", help="an owner")
    read = add("read", commands.read, "publish a user's read marker: read up to --seq")
    read.add_argument("conversation")
    read.add_argument("--as", dest="user", required=True, metavar="USER", help="a member")
    read.add_argument("--seq", type=_count, required=True, metavar="N", help="a stored message")
    read.add_argument("--device", default="cli", help="the device it is made on (default cli)")
    for name, what in (("mute", "mute"), ("pin", "pin")):
        pref = add(name, commands.prefs, f"{what} a conversation for a user (--off: un{what})")
        pref.add_argument("conversation")
        pref.add_argument("--as", dest="user", required=True, metavar="USER")
        pref.add_argument("--off", action="store_true", help=f"un{what} it")
        pref.add_argument("--device", default="cli")


def _add_reads(add: Adder) -> None:
    history = add("history", commands.history, "a page of a conversation's history, newest first")
    history.add_argument("conversation")
    history.add_argument("--as", dest="user", required=True, metavar="USER", help="a member")
    history.add_argument("--before", type=_count, metavar="SEQ", help="older than this seq")
    history.add_argument("--limit", type=_count, default=50)
    _fmt(history)
    listing = add(
        "conversations",
        commands.conversations,
        "a user's conversations, pinned first then by last activity, with unread counts",
    )
    listing.add_argument("--as", dest="user", required=True, metavar="USER")
    listing.add_argument("--limit", type=_count, default=50)
    listing.add_argument("--before", metavar="POSITION", help="a page's next_before")
    _fmt(listing)
    sync = add("sync", commands.sync, "a user's sync timeline after a cursor, as a device pulls it")
    sync.add_argument("user")
    sync.add_argument("--after", type=_seq, default=0, metavar="CURSOR")
    sync.add_argument("--limit", type=_count, default=100)
    _fmt(sync)
    tail = add(
        "tail",
        commands.tail,
        "follow a topic live, each record decoded (Ctrl-C stops); with --user, "
        "that user's entries of im.inbox",
    )
    tail.add_argument("topic", nargs="?", help="timeline, inbox, dead-letter, ... or a topic name")
    tail.add_argument("--user", help="only this user's records (topics keyed by user)")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest record")
    tail.add_argument("--max", type=_count, metavar="N", help="stop after N records")
    _fmt(tail, ("text", "json"))


def _add_analytics(add: Adder) -> None:
    sql = add("sql", commands.sql, "run one SQL statement on ClickHouse (read-only unless --write)")
    sql.add_argument("query", nargs="?", help="the statement; '-' or none reads stdin")
    sql.add_argument("--database", help="default: IMSTREAM_CLICKHOUSE_DATABASE")
    sql.add_argument("--write", action="store_true", help="allow statements that change data")
    _fmt(sql)
    stats = add(
        "stats",
        commands.stats,
        "built-in reports from the rollups: daily (messages, active conversations), top "
        "(busiest conversations), active (senders, receivers), fanout (sync entries per "
        "message), read-latency (message to read marker, p50/p90/p99), minutes (per minute, "
        "from ClickHouse); live: the running `imstream live`'s per-minute views",
    )
    stats.add_argument(
        "report",
        choices=("daily", "top", "active", "fanout", "read-latency", "minutes", "live"),
    )
    stats.add_argument(
        "--minutes", type=_count, default=10, help="minutes and live: the last N minutes"
    )
    stats.add_argument("--since", type=_day, metavar="YYYY-MM-DD", help="first day (UTC)")
    stats.add_argument("--until", type=_day, metavar="YYYY-MM-DD", help="last day (default today)")
    stats.add_argument("--days", type=_count, default=30, help="without --since: the last N days")
    stats.add_argument("--limit", type=_count, default=10, help="rows of the top report")
    _fmt(stats)


def _add_maintenance(add: Adder) -> None:
    add(
        "check",
        commands.check,
        "compare ClickHouse with the event log (exit 1 if an invariant fails)",
    )
    rebuild = add(
        "rebuild",
        commands.rebuild,
        "replay the log into the ClickHouse tables: the roaming store from im.timeline, the "
        "sync tables from im.inbox; only into a database with no such data, unless --replace",
    )
    schemas = add(
        "schemas",
        commands.schemas,
        "the JSON Schemas of the records on imstream's topics (docs/streams.md says which "
        "topic holds which), with this deployment's limits",
    )
    schemas.add_argument("--out", metavar="DIR", help="one .schema.json file per record kind")
    bench = add(
        "bench",
        commands.bench,
        "run the benchmarks (python -m bench; `imstream bench -- --help` lists its options)",
    )
    bench.add_argument("options", nargs=argparse.REMAINDER, help="passed to python -m bench")
    rebuild.add_argument("--into", metavar="DATABASE", help="rebuild into this database")
    rebuild.add_argument(
        "--replace",
        action="store_true",
        help="move the target's current tables to a backup database first (nothing is dropped)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imstream",
        description="Event-sourced IM message pipeline on Kafka and ClickHouse. Settings come "
        "from IMSTREAM_* environment variables (see pipeline/settings.py).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")

    def add(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    for group in (_add_operations, _add_writes, _add_reads, _add_analytics, _add_maintenance):
        group(add)
    return parser


def external_reason(exc: Exception) -> str | None:
    """A line for a failure of Kafka or ClickHouse (unreachable, refusing); None otherwise."""
    module = type(exc).__module__
    if module.startswith("aiokafka"):
        return f"Kafka: {exc or type(exc).__name__}"
    if module.startswith("clickhouse_driver"):
        from clickhouse_driver.errors import ServerException

        from pipeline.ops.reports import server_reason

        detail = server_reason(exc) if isinstance(exc, ServerException) else str(exc)
        return f"ClickHouse: {detail}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ImstreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    logs.configure(settings.log.format, args.verbose)
    if not args.verbose and args.command not in LOGGING_COMMANDS:
        # a failure becomes one "error:" line below, not the libraries' tracebacks
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        return int(args.func(settings, args))
    except argparse.ArgumentTypeError as exc:
        parser.exit(EXIT_ERROR, f"imstream {args.command}: error: {exc}\n")
    except ImstreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        reason = external_reason(exc)
        if reason is None:
            raise
        print(f"error: {reason}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
