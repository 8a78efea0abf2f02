"""What processes cost: CPU time and memory from /proc, sampled during a scenario.

CPU is utime+stime of every thread (``/proc/<pid>/stat``) read before and after
a phase; memory is VmRSS sampled every ``every_s`` (its peak during the phase)
and VmHWM (the process's peak since it started). The machine's busy time
(``/proc/stat``) minus what the monitored processes used is load the bench
does not account for: other users of a shared machine, the kernel.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TICKS = os.sysconf("SC_CLK_TCK")
LISTEN = "0A"


@dataclass(frozen=True, slots=True)
class Proc:
    role: str
    pid: int
    shared: bool = False
    """Also serves others (the shared broker and ClickHouse): its cost is not ours alone."""


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of ``pid`` in seconds, or None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in KiB (empty once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / TICKS, total / TICKS


def pid_listening_on(port: int) -> int | None:
    """The process holding a listening TCP socket on ``port`` (needs to see its fds)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if parts[3] == LISTEN and int(parts[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{parts[9]}]")
    if not inodes:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return int(entry.name)
    return None


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@dataclass
class _Track:
    proc: Proc
    cpu_start: float | None
    rss_peak_kib: int = 0


@dataclass
class Monitor:
    """CPU and memory of ``procs`` between ``start()`` and ``stop()``."""

    procs: list[Proc]
    every_s: float = 0.5
    _tracks: list[_Track] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _machine: tuple[float, float] = (0.0, 0.0)
    _wall: float = 0.0

    def start(self) -> None:
        self._tracks = [_Track(p, cpu_seconds(p.pid)) for p in self.procs]
        self._machine = machine_cpu()
        self._wall = time.monotonic()
        self._sample()
        self._task = asyncio.create_task(self._sampling())

    def add(self, proc: Proc) -> None:
        """Track a process started after ``start()`` (its CPU counts from now)."""
        self._tracks.append(_Track(proc, cpu_seconds(proc.pid)))

    async def _sampling(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            self._sample()

    def _sample(self) -> None:
        for track in self._tracks:
            rss = memory_kib(track.proc.pid).get("VmRSS", 0)
            track.rss_peak_kib = max(track.rss_peak_kib, rss)

    async def stop(self) -> dict[str, Any]:
        """Per process: CPU seconds, CPU share of one core, peak RSS; and the machine's load."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._sample()
        wall = time.monotonic() - self._wall
        busy_end, total_end = machine_cpu()
        processes: list[dict[str, Any]] = []
        for track in self._tracks:
            end = cpu_seconds(track.proc.pid)
            cpu = None if end is None or track.cpu_start is None else end - track.cpu_start
            memory = memory_kib(track.proc.pid)
            processes.append(
                {
                    "role": track.proc.role,
                    "pid": track.proc.pid,
                    "shared": track.proc.shared,
                    "cpu_s": None if cpu is None else round(cpu, 3),
                    "cpu_util": None if cpu is None else round(cpu / wall, 3),
                    "rss_peak_mib": round(track.rss_peak_kib / 1024, 1),
                    "vmhwm_mib": round(memory.get("VmHWM", 0) / 1024, 1) or None,
                }
            )
        busy = busy_end - self._machine[0]
        ours = sum(float(p["cpu_s"] or 0.0) for p in processes)
        return {
            "wall_s": round(wall, 3),
            "processes": processes,
            "machine": {
                "cpus": os.cpu_count(),
                "busy_cpu_s": round(busy, 3),
                "busy_util": round(busy / (total_end - self._machine[1] or 1.0), 3),
                "unaccounted_cpu_s": round(busy - ours, 3),
                "loadavg_end": [round(x, 2) for x in os.getloadavg()],
            },
        }


def per_unit(usage: dict[str, Any], units: int, unit: str) -> list[dict[str, Any]]:
    """CPU microseconds per ``unit`` (message, entry) of each monitored process."""
    rows = []
    for p in usage["processes"]:
        cpu = p["cpu_s"]
        rows.append(
            {
                "role": p["role"],
                "shared": p["shared"],
                f"cpu_us_per_{unit}": None
                if cpu is None or not units
                else round(1e6 * cpu / units, 1),
            }
        )
    return rows
