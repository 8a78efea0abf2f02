"""Send flood: while one user sends as fast as it can, are other users' send → push
latencies unaffected?

One worker and one gateway with its **default per-user limits** (the other
scenarios turn the send limit off) run on the scenario's own topics and
database. Every receiver of ``latency_pairs`` 1:1 conversations holds a
WebSocket, and their senders post at ``flood_rate`` msg/s in total over HTTP,
open loop, for ``flood_duration_s``, as in the latency scenario, twice:

- **quiet**: nobody else sends;
- **flood**: meanwhile one user (``flooder``) posts into a group of
  ``flood_group_size`` members from ``flood_senders`` concurrent loops, each
  sending again as soon as it has an answer, and ignoring ``Retry-After``, as an
  attacker would.

Per phase: the others' send → push latency (p50 / p95 / p99), their send errors
(a 429 would mean the flood spent someone else's budget), and the flooder's
answers (202 accepted, 429 refused) and accepted rate.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from asyncio.subprocess import Process
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench import stats
from bench.context import Context
from bench.isolation import isolated
from bench.latency import (
    LATE_S,
    TOKEN_TTL_S,
    Devices,
    Run,
    Sender,
    _arrived,
    _idle,
    _result,
    _schedule,
    _warm_up,
    hop_breakdown,
)
from bench.load import body, direct_created, pairs, publish, wait_for
from bench.procs import Monitor, Proc
from bench.services import Service, Services, services
from pipeline.gateway import auth
from pipeline.model.events import ConversationCreated, new_event_id
from pipeline.observe.scrape import since
from pipeline.sdk.producer import Producer, now_ms
from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
FLOODER = "flooder"
GROUP = "flooded"


async def run(ctx: Context) -> dict[str, Any]:
    report: list[dict[str, Any]] = []
    phases: list[dict[str, Any]] = []
    error = None
    try:
        async with (
            isolated(ctx.settings, "flood", keep=ctx.keep) as settings,
            services(settings, ctx.logs, report) as svc,
        ):
            svc.start_worker()
            await svc.assigned()
            gateway = await svc.start_gateway(limits=True)
            await _measure(ctx, settings, svc, gateway, phases)
    except Exception as exc:  # noqa: BLE001 - what was measured before stays in the results
        error = repr(exc)
    gw = ctx.settings.gateway
    return {
        "pairs": ctx.profile.latency_pairs,
        "offered_per_s": ctx.profile.flood_rate,
        "group_size": ctx.profile.flood_group_size,
        "flood_senders": ctx.profile.flood_senders,
        "limits": {
            "sends_per_s": gw.sends_per_s,
            "send_burst": gw.send_burst,
            "fanout_per_s": gw.fanout_per_s,
            "fanout_burst": gw.fanout_burst,
            "limited_delay_s": gw.limited_delay_s,
        },
        "phases": phases,
        "error": error,
        "processes": report,
    }


@dataclass
class Flood:
    """One user posting into a group as fast as answers come back, from
    ``senders`` concurrent loops (in its own process: ``python -m bench.flood``,
    so that its loops do not share the bench driver's event loop and CPU with the
    timing of the others' pushes)."""

    url: str
    token: str
    text: str
    answers: dict[int, int] = field(default_factory=dict)
    errors: int = 0

    async def run(self, senders: int, stop: asyncio.Event) -> None:
        connector = aiohttp.TCPConnector(limit=senders)
        async with aiohttp.ClientSession(connector=connector) as http:
            await asyncio.gather(*(self._loop(http, stop) for _ in range(senders)))

    async def _loop(self, http: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        payload = orjson.dumps({"body": self.text})
        while not stop.is_set():
            try:
                async with http.post(self.url, data=payload, headers=headers) as answer:
                    await answer.read()
                    self.answers[answer.status] = self.answers.get(answer.status, 0) + 1
            except (aiohttp.ClientError, OSError, TimeoutError):
                self.errors += 1
                await asyncio.sleep(0.01)

    def summary(self, seconds: float) -> dict[str, Any]:
        accepted, requests = self.answers.get(202, 0), sum(self.answers.values())
        return {
            "requests": requests,
            "answers": {str(k): v for k, v in sorted(self.answers.items())},
            "errors": self.errors,
            "accepted": accepted,
            "accepted_per_s": stats.rounded(accepted / seconds if seconds else None),
            "requests_per_s": stats.rounded(requests / seconds if seconds else None),
        }


async def _flood_main(url: str, token: str, text: str, senders: int) -> None:
    """The flooder process: until SIGTERM, then its summary as JSON on stdout."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    flood = Flood(url, token, text)
    started = time.monotonic()
    await flood.run(senders, stop)
    sys.stdout.write(orjson.dumps(flood.summary(time.monotonic() - started)).decode() + "\n")


async def _start_flooder(url: str, token: str, text: str, senders: int) -> Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.flood",
        url,
        token,
        text,
        str(senders),
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )


async def _stop_flooder(flooder: Process) -> dict[str, Any]:
    flooder.send_signal(signal.SIGTERM)
    out, _ = await asyncio.wait_for(flooder.communicate(), 30)
    summary: dict[str, Any] = orjson.loads(out)
    return summary


async def _measure(
    ctx: Context, settings: Settings, svc: Services, gateway: Service, phases: list[dict[str, Any]]
) -> None:
    profile = ctx.profile
    conversations = pairs(profile.latency_pairs, "fl")
    members = (FLOODER, *(f"fm{i:05d}" for i in range(profile.flood_group_size - 1)))
    group = ConversationCreated(new_event_id(), GROUP, FLOODER, "group", "", members, now_ms())
    connector = aiohttp.TCPConnector(limit=profile.latency_max_in_flight)
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        Producer(settings) as producer,
    ):
        await publish(producer, [*(direct_created(p) for p in conversations), group])
        devices = Devices(gateway, settings.gateway.auth_secret, [p.b for p in conversations], http)
        await devices.connect()
        try:
            await _warm_up(producer, devices, conversations)
            sender = Sender(settings, http, gateway, producer, conversations, profile.body_bytes)
            token = auth.issue(settings.gateway.auth_secret, FLOODER, "bench", TOKEN_TTL_S)
            flood = (
                f"{gateway.url}/v1/conversations/{GROUP}/messages",
                token,
                body(profile.body_bytes),
            )
            for phase in ("quiet", "flood"):
                await _idle(svc, gateway)
                phases.append(
                    await _phase(ctx, svc, devices, sender, flood if phase == "flood" else None)
                )
        finally:
            await devices.close()


async def _phase(
    ctx: Context,
    svc: Services,
    devices: Devices,
    sender: Sender,
    flood: tuple[str, str, str] | None,
) -> dict[str, Any]:
    profile = ctx.profile
    rate = profile.flood_rate
    phase = "quiet" if flood is None else "flood"
    run = Run(phase, [0.0] * int(rate * profile.flood_duration_s))
    devices.run = run
    procs = [*ctx.base_procs(), *(w.as_proc() for w in [*svc.workers, *svc.gateways])]
    flooder = None
    if flood is not None:
        flooder = await _start_flooder(*flood, profile.flood_senders)
        procs.append(Proc("flooder", flooder.pid))
        await asyncio.sleep(1.0)  # past the flooder's burst: its steady refusals
    monitor = Monitor(procs)
    hops_before = await svc.metrics(devices.gateway)
    monitor.start()
    try:
        await _schedule(ctx, sender, run, via="http", rate=rate)
        await wait_for(lambda: _arrived(run), LATE_S, every_s=0.1)
        usage = await monitor.stop()  # while the flooder still runs: its CPU too
    finally:
        summary = None if flooder is None else await _stop_flooder(flooder)
    hops = hop_breakdown(since(hops_before, await svc.metrics(devices.gateway)))
    devices.run = None
    result = _result(run, usage, via="http", rate=rate, pulls=0)
    return {
        "phase": phase,
        "others": {
            k: result[k]
            for k in (
                "messages",
                "sending_s",
                "achieved_per_s",
                "send_errors",
                "send_error_examples",
                "pushes_received",
                "pushes_missing",
                "sustained",
                "ack_latency",
                "push_latency",
            )
        },
        "hops": hops,
        "flooder": summary,
        "machine_busy": usage["machine"]["busy_util"],
        "cpu": {p["role"]: p["cpu_util"] for p in usage["processes"]},
    }


if __name__ == "__main__":
    asyncio.run(_flood_main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
