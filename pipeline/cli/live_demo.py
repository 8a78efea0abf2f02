"""The demo's last part: ``imstream live`` (faust-streaming) beside the worker.

The live app runs as its own process and consumer group (``imstream-live-demo``,
so that it never shares partitions with a live app of your own), counts the
run's traffic per minute, and the demo prints its figures next to ClickHouse's
minute rollups (migration 0005), which the store agent fed from the same
timeline by another road.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aiohttp

from pipeline.ops.reports import minute_volume
from pipeline.settings import Settings
from pipeline.store.clickhouse import ClickHouse

DEMO_APP_ID = "imstream-live-demo"
READY_S = 90.0
AGREE_S = 30.0


@asynccontextmanager
async def live_beside(settings: Settings, log_path: str) -> AsyncIterator[str]:
    """``imstream live`` as a process; yields its URL once its partitions are assigned."""
    live = replace(settings.live, app_id=DEMO_APP_ID, port=_free_port())
    proc = _spawn(settings.replace(live=live).child_env(), log_path)
    url = f"http://{live.host}:{live.port}"
    try:
        await _ready(url, proc, log_path)
        yield url
    finally:
        proc.terminate()
        with suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(proc.wait, 30)
        if proc.poll() is None:
            proc.kill()


def _spawn(env: dict[str, str], log_path: str) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "live"], env=env, stdout=log, stderr=log
        )


async def _ready(url: str, proc: subprocess.Popen[bytes], log_path: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_S
    async with aiohttp.ClientSession() as http:
        while loop.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"imstream live exited {proc.returncode}; see {log_path}")
            with suppress(aiohttp.ClientError):
                async with http.get(url + "/live/ready") as answer:
                    if answer.status == 200:
                        return
            await asyncio.sleep(0.3)
    raise RuntimeError(f"imstream live was not ready in {READY_S:.0f}s; see {log_path}")


async def show_live(settings: Settings, url: str, since: datetime) -> None:
    """Print the live app's minutes since ``since`` beside ClickHouse's, once they
    agree (or after AGREE_S, saying which minutes do not)."""
    first = int(since.timestamp()) // 60 * 60
    count = max(1, (int(datetime.now(UTC).timestamp()) - first) // 60 + 1)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + AGREE_S
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(f"{url}/live/minutes?minutes={count}") as answer:
                minutes: list[dict[str, Any]] = (await answer.json())["minutes"]
            rollup = await asyncio.to_thread(_rollup, settings, count)
            live = {m["start"]: m for m in minutes if m["start"] >= first}
            stored = {k: v for k, v in rollup.items() if k >= first}
            agree = {k: (v["messages"], v["conversations"], v["senders"]) for k, v in live.items()}
            if agree == stored or loop.time() > deadline:
                break
            await asyncio.sleep(1.0)
    print(
        "\nimstream live (faust-streaming, its own process beside the worker) per minute, "
        "and ClickHouse's minute rollup:"
    )
    print("  minute (UTC)      window  messages conv senders  p50 ms  p99 ms   clickhouse")
    for start in sorted(set(live) | set(stored)):
        m = live.get(start)
        ch = stored.get(start)
        when = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d %H:%M")
        ours = (
            f"{'closed' if m['closed'] else 'open':<6}  {m['messages']:>8} {m['conversations']:>4} "
            f"{m['senders']:>7}  {_ms(m['latency_ms']['p50'])} {_ms(m['latency_ms']['p99'])}"
            if m
            else f"{'-':<6}  {'-':>8} {'-':>4} {'-':>7}  {'-':>6} {'-':>6}"
        )
        theirs = f"{ch[0]} / {ch[1]} / {ch[2]}" if ch else "-"
        same = m is not None and ch == (m["messages"], m["conversations"], m["senders"])
        print(f"  {when}  {ours}   {theirs:<12} {'same' if same else 'DIFFERENT'}")


def _ms(value: float | None) -> str:
    return f"{value:>6.1f}" if value is not None else f"{'-':>6}"


def _rollup(settings: Settings, minutes: int) -> dict[int, tuple[int, int, int]]:
    store = ClickHouse(settings, size=1)
    try:
        table = minute_volume(store, minutes)
    finally:
        store.close()
    return {int(minute.timestamp()): (m, c, s) for minute, m, c, s in table.rows}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
