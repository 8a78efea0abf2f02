"""Real ``imstream worker`` processes for fault tests: start, SIGKILL, SIGTERM, read health."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from pipeline.settings import Settings
from tests.support import eventually, spawn

HEALTH = re.compile(r"health endpoint on http://[\d.]+:(\d+)/health")
FAILED = re.compile(r"ERROR agents\.|Unclosed AIOKafka")
STOPPED = re.compile(r"worker stopped: (\{.*\})")


@dataclass
class Life:
    """One run of one worker slot."""

    proc: subprocess.Popen[bytes]
    log: Path
    port: int = 0


@dataclass
class WorkerPool:
    """``count`` worker slots; each (re)start is a new process with its own log."""

    settings: Settings
    logdir: Path
    count: int = 2
    lives: dict[int, list[Life]] = field(default_factory=dict)

    def start(self, slot: int) -> Life:
        n = len(self.lives.setdefault(slot, []))
        log = self.logdir / f"worker{slot}.{n}.log"
        life = Life(spawn(self.settings, "worker", log=log), log)
        self.lives[slot].append(life)
        return life

    def start_all(self) -> None:
        for slot in range(self.count):
            self.start(slot)

    def current(self, slot: int) -> Life:
        return self.lives[slot][-1]

    def alive(self, slot: int) -> bool:
        return slot in self.lives and self.current(slot).proc.poll() is None

    def kill(self, slot: int) -> None:
        """SIGKILL: no chance to flush, commit or leave the group."""
        proc = self.current(slot).proc
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)

    async def terminate(self, slot: int, within: float = 60.0) -> tuple[int | None, float]:
        """SIGTERM and wait; (exit code or None if still running after ``within``, seconds)."""
        proc = self.current(slot).proc
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(proc.wait, within)
        except subprocess.TimeoutExpired:
            return None, time.monotonic() - started
        return code, time.monotonic() - started

    def close(self) -> None:
        """Stop every process this pool started (SIGKILL whatever SIGTERM does not end)."""
        for lives in self.lives.values():
            for life in lives:
                if life.proc.poll() is None:
                    life.proc.send_signal(signal.SIGTERM)
        for lives in self.lives.values():
            for life in lives:
                try:
                    life.proc.wait(30)
                except subprocess.TimeoutExpired:
                    life.proc.kill()
                    life.proc.wait(30)

    def failures(self) -> list[str]:
        """Worker runs that failed on their own: exited with an error (not by our
        SIGKILL/SIGTERM), logged a failed agent, or left a Kafka client unclosed."""
        found = []
        for lives in self.lives.values():
            for life in lives:
                code = life.proc.poll()
                text = life.log.read_text(errors="replace")
                bad = [line for line in text.splitlines() if FAILED.search(line)]
                if code not in (None, 0, -signal.SIGKILL, -signal.SIGTERM) or bad:
                    found.append(f"{life.log.name}: exit {code}; {bad[:5]}\n{text[-2000:]}")
        return found

    async def port(self, slot: int) -> int:
        life = self.current(slot)
        if not life.port:

            async def find() -> int:
                match = HEALTH.search(life.log.read_text())
                if life.proc.poll() is not None:
                    raise AssertionError(f"{life.log} exited:\n{life.log.read_text()[-3000:]}")
                return int(match[1]) if match else 0

            life.port = await eventually(find, lambda p: p > 0, within=60, every=0.2)
        return life.port

    async def health(self, slot: int) -> dict[str, Any]:
        port = await self.port(slot)
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/health") as response,
        ):
            body: dict[str, Any] = (await response.json())["agents"]
            return body

    async def ready_status(self, slot: int) -> int:
        port = await self.port(slot)
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/ready") as response,
        ):
            return response.status

    async def wait_ready(self, slot: int, within: float = 90.0) -> None:
        status = await eventually(
            lambda: self.ready_status(slot), lambda s: s == 200, within=within, every=0.3
        )
        assert status == 200, f"worker {slot} not ready within {within}s"

    def final_status(self, life: Life) -> dict[str, Any]:
        """The per-agent status a worker logs when it stops gracefully."""
        match = STOPPED.search(life.log.read_text())
        assert match, f"{life.log.name} logged no final status"
        status: dict[str, Any] = orjson.loads(match[1])
        return status
