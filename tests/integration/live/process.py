"""``imstream live`` as a real process for the tests: started, killed, started again."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bench.services import free_port, spawn
from pipeline.live.app import app_id
from pipeline.log import kafka
from pipeline.settings import Settings
from pipeline.store import queries
from pipeline.store.clickhouse import ClickHouse
from tests.support import eventually


@dataclass
class LiveProcess:
    """One live app (its consumer group, tables and data directory); ``start`` again
    after ``kill`` picks up where its changelogs and committed offsets left it."""

    settings: Settings
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    url: str = field(init=False)

    def __post_init__(self) -> None:
        port = free_port()
        self.settings = self.settings.replace(live=replace(self.settings.live, port=port))
        self.url = f"http://127.0.0.1:{port}"

    async def start(self) -> None:
        proc = self.proc = spawn(self.settings, "live", log=self.log)

        async def ready() -> int:
            assert proc.poll() is None, self.tail()
            try:
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(self.url + "/live/ready") as answer,
                ):
                    return answer.status
            except aiohttp.ClientError:
                return 0

        status = await eventually(ready, lambda s: s == 200, within=90, every=0.3)
        assert status == 200, self.tail()

    def kill(self) -> None:
        """kill -9: no flush, no commit, no goodbye to the group."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(self.proc.wait, 60)

    async def minutes(self, count: int = 10) -> list[dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.url}/live/minutes?minutes={count}") as answer,
        ):
            assert answer.status == 200, await answer.text()
            return list((await answer.json())["minutes"])

    async def messages(self) -> int:
        return sum(m["messages"] for m in await self.minutes())

    def tail(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else "(no log)"

    async def remove(self) -> None:
        """Its data directory and its topics (changelogs, faust's leader topic)."""
        await self.stop()
        group = app_id(self.settings)
        shutil.rmtree(Path(self.settings.stack.dir) / "faust" / group, ignore_errors=True)
        async with kafka.admin(self.settings) as client:
            names = [t for t in await client.list_topics() if t.startswith(group)]
        await kafka.delete_topics(self.settings, names)


def per_minute(found: list[dict[str, Any]]) -> dict[int, tuple[int, int, int]]:
    """The live app's minutes as {minute start: (messages, conversations, senders)}."""
    return {m["start"]: (m["messages"], m["conversations"], m["senders"]) for m in found}


def rollup_minutes(settings: Settings) -> dict[int, tuple[int, int, int]]:
    """ClickHouse's minute rollups (migration 0005), the same way."""
    since = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)
    store = ClickHouse(settings, size=1)
    try:
        rows = store.execute_sync(queries.REPORT_MINUTES, {"since": since})
    finally:
        store.close()
    return {int(minute.timestamp()): (m, c, s) for minute, m, c, s in rows}
