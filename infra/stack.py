"""The local stack: ``up``, ``down``, ``status``, ``logs``.

``up`` is idempotent: servers this stack already runs are left alone, and a
server already answering at the configured address (say, from
infra/docker-compose.yml) is used as it is. Then it creates the topics of the
catalogue and applies the ClickHouse migrations. ``down`` stops what ``up``
started and waits until the processes are gone.

    python -m infra.stack up|down|status|logs
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from infra import process
from infra.clickhouse import ClickHouseServer
from infra.kafka import KafkaBroker
from pipeline.errors import ImstreamError, PortInUseError, StartTimeoutError
from pipeline.log import kafka
from pipeline.log.topics import catalogue
from pipeline.settings import Settings
from pipeline.store import clickhouse, schema

PROBE_S = 3.0


def up(settings: Settings) -> list[str]:
    lines = [_start_clickhouse(settings), _start_kafka(settings)]
    clickhouse.wait_for_clickhouse(settings, settings.stack.start_timeout_s)
    applied = schema.migrate(settings)
    lines.append(f"clickhouse: migrations applied: {', '.join(applied) or 'none pending'}")
    created = asyncio.run(_bootstrap_topics(settings))
    lines.append(f"kafka: topics created: {', '.join(created) or 'none missing'}")
    return lines


def down(settings: Settings) -> list[str]:
    return [KafkaBroker(settings).stop(), ClickHouseServer(settings).stop()]


def status(settings: Settings) -> list[str]:
    broker, server = KafkaBroker(settings), ClickHouseServer(settings)
    lines = []
    for name, pid, answering, where in (
        ("kafka", broker.pid(), broker.answering(), settings.kafka.bootstrap),
        (
            "clickhouse",
            server.pid(),
            server.answering(),
            f"{settings.clickhouse.host}:{settings.clickhouse.port}",
        ),
    ):
        owner = f"pid {pid}" if pid else "not started by this stack"
        state = "answering" if answering else "down"
        lines.append(f"{name}: {state} at {where} ({owner})")
    return lines


def logs(settings: Settings, lines: int = 40) -> list[str]:
    broker, server = KafkaBroker(settings), ClickHouseServer(settings)
    out = []
    for title, path in (
        ("kafka", broker.log),
        ("clickhouse", server.home / "server.err.log"),
        ("clickhouse stdout", server.log),
    ):
        out += [f"==> {title}: {path}", process.tail(path, lines)]
    return out


def _start_clickhouse(settings: Settings) -> str:
    server = ClickHouseServer(settings)
    if server.pid() is None and server.answering():
        try:
            version = clickhouse.wait_for_clickhouse(settings, PROBE_S)
        except StartTimeoutError:
            raise PortInUseError(
                f"clickhouse: port {settings.clickhouse.port} answers, but not as ClickHouse; "
                "stop that process or set IMSTREAM_CLICKHOUSE_PORT"
            ) from None
        return f"clickhouse: using the server already answering (version {version})"
    return server.start()


def _start_kafka(settings: Settings) -> str:
    broker = KafkaBroker(settings)
    if broker.pid() is None and broker.answering():
        try:
            asyncio.run(kafka.wait_for_kafka(settings, PROBE_S))
        except StartTimeoutError:
            raise PortInUseError(
                f"kafka: {settings.kafka.bootstrap} answers, but not as a Kafka broker; "
                "stop that process or set IMSTREAM_KAFKA_BOOTSTRAP"
            ) from None
        return f"kafka: using the broker already answering at {settings.kafka.bootstrap}"
    return broker.start()


async def _bootstrap_topics(settings: Settings) -> list[str]:
    await kafka.wait_for_kafka(settings, settings.stack.start_timeout_s)
    return await kafka.ensure_topics(settings, catalogue(settings).all())


COMMANDS = {"up": up, "down": down, "status": status, "logs": logs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.stack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=sorted(COMMANDS))
    args = parser.parse_args(argv)
    try:
        for line in COMMANDS[args.command](Settings.from_env()):
            print(line)
    except ImstreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
