"""Facts about the machine and the stack a run measured, stored with every result."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import procs
from infra.clickhouse import ClickHouseServer
from infra.kafka import KafkaBroker
from pipeline.settings import Settings
from pipeline.store import clickhouse

ROOT = Path(__file__).resolve().parent.parent
KAFKA_JAR = re.compile(r"kafka(?:_[\d.]+|-server|-clients)-(\d[\w.\-]*?)\.jar")
CLASSPATH = re.compile(r"(?:-cp|-classpath)\s+(\S+)")


@dataclass(frozen=True, slots=True)
class Servers:
    """The broker's and ClickHouse's pids (None when they cannot be seen from here)."""

    kafka: int | None
    clickhouse: int | None

    def procs(self) -> list[procs.Proc]:
        found = []
        if self.kafka is not None:
            found.append(procs.Proc("kafka", self.kafka, shared=True))
        if self.clickhouse is not None:
            found.append(procs.Proc("clickhouse", self.clickhouse, shared=True))
        return found


def servers(settings: Settings) -> Servers:
    """From the local stack's pid files, else whoever listens on the configured ports."""
    broker, server = KafkaBroker(settings), ClickHouseServer(settings)
    kafka_pid = broker.pid() or procs.pid_listening_on(broker.port)
    clickhouse_pid = server.pid() or procs.pid_listening_on(settings.clickhouse.port)
    return Servers(kafka_pid, clickhouse_pid)


def kafka_version(settings: Settings, pid: int | None) -> str:
    """From the broker's jars (named on its command line, or in its classpath directories)."""
    line = procs.cmdline(pid) if pid else ""
    found = KAFKA_JAR.search(line)
    classpath = CLASSPATH.search(line)
    if found is None and classpath is not None:
        for entry in classpath[1].split(":"):
            folder = Path(entry.removesuffix("*"))
            names = " ".join(p.name for p in folder.glob("kafka*.jar")) if folder.is_dir() else ""
            found = found or KAFKA_JAR.search(names)
    if found:
        return found[1]
    return f"{settings.stack.kafka_version} (configured; broker jars not visible)"


def git_commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        )
        return result.stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def ram_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    return 0.0


def facts(settings: Settings, found: Servers) -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "ram_gib": ram_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "kafka": kafka_version(settings, found.kafka),
        "clickhouse": clickhouse.ping(settings),
        "git": git_commit(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
