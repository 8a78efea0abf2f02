"""Invariants 1-5 under fault, on a private stack (see conftest.py).

Every test drives steady traffic (tests/fault/traffic.py) through two real
worker processes, injects a fault, stops the traffic, and then requires the
invariant checker to be clean: no acknowledged message lost, none duplicated,
none out of order, for every conversation and every user. How long the system
took to get clean after the fault ended is recorded (see the summary at the end
of the run).

The randomness (traffic, kill moments, which worker) comes from one seed,
logged and printed; ``IMSTREAM_FAULT_SEED=<n>`` reuses it (same traffic plan
and choices; the timing of a real stack still varies).

Faults covered: worker SIGKILL (several, at random moments), Kafka broker
SIGKILL or stop + restart, ClickHouse outage of 30 s, worker SIGTERM (graceful
shutdown), gateway SIGKILL with devices connected (they reconnect and catch up).
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from infra.clickhouse import ClickHouseServer
from infra.kafka import KafkaBroker
from pipeline.gateway import auth
from pipeline.log.topics import catalogue
from pipeline.ops.checker import Report
from pipeline.sdk.client import ApiClient, ApiError, SyncClient
from pipeline.settings import Settings
from tests.fault.conftest import record_recovery
from tests.fault.probes import committed_records, stable_end
from tests.fault.traffic import Traffic, ack_order_problems
from tests.fault.workers import WorkerPool
from tests.support import converged, eventually, free_port, spawn

pytestmark = pytest.mark.fault
log = logging.getLogger(__name__)


async def running_traffic(settings: Settings, seed: int) -> Traffic:
    traffic = Traffic(settings, seed)
    await traffic.start()
    return traffic


async def flowing(traffic: Traffic, acks: int = 20, within: float = 60.0) -> None:
    """Wait until ``acks`` more sends have been acknowledged."""
    mark = len(traffic.sent_at)
    got = await eventually(
        lambda: _count(traffic), lambda n: n >= mark + acks, within=within, every=0.2
    )
    assert got >= mark + acks, f"traffic stalled: {got - mark} acks in {within}s"


async def _count(traffic: Traffic) -> int:
    return len(traffic.sent_at)


async def stop_cleanly(workers: WorkerPool) -> None:
    """SIGTERM every worker at once (as a deploy does): each exits 0 in time, and no
    run failed along the way."""
    slots = [slot for slot in range(workers.count) if workers.alive(slot)]
    results = await asyncio.gather(*(workers.terminate(slot, within=30) for slot in slots))
    for slot, (code, took) in zip(slots, results, strict=True):
        assert code == 0, f"worker {slot} exited {code} {took:.1f}s after SIGTERM"
    assert not workers.failures(), "\n\n".join(workers.failures())


async def check_clean(
    settings: Settings, traffic: Traffic, fault: str, fault_end: float, within: float = 150.0
) -> Report:
    """Stop the traffic; the checker must get clean; record how long that took."""
    await traffic.stop()
    report = await converged(settings, traffic.acked, within=within)
    took = time.monotonic() - fault_end
    assert report.ok, report.summary()
    assert report.messages >= len(traffic.acked) > 0
    assert not await ack_order_problems(settings, traffic)
    record_recovery(
        fault,
        f"checker clean {took:.1f}s after the fault ended (seed {traffic.seed}; "
        f"{len(traffic.acked)} acked messages, {report.sync_entries} sync entries, "
        f"{traffic.failed_attempts} failed send attempts retried)",
    )
    return report


async def test_worker_sigkill_at_random_moments(
    fault_settings: Settings, workers: WorkerPool, seed: int
) -> None:
    rng = random.Random(seed)
    workers.start_all()
    for slot in range(workers.count):
        await workers.wait_ready(slot)
    traffic = await running_traffic(fault_settings, seed)
    kills = []
    for _ in range(4):
        await flowing(traffic, acks=rng.randint(10, 60))
        slot = rng.randrange(workers.count)
        workers.kill(slot)
        kills.append(slot)
        await asyncio.sleep(rng.uniform(0.0, 3.0))
        workers.start(slot)
    fault_end = time.monotonic()
    log.warning("killed workers %s", kills)
    await check_clean(fault_settings, traffic, f"{len(kills)} worker SIGKILLs", fault_end)
    await stop_cleanly(workers)


@pytest.mark.parametrize("how", ["kill", "stop"])
async def test_kafka_broker_restart_mid_traffic(
    fault_settings: Settings, workers: WorkerPool, seed: int, how: str
) -> None:
    broker = KafkaBroker(fault_settings)
    workers.start_all()
    for slot in range(workers.count):
        await workers.wait_ready(slot)
    traffic = await running_traffic(fault_settings, seed)
    await flowing(traffic, acks=40)
    down_at = time.monotonic()
    await asyncio.to_thread(broker.kill if how == "kill" else broker.stop)
    await asyncio.sleep(random.Random(seed).uniform(1.0, 5.0))
    await asyncio.to_thread(broker.start)
    fault_end = time.monotonic()
    # the producer rides it out: sends go on being acknowledged
    await flowing(traffic, acks=40, within=120)
    await check_clean(
        fault_settings,
        traffic,
        f"Kafka broker {'SIGKILL' if how == 'kill' else 'stop'} + restart "
        f"(down {fault_end - down_at:.1f}s)",
        fault_end,
    )
    await stop_cleanly(workers)


async def sink_lag(workers: WorkerPool) -> int:
    statuses = [await workers.health(slot) for slot in range(workers.count)]
    return sum(s[agent]["lag"] for s in statuses for agent in ("store", "sync-store"))


async def all_lag(workers: WorkerPool) -> int:
    statuses = [await workers.health(slot) for slot in range(workers.count)]
    return sum(s.get("lag", 0) for status in statuses for s in status.values())


async def test_clickhouse_outage_of_30s(
    fault_settings: Settings, workers: WorkerPool, seed: int
) -> None:
    server = ClickHouseServer(fault_settings)
    inbox = catalogue(fault_settings).inbox
    workers.start_all()
    for slot in range(workers.count):
        await workers.wait_ready(slot)
    traffic = await running_traffic(fault_settings, seed)
    await flowing(traffic, acks=30)
    await asyncio.to_thread(server.stop)
    down_at = time.monotonic()
    inbox_at_stop = await stable_end(fault_settings, inbox)
    # the sinks fall behind and say so; the Kafka stages (and so push) keep going
    lag = await eventually(lambda: sink_lag(workers), lambda n: n > 0, within=25)
    assert lag > 0
    await flowing(traffic, acks=30)
    inbox_later = await eventually(
        lambda: stable_end(fault_settings, inbox), lambda n: n > inbox_at_stop, within=25
    )
    assert inbox_later > inbox_at_stop, "im.inbox stopped while ClickHouse was away"
    await asyncio.sleep(max(0.0, 30.0 - (time.monotonic() - down_at)))
    inbox_at_start = await stable_end(fault_settings, inbox)
    await asyncio.to_thread(server.start)
    fault_end = time.monotonic()
    log.warning(
        "ClickHouse down %.1fs; im.inbox advanced %d offsets meanwhile, sink lag %d",
        fault_end - down_at,
        inbox_at_start - inbox_at_stop,
        await sink_lag(workers),
    )
    await check_clean(
        fault_settings, traffic, f"ClickHouse outage ({fault_end - down_at:.1f}s)", fault_end
    )
    lag = await eventually(lambda: all_lag(workers), lambda n: n == 0, within=60)
    assert lag == 0
    outage = [(await workers.health(slot))["store"]["outage_s"] for slot in range(2)]
    assert max(outage) > 0, outage
    await stop_cleanly(workers)


async def test_sigterm_flushes_commits_and_exits_cleanly(
    fault_settings: Settings, workers: WorkerPool, seed: int
) -> None:
    workers.start_all()
    for slot in range(workers.count):
        await workers.wait_ready(slot)
    traffic = await running_traffic(fault_settings, seed)
    await flowing(traffic, acks=60)
    code, took = await workers.terminate(0, within=30)
    assert code == 0, f"worker exited {code} after SIGTERM"
    log.warning("worker exited 0 %.1fs after SIGTERM mid-traffic", took)
    workers.start(0)
    fault_end = time.monotonic()
    await flowing(traffic, acks=40)
    await check_clean(
        fault_settings, traffic, f"worker SIGTERM (exit 0 in {took:.1f}s) + restart", fault_end
    )
    await stop_cleanly(workers)
    # nothing was done twice: across every run of every worker, each agent handled
    # exactly the records of its input topic (a replay would count some twice)
    topics = catalogue(fault_settings)
    done: dict[str, int] = {}
    for lives in workers.lives.values():
        for life in lives:
            for agent, status in workers.final_status(life).items():
                done[agent] = done.get(agent, 0) + status.get("processed", status.get("written", 0))
    expected = {
        "sequencer": await committed_records(fault_settings, topics.messages),
        "sync": await committed_records(fault_settings, topics.sync),
        "store": await committed_records(fault_settings, topics.timeline),
        "sync-store": await committed_records(fault_settings, topics.inbox),
    }
    assert {a: done[a] for a in expected} == expected


# ---------------------------------------------------------------- gateway kill


class GatewaySlot:
    """One gateway on a fixed port, killed and restarted in place (clients keep its URL)."""

    def __init__(self, settings: Settings, logdir: Path) -> None:
        port = free_port()
        self.settings = settings.replace(
            gateway=replace(settings.gateway, port=port, id=f"gw{port}")
        )
        self.url = f"http://127.0.0.1:{port}"
        self.logdir = logdir
        self.procs: list[subprocess.Popen[bytes]] = []

    async def start(self) -> None:
        log = self.logdir / f"gateway.{len(self.procs)}.log"
        proc = spawn(self.settings, "gateway", log=log)
        self.procs.append(proc)
        up = await eventually(lambda: self._healthy(proc), bool, within=60, every=0.2)
        assert up, log.read_text()[-3000:]

    async def _healthy(self, proc: subprocess.Popen[bytes]) -> bool:
        assert proc.poll() is None, "gateway exited during start-up"
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.get(self.url + "/health") as response,
            ):
                return response.status == 200
        except aiohttp.ClientError:
            return False

    def kill(self) -> None:
        self.procs[-1].send_signal(signal.SIGKILL)
        self.procs[-1].wait(30)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)


async def send_through_gateway(
    api: ApiClient, rng: random.Random, stop: asyncio.Event, acked: list[str]
) -> None:
    """Send until stopped; a 202 is the ack. A send that fails is retried with the
    same client_msg_id until it is acknowledged (dedupe keeps it one message)."""
    n = 0
    while not stop.is_set():
        client_msg_id = f"gw-{n}"
        while True:
            try:
                await api.send("room", f"message {n}", client_msg_id=client_msg_id)
                break
            except (ApiError, aiohttp.ClientError, OSError):
                await asyncio.sleep(0.2)
        acked.append(client_msg_id)
        n += 1
        await asyncio.sleep(rng.uniform(0.0, 0.05))


async def test_gateway_sigkill_with_clients_connected(
    fault_settings: Settings, workers: WorkerPool, seed: int, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    users = ["ann", "ben", "cat", "dan"]
    gateway = GatewaySlot(fault_settings, tmp_path)
    secret = fault_settings.gateway.auth_secret
    workers.start_all()
    for slot in range(workers.count):
        await workers.wait_ready(slot)
    await gateway.start()
    stopping, stop_sending = asyncio.Event(), asyncio.Event()
    devices = [(user, device) for user in users for device in ("phone", "laptop")]
    clients = [
        SyncClient(gateway.url, auth.issue(secret, user, device, 3600), device)
        for user, device in devices
    ]
    owner = [user for user, _ in devices]
    acked: list[str] = []
    try:
        async with aiohttp.ClientSession() as http:
            api = ApiClient(gateway.url, auth.issue(secret, "ann", "bot", 3600), http)
            await api.create_group("room", users[1:])
            tasks = [asyncio.create_task(c.run(stopping)) for c in clients]
            for client in clients:
                await asyncio.wait_for(client.connected.wait(), 60)
            sender = asyncio.create_task(send_through_gateway(api, rng, stop_sending, acked))
            for _ in range(2):
                await more_acks(acked, 20)
                await asyncio.to_thread(gateway.kill)
                await asyncio.sleep(rng.uniform(0.2, 2.0))
                await gateway.start()
            restarted = time.monotonic()
            await more_acks(acked, 20)
            stop_sending.set()
            await sender
            # every device gets back to its user's full, gapless sync timeline: it has
            # applied every acknowledged send (a head read now could still be short of
            # the last sends, which are on their way through the pipeline)
            want = set(acked)
            caught_up = await eventually(
                lambda: _async(all(want <= _messages_of(c) for c in clients)),
                bool,
                within=120,
            )
            took = time.monotonic() - restarted
            stopping.set()
            await asyncio.gather(*tasks)
    finally:
        gateway.close()
    assert caught_up, {
        f"{u}/{c.device_id}": (c.cursor, len(want - _messages_of(c)))
        for c, u in zip(clients, owner, strict=True)
    }
    for client in clients:
        assert [e["sync_seq"] for e in client.entries] == list(range(1, len(client.entries) + 1))
        got = [e["client_msg_id"] for e in client.entries if e["kind"] == "message"]
        assert got == acked, "a device saw a different set or order of messages"
    report = await converged(fault_settings)
    assert report.ok, report.summary()
    assert report.messages == len(acked)
    record_recovery(
        "gateway SIGKILL x2 with 8 devices connected",
        f"every device caught up {took:.1f}s after the last restart (seed {seed}; "
        f"{len(acked)} acked sends through the gateway, checker clean)",
    )
    await stop_cleanly(workers)


async def more_acks(acked: list[str], n: int, within: float = 60.0) -> None:
    mark = len(acked)
    await eventually(lambda: _async(len(acked) >= mark + n), bool, within=within)
    assert len(acked) >= mark + n, "sends through the gateway stalled"


async def _async(value: bool) -> bool:
    return value


def _messages_of(client: SyncClient) -> set[str]:
    return {e["client_msg_id"] for e in client.entries if e["kind"] == "message"}
