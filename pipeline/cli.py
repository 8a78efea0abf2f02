"""``imstream``: the command line. ``imstream <command> --help`` explains each."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable

from pipeline.errors import ImstreamError
from pipeline.settings import Settings

Command = Callable[[Settings, argparse.Namespace], int]


def _stack(action: str) -> Command:
    def run(settings: Settings, args: argparse.Namespace) -> int:
        from infra import stack

        for line in getattr(stack, action)(settings):
            print(line)
        return 0

    return run


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from agents import worker

    agents = tuple(a.strip() for a in args.agents.split(",")) if args.agents else worker.AGENTS
    asyncio.run(worker.main(settings, agents))
    return 0


def _gateway(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.gateway import app

    asyncio.run(app.main(settings))
    return 0


def _token(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline import auth

    ttl = args.ttl if args.ttl is not None else settings.gateway.token_ttl_s
    print(auth.issue(settings.gateway.auth_secret, args.user, args.device, ttl))
    return 0


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from agents import demo

    return asyncio.run(demo.main(settings))


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

    add(
        "up",
        _stack("up"),
        "start local Kafka and ClickHouse (installing them if needed), "
        "create the topics and apply the migrations; harmless when already up",
    )
    add("down", _stack("down"), "stop the local Kafka and ClickHouse started by `up`")
    add("status", _stack("status"), "show whether the local servers answer")
    add("logs", _stack("logs"), "print the end of the local servers' logs")
    worker = add("worker", _worker, "run the pipeline agents until SIGTERM / Ctrl-C")
    worker.add_argument(
        "--agents",
        help="comma-separated subset of: sequencer, fanout, sync, "
        "store, sync-store, retention, push (default: all)",
    )
    add("gateway", _gateway, "serve the HTTP API and WebSocket push until SIGTERM / Ctrl-C")
    token = add("token", _token, "print a signed token for a user's device (local use)")
    token.add_argument("user")
    token.add_argument("device")
    token.add_argument("--ttl", type=int, help="seconds the token is valid")
    add(
        "demo",
        _demo,
        "run a worker, send messages in a 1:1 and a group conversation, and "
        "print sync timelines and history from ClickHouse",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(Settings.from_env(), args))
    except ImstreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
