"""Push reads the sync stage's output before it commits; kill -9 must not show.

The push agent reads ``im.inbox`` uncommitted, so a device can be pushed an
entry of a sync transaction that a SIGKILL then aborts. The sync stage redoes
that batch from its committed offset and state: the entry at each
``sync_seq`` must come out the same. Devices stay connected through a gateway
while workers are killed at random moments; afterwards every entry a device
applied must be the one finally committed at its ``sync_seq``, and every
device's timeline must be dense (no pull page ever showed a hole).
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from pipeline.gateway import auth
from pipeline.log.topics import catalogue
from pipeline.model.events import Limits, decode_inbox
from pipeline.sdk.client import SyncClient
from pipeline.settings import Settings
from tests.fault.conftest import record_recovery
from tests.fault.test_faults import (
    GatewaySlot,
    check_clean,
    flowing,
    running_traffic,
    stop_cleanly,
)
from tests.fault.workers import WorkerPool
from tests.support import eventually, read_topic

pytestmark = pytest.mark.fault

WATCHED = [f"u{i:03d}" for i in range(8)]  # users of tests/fault/traffic.py with a device


async def committed_entries(settings: Settings) -> dict[tuple[str, int], str]:
    """(user, sync_seq) → event_id of every committed inbox entry."""
    limits = Limits(max_body_bytes=1 << 30, max_group_size=1 << 30)
    entries = {}
    for raw in await read_topic(settings, catalogue(settings).inbox):
        entry = decode_inbox(raw, limits)
        entries[(entry.user_id, entry.sync_seq)] = entry.event.command.event_id
    return entries


async def _true(value: bool) -> bool:
    return value


async def test_devices_never_apply_an_entry_that_a_kill_changed(
    fault_settings: Settings, workers: WorkerPool, seed: int, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    gateway = GatewaySlot(fault_settings, tmp_path)
    secret = fault_settings.gateway.auth_secret
    workers.start_all()
    for slot in range(workers.count):
        await workers.wait_ready(slot)
    await gateway.start()
    stopping = asyncio.Event()
    devices = {
        user: SyncClient(gateway.url, auth.issue(secret, user, "phone", 3600), "phone")
        for user in WATCHED
    }
    tasks = [asyncio.create_task(d.run(stopping)) for d in devices.values()]
    try:
        for device in devices.values():
            await asyncio.wait_for(device.connected.wait(), 60)
        traffic = await running_traffic(fault_settings, seed)
        for _ in range(3):
            await flowing(traffic, acks=rng.randint(20, 60))
            slot = rng.randrange(workers.count)
            workers.kill(slot)
            await asyncio.sleep(rng.uniform(0.0, 2.0))
            workers.start(slot)
        fault_end = time.monotonic()
        await check_clean(fault_settings, traffic, "3 worker SIGKILLs, devices online", fault_end)
        committed = await committed_entries(fault_settings)
        heads = {u: max((s for (w, s) in committed if w == u), default=0) for u in WATCHED}
        caught_up = await eventually(
            lambda: _true(all(devices[u].cursor >= heads[u] for u in WATCHED)),
            bool,
            within=120,
        )
        took = time.monotonic() - fault_end
    finally:
        stopping.set()
        await asyncio.gather(*tasks)
        gateway.close()
    assert caught_up, {
        u: f"cursor {d.cursor} of {heads[u]}: {d.pulls} pulls, {d.pushed_applied} pushed, "
        f"behind {d.behind}"
        for u, d in devices.items()
    }
    pushed = 0
    for user, device in devices.items():
        seqs = [e["sync_seq"] for e in device.entries]
        assert seqs == list(range(1, len(seqs) + 1)), f"{user}: a hole or a repeat"
        for entry in device.entries:
            final = committed.get((user, entry["sync_seq"]))
            assert final == entry["event_id"], (user, entry["sync_seq"], entry, final)
        pushed += device.pushed_applied
    assert pushed > 0, "no entry was applied from a push: the test proved nothing"
    record_recovery(
        "3 worker SIGKILLs with devices online (push reads uncommitted)",
        f"every device consistent with the committed timeline {took:.1f}s after the fault "
        f"(seed {seed}; {pushed} entries applied from pushes)",
    )
    await stop_cleanly(workers)
