"""docs/examples/keyword_webhook.py, run as its docs say, against the real broker."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.services import ROOT, free_port
from pipeline.log import kafka
from pipeline.sdk.producer import Producer
from pipeline.settings import Settings
from tests.support import eventually, running_worker

EXAMPLE = ROOT / "docs" / "examples" / "keyword_webhook.py"


def run_example(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """The example, started the way its docstring says."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, str(EXAMPLE), "worker", "-l", "info"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_the_keyword_webhook_example_posts_each_mention(
    settings: Settings, tmp_path: Path
) -> None:
    received: list[dict[str, Any]] = []
    failures = 2  # the first two posts are refused: the agent must retry, not skip

    async def hook(request: web.Request) -> web.Response:
        nonlocal failures
        if failures:
            failures -= 1
            return web.Response(status=503)
        received.append(await request.json())
        return web.Response(status=204)

    server = web.Application()
    server.router.add_post("/hook", hook)
    runner = web.AppRunner(server)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    env = {
        **settings.child_env(),
        "KEYWORDS": "urgent,outage",
        "WEBHOOK_URL": f"http://127.0.0.1:{port}/hook",
    }
    log = tmp_path / "example.log"
    agent = run_example(env, log)
    sent = []
    try:
        async with running_worker(settings), Producer(settings) as producer:
            await producer.create_conversation("ops", "alice", ["bob"])
            for sender, body in [
                ("alice", "all quiet"),
                ("bob", "URGENT: the disk is full"),
                ("alice", "no outage here... well, an Outage"),
                ("bob", "urgently nothing"),  # not the word
                ("alice", "resolved"),
            ]:
                sent.append((await producer.send_message("ops", sender, body)).event_id)
            await eventually(lambda: asyncio.sleep(0, len(received)), lambda n: n >= 2, within=90)
            await asyncio.sleep(2)  # nothing more comes
    finally:
        agent.send_signal(signal.SIGTERM)
        await asyncio.to_thread(agent.wait, 60)
        await runner.cleanup()
        group = settings.topics.prefix + "keyword-webhook"
        shutil.rmtree(Path(settings.stack.dir) / "faust" / group, ignore_errors=True)
        async with kafka.admin(settings) as client:
            leftovers = [t for t in await client.list_topics() if t.startswith(group)]
        await kafka.delete_topics(settings, leftovers)

    output = log.read_text()
    assert [(r["seq"], r["keywords"], r["sender_id"]) for r in received] == [
        (2, ["urgent"], "bob"),
        (3, ["outage"], "alice"),
    ], output[-3000:]
    assert [r["event_id"] for r in received] == [sent[1], sent[2]]
    assert received[0]["conversation_id"] == "ops"
    assert "webhook answered 503; again in" in output
