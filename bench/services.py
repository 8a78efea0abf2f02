"""``imstream worker`` and ``imstream gateway`` as real processes for a scenario.

Each gets the scenario's settings in its environment (``Settings.to_env()``)
and a free port of its own; its log goes to the run's log directory. On exit
every process is sent SIGTERM (SIGKILL if it has not stopped after 30 s) and
the log lines of failed agents are kept with the result.
"""

from __future__ import annotations

import asyncio
import random
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp

from bench.procs import Proc
from pipeline.observe.scrape import Scrape, parse
from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
TROUBLE = re.compile(r"ERROR |Traceback|Unclosed AIOKafka")
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0


PORT_FLOOR = 20000
_given: set[int] = set()
_draw = random.SystemRandom()  # not the test's seeded ``random``: two runs must not agree


def free_port() -> int:
    """A port that is free now and that the OS will not hand out by itself.

    A port from ``bind(0)`` comes from the ephemeral range, which the OS keeps
    drawing from (a client socket, another server's ``port=0``): between this
    call and the child's bind, something else can take it, and a test then
    talks to a stranger. Ports below the ephemeral range are only taken on
    request; the ones given out here are not given out twice by this process.
    """
    low = min(_ephemeral_low(), 65536) - 1
    if low < PORT_FLOOR + 1000:  # an OS that hands out nearly every port
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    for _ in range(1000):
        port = _draw.randint(PORT_FLOOR, low)
        if port in _given:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise RuntimeError(f"no free port in {PORT_FLOOR}..{low}")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


@dataclass
class Service:
    role: str
    proc: subprocess.Popen[bytes]
    log: Path
    url: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    def as_proc(self) -> Proc:
        return Proc(self.role, self.proc.pid)

    def trouble(self) -> list[str]:
        """Log lines that say something went wrong (failed agents, tracebacks)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [line[:300] for line in text.splitlines() if TROUBLE.search(line)][:20]


def spawn(settings: Settings, *args: str, log: Path) -> subprocess.Popen[bytes]:
    """``imstream <args>`` as a real process with ``settings`` in its environment."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "-v", *args],
            cwd=ROOT,
            env=settings.child_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
        return await response.json()


class Services:
    """The processes of one scenario; ``stop()`` ends them all and returns their trouble."""

    def __init__(self, settings: Settings, logdir: Path) -> None:
        self.settings = settings
        self.logdir = logdir
        self.workers: list[Service] = []
        self.gateways: list[Service] = []
        self.http = aiohttp.ClientSession()

    def start_worker(self) -> Service:
        port = free_port()
        settings = self.settings.replace(worker=replace(self.settings.worker, health_port=port))
        n = len(self.workers)
        log = self.logdir / f"{self.settings.topics.prefix}worker{n}.log"
        service = Service(
            f"worker{n}", spawn(settings, "worker", log=log), log, f"http://127.0.0.1:{port}"
        )
        self.workers.append(service)
        return service

    async def start_gateway(self, *, limits: bool = False) -> Service:
        port = free_port()
        # the benchmarks measure the pipeline: a few users send at the offered rate,
        # which the per-user send limit (a protection, not a capacity) would cap;
        # ``limits``: the deployment's own (the flood scenario measures them)
        gateway = replace(self.settings.gateway, port=port, id=f"gw{port}")
        if not limits:
            gateway = replace(gateway, sends_per_s=0)
        settings = self.settings.replace(gateway=gateway)
        n = len(self.gateways)
        log = self.logdir / f"{self.settings.topics.prefix}gateway{n}.log"
        service = Service(
            f"gateway{n}", spawn(settings, "gateway", log=log), log, f"http://127.0.0.1:{port}"
        )
        self.gateways.append(service)
        await self._until(service, "/health")
        return service

    async def health(self, worker: Service) -> dict[str, Any]:
        body: dict[str, Any] = (await get_json(self.http, worker.url + "/health"))["agents"]
        return body

    async def metrics(self, service: Service) -> Scrape:
        """A process's ``/metrics``, parsed."""
        async with self.http.get(service.url + "/metrics") as response:
            return parse(await response.text())

    async def lag(self) -> dict[str, int]:
        """Each agent's lag summed over the workers (records committed upstream, not done)."""
        total: dict[str, int] = {}
        for worker in self.workers:
            try:
                agents = await self.health(worker)
            except (aiohttp.ClientError, TimeoutError, OSError):
                continue
            for name, status in agents.items():
                if "lag" in status:
                    total[name] = total.get(name, 0) + int(status["lag"])
        return total

    async def assigned(self) -> None:
        """Wait until every partition of every agent's input has an owner among the
        workers (after the rebalances of several workers starting together)."""
        topics = self.settings.topics
        counts = {
            "sequencer": topics.conversation_partitions,
            "store": topics.conversation_partitions,
            "sync": topics.user_partitions,
            "sync-store": topics.user_partitions,
            "push": topics.user_partitions,
        }
        for worker in self.workers:
            await self._until(worker, "/health")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        while True:
            owned: dict[str, list[int]] = {name: [] for name in counts}
            for worker in self.workers:
                for name, status in (await self.health(worker)).items():
                    if name in owned:
                        owned[name] += status.get("partitions", [])
            if all(sorted(owned[n]) == list(range(c)) for n, c in counts.items()):
                return
            if loop.time() > deadline:
                raise TimeoutError(f"partitions not all assigned after {START_TIMEOUT_S}s: {owned}")
            await asyncio.sleep(0.3)

    async def _until(self, service: Service, path: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        while True:
            if service.proc.poll() is not None:
                raise RuntimeError(
                    f"{service.role} exited with {service.proc.returncode}: "
                    f"{service.log.read_text(errors='replace')[-2000:]}"
                )
            try:
                await get_json(self.http, service.url + path)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                if loop.time() > deadline:
                    raise TimeoutError(
                        f"{service.role} did not answer within {START_TIMEOUT_S}s"
                    ) from exc
                await asyncio.sleep(0.2)
            else:
                return

    async def stop(self) -> list[dict[str, Any]]:
        """SIGTERM everything, wait; each process's exit code and trouble in its log."""
        await self.http.close()
        everything = [*self.gateways, *self.workers]
        for service in everything:
            if service.proc.poll() is None:
                service.proc.send_signal(signal.SIGTERM)
        report = []
        for service in everything:
            try:
                code = await asyncio.to_thread(service.proc.wait, STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                service.proc.kill()
                code = await asyncio.to_thread(service.proc.wait, STOP_TIMEOUT_S)
            report.append(
                {
                    "role": service.role,
                    "exit_code": code,
                    "log": str(service.log),
                    "trouble": service.trouble(),
                }
            )
        return report


@asynccontextmanager
async def services(settings: Settings, logdir: Path, report: list[Any]) -> AsyncIterator[Services]:
    """Processes for one scenario; ``report`` receives their exit codes and trouble."""
    running = Services(settings, logdir)
    try:
        yield running
    finally:
        report.extend(await running.stop())
