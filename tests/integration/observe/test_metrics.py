"""/metrics of a real worker and gateway after traffic: counters match what was sent,
every hop is measured; `imstream probe` against them, and without a worker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import aiohttp
import orjson

from pipeline.log import kafka
from pipeline.log.topics import catalogue
from pipeline.model.events import encode_command
from pipeline.model.hops import SOCKET, STAMPS
from pipeline.observe.scrape import Scrape
from pipeline.sdk.api_client import ApiClient
from pipeline.sdk.producer import Producer, message
from pipeline.settings import Settings
from tests.support import (
    eventually,
    gateway_process,
    imstream,
    scrape,
    token,
    worker_process,
)

SENT = 20
DEVICES = [("bob", "phone"), ("bob", "laptop"), ("carol", "phone")]


class Device:
    """A plain WebSocket client (not the project's SyncClient): it counts the entry
    frames it is pushed, by client_msg_id."""

    def __init__(self, http: aiohttp.ClientSession, url: str, tok: str) -> None:
        self.http, self.url, self.token = http, url, tok
        self.entries: list[str] = []
        self.settled = asyncio.Event()

    async def run(self) -> None:
        url = self.url.replace("http", "ws", 1) + "/v1/stream"
        async with self.http.ws_connect(url, params={"token": self.token}) as ws:
            async for frame in ws:
                data = orjson.loads(frame.data)
                if data["type"] == "entry":
                    self.entries.append(data["entry"]["client_msg_id"])
                elif data == {"type": "pull", "reason": "connected"}:
                    self.settled.set()


async def _true(value: bool) -> bool:
    return value


async def wait_for(condition: Callable[[], bool], what: str, within: float = 60) -> None:
    ok = await eventually(lambda: _true(bool(condition())), bool, within=within, every=0.1)
    assert ok, what


async def test_metrics_count_what_was_sent_and_time_every_hop(
    settings: Settings, tmp_path: Path
) -> None:
    async with (
        worker_process(settings, tmp_path / "worker.log") as worker,
        gateway_process(settings, tmp_path / "gateway.log") as gateway,
        aiohttp.ClientSession() as http,
        Producer(settings) as producer,
    ):
        await producer.create_conversation("room", "alice", ["bob", "carol"])
        devices = [Device(http, gateway.url, token(settings, u, d)) for u, d in DEVICES]
        tasks = [asyncio.create_task(d.run()) for d in devices]
        for device in devices:
            await asyncio.wait_for(device.settled.wait(), 30)
        # until the push agent has heard of these devices, a send is only pulled
        warm = 0
        while not all(any(e.startswith("warm") for e in d.entries) for d in devices):
            await producer.publish(message("room", "alice", "warm", client_msg_id=f"warm{warm}"))
            warm += 1
            await asyncio.sleep(0.2)
            assert warm < 150, "pushes never started"
        for n in range(SENT):
            await producer.publish(message("room", "alice", f"m{n}", client_msg_id=f"m{n}"))
        raw = kafka.producer(settings)
        await raw.start()
        try:
            topic = catalogue(settings).messages.name
            await raw.send_and_wait(topic, b"not json", key=b"room")
            misplaced = encode_command(message("room", "alice", "x"))
            await raw.send_and_wait(topic, misplaced, key=b"elsewhere")
        finally:
            await raw.stop()
        wanted = {f"m{n}" for n in range(SENT)}
        await wait_for(lambda: all(wanted <= set(d.entries) for d in devices), "pushes")
        pages = await ApiClient(gateway.url, token(settings, "bob", "tablet"), http).pull(0, 500)
        assert pages["entries"]

        events = 1 + warm + SENT  # created, warm-ups, messages: all accepted
        entries = 3 * events  # alice, bob and carol each get every one

        async def stored() -> Scrape:
            return await scrape(worker.url)

        w = await eventually(
            stored,
            lambda s: (
                # the two sinks write independently: wait for both
                s.value("imstream_sink_rows_total", sink="sync-store") >= entries
                and s.value("imstream_sink_rows_total", sink="store") >= events
                and s.value("imstream_dead_letters_total") >= 2
            ),
            within=60,
        )
        g = await scrape(gateway.url)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # the worker: every record in, out and stored, counted once
    def stage(name: str, stage: str) -> float:
        return w.value(name, stage=stage)

    assert stage("imstream_stage_records_in_total", "sequencer") == events + 2
    # each event once to im.timeline, a delivery per receiver to im.sync, and the
    # creation's roster facts to im.members (the conversation and its 3 members)
    assert stage("imstream_stage_records_out_total", "sequencer") == events + entries + 4
    assert w.by("imstream_dead_letters_total", "kind") == {"undecodable": 1, "wrong_key": 1}
    assert stage("imstream_stage_records_in_total", "sync") == entries
    assert w.value("imstream_sink_rows_total", sink="store") == events
    assert w.value("imstream_sink_rows_total", sink="sync-store") == entries
    assert w.value("imstream_latency_seconds_count", path="send_to_stored") == events
    assert w.value("imstream_latency_seconds_count", path="send_to_pullable") == entries
    # the sinks time each hop of one record in eight (the gateway times every one)
    sampled = w.by("imstream_hop_seconds_count", "hop")
    assert set(sampled) == {"log", "sequenced", "synced"}
    assert sampled["log"] == sampled["sequenced"] == (events + entries) // 8
    assert 0 < sampled["synced"] <= sampled["log"]
    assert w.value("imstream_stage_transaction_seconds_count", stage="sync") > 0
    assert w.value("imstream_push_records_total", kind="entry") > 0
    assert w.value("imstream_process_info", role="worker") == 1

    # the gateway: each entry frame a device got is one push, timed at every hop
    frames = sum(len(d.entries) for d in devices)
    assert g.value("imstream_gateway_pushes_total") == frames
    assert g.value("imstream_gateway_push_dropped_total") == 0
    assert g.value("imstream_latency_seconds_count", path="send_to_socket") == frames
    gateway_hops = {h: g.value("imstream_hop_seconds_count", hop=h) for h in (*STAMPS[1:], SOCKET)}
    assert gateway_hops == dict.fromkeys((*STAMPS[1:], SOCKET), frames)
    assert g.value("imstream_gateway_connections") == 3
    assert g.value("imstream_gateway_users") == 2
    assert g.value("imstream_gateway_pulls_total") >= 1
    assert g.value("imstream_http_request_seconds_count", route="/v1/sync", status="200") >= 1
    p99 = g.quantile(0.99, "imstream_latency_seconds", path="send_to_socket")
    assert p99 is not None
    assert p99 > 0


async def test_probe_reports_latencies_then_fails_clearly_without_a_worker(
    settings: Settings, tmp_path: Path
) -> None:
    async with gateway_process(settings, tmp_path / "gateway.log") as gateway:
        probe = ("probe", "--gateway", gateway.url, "--interval", "0.2")
        async with worker_process(settings, tmp_path / "worker.log"):
            ok = await asyncio.to_thread(imstream, settings, *probe, "--count", "3")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        rounds = ok.stdout.strip().splitlines()
        assert [line.split(":")[0] for line in rounds] == ["probe 1", "probe 2", "probe 3"]
        assert all(" ok " in line and "send→push" in line for line in rounds), rounds
        assert "send→push -" not in ok.stdout

        failing = (*probe, "--count", "5", "--max-failures", "2", "--timeout", "2")
        down = await asyncio.to_thread(imstream, settings, *failing)
    assert down.returncode == 1, down.stdout + down.stderr
    lines = down.stdout.strip().splitlines()
    assert len(lines) == 3, lines  # two failed rounds, then it gives up
    assert all("FAILED: sent (202) but not pushed nor pullable within 2s" in x for x in lines[:2])
    assert "is a worker running" in lines[0]
    assert lines[2] == "probe: 2 failed rounds in a row, giving up"


async def test_metrics_off_answers_404(settings: Settings, tmp_path: Path) -> None:
    off = settings.replace(metrics=replace(settings.metrics, enabled=False))
    async with (
        worker_process(off, tmp_path / "worker.log") as worker,
        aiohttp.ClientSession() as http,
        http.get(worker.url + "/metrics") as response,
    ):
        assert response.status == 404
        assert "metrics are off" in (await response.json())["reason"]
