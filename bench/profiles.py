"""Scenario sizes: one frozen object per profile.

``quick`` is for development and CI (minutes, noisy figures); ``full`` is the
run whose figures go into BENCHMARKS.md (about half an hour on 2 cores). Any
field can be overridden: ``QUICK.replace(fanout_sizes=(10,))``; the smoke test
does that with tiny sizes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    body_bytes: int = 100
    """Message body size; every scenario and the baseline use records of this body."""

    # baseline: raw aiokafka consume -> produce copy loops
    baseline_records: int = 1_000_000
    baseline_modes: tuple[str, ...] = ("plain", "transactional")

    # throughput: 1:1 traffic, ingest -> stored -> synced
    throughput_workers: tuple[int, ...] = (1, 2)
    throughput_pairs: int = 1_000
    throughput_duration_s: float = 75.0
    throughput_warmup_s: float = 15.0
    """Rates are measured from the end of the warm-up to the end of sending."""
    throughput_lag_target: int = 10_000
    """Records of lag (summed over agents, /health) the offered load steers towards."""
    throughput_chunk: int = 500
    throughput_metrics_off: tuple[int, ...] = (2,)
    """Worker counts also run with IMSTREAM_METRICS_ENABLED=0, right after the same
    count with metrics on: what metrics (and the hop stamps) cost."""

    # fan-out: group sizes, sync entries per size
    fanout_sizes: tuple[int, ...] = (10, 100, 1_000)
    fanout_entries: int = 500_000
    fanout_groups: int = 10
    fanout_workers: int = 1

    # end-to-end latency: send -> push on a WebSocket, paced
    latency_rates: tuple[int, ...] = (0, 200, 1_000, 2_000, 5_000)
    """Offered msg/s; 0 is the lone message (one at a time, each after the last push)."""
    latency_lone_messages: int = 100
    latency_duration_s: float = 30.0
    latency_pairs: int = 200
    latency_via: tuple[str, ...] = ("http", "sdk")
    latency_workers: int = 1
    latency_max_in_flight: int = 2_000

    # reads over a large store
    reads_messages: int = 10_000_000
    reads_conversations: int = 100_000
    reads_sync_entries: int = 10_000_000
    reads_users: int = 100_000
    reads_queries: int = 2_000
    reads_settle_s: float = 300.0

    # restore: the sequencer opening over this many conversations' state
    restore_conversations: int = 1_000_000

    # live views (imstream live): capacity on a pre-written timeline, then beside a worker
    live_events: int = 200_000
    live_conversations: int = 1_000
    live_rates: tuple[int, ...] = (500, 1_000, 2_000)
    """Offered msg/s through the SDK, one worker and the live app running."""
    live_duration_s: float = 30.0

    # send flood: others' send -> push latency while one user floods a group
    flood_rate: int = 200
    """The others' offered msg/s in total, over HTTP, in both phases."""
    flood_duration_s: float = 30.0
    flood_group_size: int = 1_000
    flood_senders: int = 16
    """The flooder's concurrent request loops."""

    # read state: the conversation list, the badge and "read by N" on a synthetic
    # store; read markers through the sync stage
    readstate_conversations: int = 10_000
    readstate_messages: int = 20
    """Messages per conversation of the listing user."""
    readstate_group_members: int = 10_000
    readstate_queries: int = 500
    readstate_markers: int = 100_000
    readstate_marker_workers: int = 2

    drain_timeout_s: float = 300.0

    def replace(self, **changes: Any) -> Profile:
        return dataclasses.replace(self, **changes)

    def parameters(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def override(self, assignments: list[str]) -> Profile:
        """``["fanout_sizes=10,100", "latency_duration_s=5"]`` applied to a copy."""
        kinds = {f.name: f.type for f in dataclasses.fields(self)}
        changes: dict[str, Any] = {}
        for assignment in assignments:
            name, _, raw = assignment.partition("=")
            kind = kinds.get(name.strip())
            if kind is None or name == "name":
                raise ValueError(f"no profile parameter {name!r}; see bench/profiles.py")
            changes[name.strip()] = _parse(str(kind), raw.strip())
        return self.replace(**changes)


def _parse(kind: str, raw: str) -> Any:
    if kind.startswith("tuple"):
        item = int if "int" in kind else str
        return tuple(item(v) for v in raw.split(",") if v)
    return {"int": int, "float": float, "str": str}[kind](raw)


FULL = Profile(name="full")

QUICK = Profile(
    name="quick",
    baseline_records=100_000,
    throughput_workers=(1, 2),
    throughput_pairs=200,
    throughput_duration_s=20.0,
    throughput_warmup_s=6.0,
    throughput_metrics_off=(),
    fanout_entries=60_000,
    latency_rates=(0, 200, 2_000),
    latency_lone_messages=20,
    latency_duration_s=5.0,
    latency_pairs=100,
    latency_via=("http", "sdk"),
    reads_messages=300_000,
    reads_conversations=3_000,
    reads_sync_entries=300_000,
    reads_users=3_000,
    reads_queries=300,
    reads_settle_s=20.0,
    restore_conversations=20_000,
    live_events=20_000,
    live_conversations=200,
    live_rates=(500,),
    live_duration_s=10.0,
    flood_duration_s=10.0,
    readstate_conversations=1_000,
    readstate_messages=5,
    readstate_group_members=1_000,
    readstate_queries=100,
    readstate_markers=10_000,
    readstate_marker_workers=1,
    drain_timeout_s=90.0,
)

PROFILES = {p.name: p for p in (QUICK, FULL)}
