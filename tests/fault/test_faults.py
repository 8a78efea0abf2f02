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
shutdown). The gateway-kill scenario goes at the end of this module (see the
note there).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time

import pytest

from infra.clickhouse import ClickHouseServer
from infra.kafka import KafkaBroker
from pipeline.checker import Report
from pipeline.settings import Settings
from pipeline.topics import catalogue
from tests.fault.conftest import record_recovery
from tests.fault.probes import committed_records, stable_end
from tests.fault.traffic import Traffic, ack_order_problems
from tests.fault.workers import WorkerPool
from tests.support import converged, eventually

pytestmark = pytest.mark.fault
log = logging.getLogger(__name__)

SEED = int(os.environ.get("IMSTREAM_FAULT_SEED", str(time.time_ns() % 1_000_000)))


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    log.warning("%s: seed %d (IMSTREAM_FAULT_SEED=%d replays it)", request.node.name, SEED, SEED)
    return SEED


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
        "fanout": await committed_records(fault_settings, topics.timeline),
        "sync": await committed_records(fault_settings, topics.sync),
        "store": await committed_records(fault_settings, topics.timeline),
        "sync-store": await committed_records(fault_settings, topics.inbox),
    }
    assert {a: done[a] for a in expected} == expected


# ---------------------------------------------------------------- gateway kill
# To be added with the gateway. Shape: start it as a real process next to the
# workers (like WorkerPool does for workers), send part of the traffic through
# its HTTP API (a 2xx answer is the ack: give Traffic._deliver a gateway
# transport), SIGKILL and restart it at random moments, then `check_clean` as
# above. Push is best effort and may repeat; pulled sync timelines must be clean.
