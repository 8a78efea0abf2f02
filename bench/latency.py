"""End-to-end latency: send -> push received on a WebSocket, at a fixed offered load.

A worker process and an ``imstream gateway`` process run on the scenario's own
topics and database; every receiver of ``latency_pairs`` 1:1 conversations
holds a WebSocket (``/v1/stream``) on the gateway. For each send path (``http``:
POST to the gateway as a device does; ``sdk``: the producer SDK as a service
does) and each rate, sends go out open-loop on a fixed schedule for
``latency_duration_s``: message i is due at t0 + i/rate, and its latency runs
from that due time (not from when the bench got round to sending it) to the
push frame arriving, so a bench or gateway that falls behind shows up in the
figures instead of hiding. Rate 0 is the lone message: ``latency_lone_messages`` sends
one at a time on an idle stack, each after the previous push. A run that sent
less than 95% of the offered rate, had sends fail, or whose pushes did not all
arrive is marked not sustained; one whose sends fell MAX_BEHIND_S behind stops
there (the rest are counted as abandoned).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from bench import stats
from bench.context import Context
from bench.isolation import isolated
from bench.load import Pair, body, direct_created, pairs, publish, wait_for
from bench.procs import Monitor, per_unit
from bench.profiler import Recording
from bench.services import Service, Services, services
from pipeline.gateway import auth
from pipeline.model.hops import SOCKET, STAMPS
from pipeline.observe.scrape import Scrape, since
from pipeline.sdk.producer import Producer, message
from pipeline.settings import Settings

LATE_S = 10.0
LONE_PAUSE_S = 0.2
MAX_BEHIND_S = 5.0
LAG_EVERY_S = 0.5
WARM_TIMEOUT_S = 60.0
IDLE_TIMEOUT_S = 60.0
TOKEN_TTL_S = 86_400
HOPS = (*STAMPS[1:], SOCKET)


@dataclass
class Run:
    """One offered rate: due times by message index, what arrived when."""

    tag: str
    due: list[float]
    latencies: list[float] = field(default_factory=list)
    acks: list[float] = field(default_factory=list)
    arrived: set[int] = field(default_factory=set)
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    landed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set at each push that arrives (one at a time: the next send waits for it)."""
    slips: list[float] = field(default_factory=list)
    sent: int = 0
    sending_s: float = 0.0


@dataclass
class Devices:
    """One WebSocket per receiver; records push arrival times for the current run."""

    gateway: Service
    secret: str
    receivers: list[str]
    http: aiohttp.ClientSession
    sockets: list[aiohttp.ClientWebSocketResponse] = field(default_factory=list)
    run: Run | None = None
    pull_frames: int = 0
    warm: set[str] = field(default_factory=set)
    _readers: list[asyncio.Task[None]] = field(default_factory=list)

    async def connect(self) -> None:
        url = self.gateway.url + "/v1/stream"
        for user in self.receivers:
            token = auth.issue(self.secret, user, "bench", TOKEN_TTL_S)
            ws = await self.http.ws_connect(url, params={"token": token}, heartbeat=30)
            hello = await ws.receive_json(timeout=30)
            if hello.get("type") != "hello":
                raise RuntimeError(f"gateway said {hello} instead of hello")
            self.sockets.append(ws)
            self._readers.append(asyncio.create_task(self._read(ws)))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for frame in ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            now = time.monotonic()
            data = orjson.loads(frame.data)
            if data.get("type") == "pull":
                self.pull_frames += 1
            elif data.get("type") == "entry" and data["entry"]["kind"] == "message":
                self._arrived(data["entry"]["client_msg_id"], now)

    def _arrived(self, client_msg_id: str, now: float) -> None:
        tag, _, index = client_msg_id.rpartition("-")
        if tag.startswith("warm"):
            self.warm.add(index)
            return
        run = self.run
        if run is None or tag != run.tag:
            return
        i = int(index)
        if i in run.arrived:
            run.duplicates += 1
            return
        run.arrived.add(i)
        run.latencies.append(now - run.due[i])
        run.landed.set()

    async def close(self) -> None:
        for ws in self.sockets:
            await ws.close()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


async def run(ctx: Context) -> dict[str, Any]:
    report: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    error = None
    try:
        async with (
            isolated(ctx.settings, "lat", keep=ctx.keep) as settings,
            services(settings, ctx.logs, report) as svc,
        ):
            for _ in range(ctx.profile.latency_workers):
                svc.start_worker()
            await svc.assigned()
            gateway = await svc.start_gateway()
            await measure(ctx, settings, svc, gateway, runs)
    except Exception as exc:  # noqa: BLE001 - what was measured before stays in the results
        error = repr(exc)
    return {
        "pairs": ctx.profile.latency_pairs,
        "workers": ctx.profile.latency_workers,
        "runs": runs,
        "error": error,
        "processes": report,
    }


async def measure(
    ctx: Context, settings: Settings, svc: Services, gateway: Service, runs: list[dict[str, Any]]
) -> None:
    profile = ctx.profile
    conversations = pairs(profile.latency_pairs)
    connector = aiohttp.TCPConnector(limit=profile.latency_max_in_flight)
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        Producer(settings) as producer,
    ):
        await publish(producer, [direct_created(p) for p in conversations])
        devices = Devices(gateway, settings.gateway.auth_secret, [p.b for p in conversations], http)
        await devices.connect()
        try:
            await _warm_up(producer, devices, conversations)
            sender = Sender(settings, http, gateway, producer, conversations, profile.body_bytes)
            for via in profile.latency_via:
                for rate in profile.latency_rates:
                    await _idle(svc, gateway)
                    runs.append(await one_rate(ctx, svc, devices, sender, via=via, rate=rate))
        finally:
            await devices.close()


async def _warm_up(producer: Producer, devices: Devices, conversations: list[Pair]) -> None:
    """One message per conversation until every receiver got a push: the gateway's
    presence has reached the push agent and every stage has its partitions. (A
    retry needs a new client_msg_id: the sequencer drops a repeated one.)"""
    deadline = time.monotonic() + WARM_TIMEOUT_S
    for attempt in range(1_000):
        missing = [i for i in range(len(conversations)) if str(i) not in devices.warm]
        if not missing:
            return
        if time.monotonic() > deadline:
            break
        warm = [conversations[i] for i in missing]
        await publish(
            producer,
            [
                message(p.conversation_id, p.a, "warm", client_msg_id=f"warm{attempt}-{i}")
                for i, p in zip(missing, warm, strict=True)
            ],
        )
        await wait_for(lambda: _all_warm(devices, len(conversations)), 5.0)
    raise TimeoutError(f"only {len(devices.warm)} of {len(conversations)} receivers got a push")


async def _all_warm(devices: Devices, count: int) -> bool:
    return len(devices.warm) >= count


async def _idle(svc: Services, gateway: Service) -> None:
    """Wait until the previous run's traffic has gone through every stage, and the
    gateway has stopped receiving its pushes (so no run's figures hold another's)."""

    async def quiet() -> bool:
        return sum((await svc.lag()).values()) == 0

    await wait_for(quiet, IDLE_TIMEOUT_S, every_s=0.5)
    last = -1.0
    for _ in range(int(IDLE_TIMEOUT_S)):
        pushes = (await svc.metrics(gateway)).value("imstream_gateway_pushes_total")
        if pushes == last:
            return
        last = pushes
        await asyncio.sleep(1.0)


@dataclass
class Sender:
    settings: Settings
    http: aiohttp.ClientSession
    gateway: Service
    producer: Producer
    conversations: list[Pair]
    body_bytes: int

    def __post_init__(self) -> None:
        secret = self.settings.gateway.auth_secret
        self.tokens = {
            p.a: auth.issue(secret, p.a, "bench", TOKEN_TTL_S) for p in self.conversations
        }
        self.text = body(self.body_bytes)

    async def send(self, via: str, run: Run, i: int) -> None:
        pair = self.conversations[i % len(self.conversations)]
        client_msg_id = f"{run.tag}-{i}"
        try:
            if via == "http":
                await self._post(pair, client_msg_id)
            else:
                await self.producer.publish(
                    message(pair.conversation_id, pair.a, self.text, client_msg_id=client_msg_id)
                )
        except (aiohttp.ClientError, OSError, TimeoutError, RuntimeError) as exc:
            run.error_count += 1
            if len(run.errors) < 5:
                run.errors.append(repr(exc)[:300])
            return
        run.acks.append(time.monotonic() - run.due[i])

    async def _post(self, pair: Pair, client_msg_id: str) -> None:
        url = f"{self.gateway.url}/v1/conversations/{pair.conversation_id}/messages"
        payload = orjson.dumps({"body": self.text, "client_msg_id": client_msg_id})
        headers = {
            "Authorization": f"Bearer {self.tokens[pair.a]}",
            "Content-Type": "application/json",
        }
        async with self.http.post(url, data=payload, headers=headers) as response:
            if response.status != 202:
                raise RuntimeError(f"{response.status}: {(await response.text())[:200]}")
            await response.read()


async def one_rate(
    ctx: Context, svc: Services, devices: Devices, sender: Sender, *, via: str, rate: int
) -> dict[str, Any]:
    count = (
        int(rate * ctx.profile.latency_duration_s) if rate else ctx.profile.latency_lone_messages
    )
    run = Run(f"{via}{rate}", [0.0] * count)
    devices.run = run
    pulls_before = devices.pull_frames
    procs = [*ctx.base_procs(), *(w.as_proc() for w in [*svc.workers, *svc.gateways])]
    monitor = Monitor(procs)
    recording = _recording(ctx, svc, via, rate)
    lags: list[dict[str, int]] = []
    watch = asyncio.create_task(_watch_lag(svc, lags))
    hops_before = await svc.metrics(devices.gateway)
    stages_before = await svc.metrics(svc.workers[0])
    monitor.start()
    if recording is not None:
        recording.start()
    if rate:
        await _schedule(ctx, sender, run, via=via, rate=rate)
    else:
        await _one_at_a_time(sender, run, via=via)
    await wait_for(lambda: _arrived(run), LATE_S, every_s=0.1)
    usage = await monitor.stop()
    hops = hop_breakdown(since(hops_before, await svc.metrics(devices.gateway)))
    stages = stage_transactions(since(stages_before, await svc.metrics(svc.workers[0])))
    watch.cancel()
    await asyncio.gather(watch, return_exceptions=True)
    devices.run = None
    pulls = devices.pull_frames - pulls_before
    return _result(run, usage, via=via, rate=rate, pulls=pulls) | {
        "hops": hops,
        "transactions": stages,
        "lag_mean_by_agent": _mean_lag(lags),
        "profile": None if recording is None else await recording.finish(),
    }


def hop_breakdown(window: Scrape) -> dict[str, dict[str, float | None]]:
    """p50 / p99 (ms) of each hop and of send → socket during one run, from the
    gateway's histograms (the stamps every entry carries: pipeline/model/hops.py)."""

    def ms(q: float, name: str, **labels: str) -> float | None:
        value = window.quantile(q, name, **labels)
        return None if value is None else round(value * 1000, 1)

    breakdown = {
        hop: {
            "p50_ms": ms(0.5, "imstream_hop_seconds", hop=hop, at="gateway"),
            "p99_ms": ms(0.99, "imstream_hop_seconds", hop=hop, at="gateway"),
        }
        for hop in HOPS
    }
    breakdown["send_to_socket"] = {
        "p50_ms": ms(0.5, "imstream_latency_seconds", path="send_to_socket"),
        "p99_ms": ms(0.99, "imstream_latency_seconds", path="send_to_socket"),
    }
    return breakdown


def stage_transactions(window: Scrape) -> dict[str, dict[str, float | None]]:
    """Per transactional stage during one run: transactions, records in per
    transaction, and the time to write and commit one (mean and p99, ms)."""
    out: dict[str, dict[str, float | None]] = {}
    for stage in ("sequencer", "sync"):
        count = window.value("imstream_stage_transaction_seconds_count", stage=stage)
        seconds = window.value("imstream_stage_transaction_seconds_sum", stage=stage)
        records = window.value("imstream_stage_records_in_total", stage=stage)
        p99 = window.quantile(0.99, "imstream_stage_transaction_seconds", stage=stage)
        out[stage] = {
            "transactions": count,
            "records_per_transaction": round(records / count, 1) if count else None,
            "mean_ms": round(1000 * seconds / count, 1) if count else None,
            "p99_ms": None if p99 is None else round(1000 * p99, 1),
        }
    return out


async def _watch_lag(svc: Services, into: list[dict[str, int]]) -> None:
    """The workers' lag per agent every LAG_EVERY_S: where records wait."""
    while True:
        into.append(await svc.lag())
        await asyncio.sleep(LAG_EVERY_S)


def _mean_lag(samples: list[dict[str, int]]) -> dict[str, float]:
    agents = sorted({name for sample in samples for name in sample})
    return {name: round(sum(s.get(name, 0) for s in samples) / len(samples), 1) for name in agents}


async def _schedule(ctx: Context, sender: Sender, run: Run, *, via: str, rate: int) -> None:
    """Fire message i at its due time (open loop), at most max_in_flight awaiting acks;
    give up on the rest once sends are MAX_BEHIND_S late (the load is not sustained)."""
    loop = asyncio.get_running_loop()
    room = asyncio.Semaphore(ctx.profile.latency_max_in_flight)
    tasks: set[asyncio.Task[None]] = set()
    t0 = loop.time() + 0.05

    async def send(i: int) -> None:
        try:
            await sender.send(via, run, i)
        finally:
            room.release()

    for i in range(len(run.due)):
        due = t0 + i / rate
        run.due[i] = due
        if due - loop.time() > 0.001:
            await asyncio.sleep(due - loop.time())
        await room.acquire()
        run.slips.append(loop.time() - due)
        run.sent += 1
        task = asyncio.create_task(send(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        if run.slips[-1] > MAX_BEHIND_S:
            break
    run.sending_s = loop.time() - t0
    await asyncio.gather(*tasks)


async def _one_at_a_time(sender: Sender, run: Run, *, via: str) -> None:
    """Rate 0: a lone message on an otherwise idle stack, again and again: each
    send waits for the previous push and a pause (so no hop is still busy)."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for i in range(len(run.due)):
        run.landed.clear()
        run.due[i] = time.monotonic()
        run.sent += 1
        await sender.send(via, run, i)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.landed.wait(), LATE_S)
        await asyncio.sleep(LONE_PAUSE_S)
    run.sending_s = loop.time() - t0


def _recording(ctx: Context, svc: Services, via: str, rate: int) -> Recording | None:
    if ctx.profile_process != "gateway":
        return None
    output = ctx.results / f"profile-latency-{via}-{rate}-gateway.speedscope.json"
    return Recording(svc.gateways[0].pid, output, ctx.profile.latency_duration_s, ctx.profile_rate)


async def _arrived(run: Run) -> bool:
    return len(run.arrived) >= run.sent


def _result(run: Run, usage: dict[str, Any], *, via: str, rate: int, pulls: int) -> dict[str, Any]:
    count, sending_s = run.sent, run.sending_s
    achieved = count / sending_s if sending_s > 0 else None
    missing = count - len(run.arrived)
    sustained = (
        achieved is not None
        and achieved >= 0.95 * rate
        and len(run.due) == count
        and run.error_count == 0
        and missing == 0
    )
    driver = next(p for p in usage["processes"] if p["role"] == "bench driver")
    return {
        "via": via,
        "offered_per_s": rate,
        "messages": count,
        "abandoned": len(run.due) - count,
        "sending_s": round(sending_s, 3),
        "achieved_per_s": stats.rounded(achieved),
        "schedule_slip": stats.summary_ms(run.slips),
        "send_errors": run.error_count,
        "send_error_examples": run.errors,
        "pushes_received": len(run.arrived),
        "pushes_missing": missing,
        "push_duplicates": run.duplicates,
        "pull_frames": pulls,
        "sustained": sustained,
        "driver_bound": (driver["cpu_util"] or 0) > 0.9,
        "ack_latency": stats.summary_ms(run.acks),
        "push_latency": stats.summary_ms(run.latencies),
        "push_latency_cdf": stats.cdf_ms(run.latencies),
        "usage": usage,
        "cpu_per_message": per_unit(usage, count, "message"),
    }
