"""The issue's targets, judged from the results: met, not met, or not measured.

Nothing here asserts: a target that was missed is a row that says so, with the
figure that missed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Document = dict[str, Any]

RATIO = 0.14
"""1:1 messages stored and synced per second, as a share of the plain copy loop's
records per second in the same run (machines differ 2x from day to day: the ratio
does not). On a machine whose copy loop does 70,000 rec/s this is 10,000 msg/s."""
CPU_RATIO = 15.0
"""CPU of every process of the pipeline (workers, Kafka, ClickHouse) per 1:1 message,
at most this many times the copy loop's CPU per record, same run."""
LATENCY = [(2_000, 0.5, 30.0), (2_000, 0.99, 100.0), (200, 0.5, 20.0), (0, 0.5, 15.0)]
"""(offered msg/s, quantile, ms): send -> push; rate 0 is the lone message."""
GATEWAY_RATE, GATEWAY_ACK_P99_MS = 5_000, 50.0
FANOUT_SIZE, FANOUT_ENTRIES, FANOUT_RATIO = 1_000, 100_000, 1.4
READS_ROWS, READS_P99_MS = 10_000_000, 20.0
READSTATE = [
    ("list_first_page", "conversation list first page", 10_000, "conversations", 30.0),
    ("unread_total", "unread total", 10_000, "conversations", 30.0),
    ("read_by", "read by N", 10_000, "group_members", 50.0),
]
"""(result, label, size, what the size counts, p99 ms) of the read state targets."""
MARKERS_RATIO = 10.0
PIPELINE_ROLES = ("kafka", "clickhouse", "worker")


@dataclass(frozen=True, slots=True)
class Verdict:
    target: str
    measured: str
    status: str  # "met", "not met", "not measured"


def best_pipeline(throughput: Document | None) -> tuple[float, dict[str, Any]] | None:
    """The highest rate both stored and synced of a sustained variant (metrics on: the
    variants run with metrics off only show what metrics cost)."""
    best = None
    for variant in (throughput or {}).get("result", {}).get("variants", []):
        if not variant.get("sustained") or not variant.get("metrics", True):
            continue
        rate = min(variant.get("stored_msgs_per_s") or 0, variant.get("synced_msgs_per_s") or 0)
        if best is None or rate > best[0]:
            best = (rate, variant)
    return best


def baseline_rates(baseline: Document | None) -> dict[str, float]:
    modes = (baseline or {}).get("result", {}).get("modes", [])
    return {m["mode"]: m["records_per_s"] for m in modes if m.get("records_per_s")}


def _status(ok: bool) -> str:
    return "met" if ok else "not met"


def ratio(throughput: Document | None, baseline: Document | None) -> Verdict:
    target = f"pipeline ≥ {RATIO:.0%} of the plain copy loop (same run)"
    best, rates = best_pipeline(throughput), baseline_rates(baseline)
    if best is None or "plain" not in rates:
        return Verdict(target, "no sustained throughput run or no baseline", "not measured")
    if (throughput or {}).get("run_id") != (baseline or {}).get("run_id"):
        return Verdict(target, "baseline and throughput come from different runs", "not measured")
    share = best[0] / rates["plain"]
    measured = (
        f"{best[0]:,.0f} msg/s ({best[1]['workers']} worker(s)) = {share:.1%} of "
        f"{rates['plain']:,.0f} rec/s"
    )
    return Verdict(target, measured, _status(share >= RATIO))


def cpu(throughput: Document | None, baseline: Document | None) -> Verdict:
    target = (
        f"CPU per 1:1 message (workers + Kafka + ClickHouse) ≤ {CPU_RATIO:.0f}x the copy "
        "loop's CPU per record (same run)"
    )
    best = best_pipeline(throughput)
    modes = (baseline or {}).get("result", {}).get("modes", [])
    copy = next((m.get("copy_cpu_us_per_record") for m in modes if m["mode"] == "plain"), None)
    if best is None or not copy:
        return Verdict(target, "no sustained throughput run or no baseline", "not measured")
    if (throughput or {}).get("run_id") != (baseline or {}).get("run_id"):
        return Verdict(target, "baseline and throughput come from different runs", "not measured")
    parts = [
        (p["role"], p["cpu_us_per_message"])
        for p in best[1].get("cpu_per_message", [])
        if p["role"].startswith(PIPELINE_ROLES) and p.get("cpu_us_per_message") is not None
    ]
    total = sum(us for _, us in parts)
    each = ", ".join(f"{role} {us:,.0f}" for role, us in parts)
    measured = (
        f"{total:,.0f} µs/msg = {total / copy:.1f}x {copy:,.1f} µs/rec "
        f"({best[1]['workers']} worker(s): {each})"
    )
    return Verdict(target, measured, _status(total <= CPU_RATIO * copy))


def latency(doc: Document | None) -> list[Verdict]:
    runs = (doc or {}).get("result", {}).get("runs", [])
    out = []
    for rate, q, bound in LATENCY:
        key = {0.5: "p50_ms", 0.99: "p99_ms"}[q]
        at = "a lone message on an idle stack" if rate == 0 else f"{rate:,} msg/s"
        target = f"send → push {key[:3]} ≤ {bound:.0f} ms, {at}"
        matching = [r for r in runs if r["offered_per_s"] == rate]
        if not matching:
            out.append(Verdict(target, "not run", "not measured"))
        for run in matching:
            value = run["push_latency"].get(key)
            note = "" if run["sustained"] else f", offered load not sustained ({_why(run)})"
            measured = f"{value:,.1f} ms{note}" if value is not None else "no pushes"
            ok = value is not None and value <= bound and run["sustained"]
            out.append(Verdict(f"{target} (send via {run['via']})", measured, _status(ok)))
    return out


def gateway(doc: Document | None) -> Verdict:
    target = (
        f"one gateway takes ≥ {GATEWAY_RATE:,} HTTP sends/s, ack p99 ≤ {GATEWAY_ACK_P99_MS:.0f} ms"
    )
    runs = [
        r
        for r in (doc or {}).get("result", {}).get("runs", [])
        if r["via"] == "http" and r["offered_per_s"] == GATEWAY_RATE
    ]
    if not runs:
        return Verdict(target, f"no HTTP run at {GATEWAY_RATE:,}/s", "not measured")
    run = runs[0]
    p99 = run["ack_latency"].get("p99_ms")
    achieved = run.get("achieved_per_s") or 0
    measured = f"{achieved:,.0f} sends/s, ack p99 {num_ms(p99)}"
    ok = run["sustained"] and p99 is not None and p99 <= GATEWAY_ACK_P99_MS
    return Verdict(target, measured, _status(ok))


def num_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} ms"


def _why(run: dict[str, Any]) -> str:
    reasons = []
    if (run.get("achieved_per_s") or 0) < 0.95 * run["offered_per_s"]:
        reasons.append(f"achieved {run.get('achieved_per_s') or 0:,.0f}/s")
    if run["send_errors"]:
        reasons.append(f"{run['send_errors']} send errors")
    if run.get("abandoned"):
        reasons.append(f"gave up {run['abandoned']:,} sends")
    if run["pushes_missing"]:
        reasons.append(f"{run['pushes_missing']} pushes missing")
    return "; ".join(reasons) or "?"


def fanout(doc: Document | None, baseline: Document | None) -> Verdict:
    target = (
        f"fan-out ≥ {FANOUT_ENTRIES:,} sync entries/s and ≥ {FANOUT_RATIO}x the copy loop, "
        f"{FANOUT_SIZE:,}-member groups"
    )
    sizes = [
        s for s in (doc or {}).get("result", {}).get("sizes", []) if s["group_size"] == FANOUT_SIZE
    ]
    if not sizes or not sizes[0].get("entries_per_s"):
        return Verdict(target, "no completed run at that size", "not measured")
    rate = sizes[0]["entries_per_s"]
    copy = baseline_rates(baseline).get("plain")
    if not copy or (doc or {}).get("run_id") != (baseline or {}).get("run_id"):
        return Verdict(target, f"{rate:,.0f} entries/s (no same-run copy loop)", "not measured")
    measured = f"{rate:,.0f} entries/s = {rate / copy:.2f}x {copy:,.0f} rec/s"
    return Verdict(
        target, measured, _status(rate >= FANOUT_ENTRIES and rate >= FANOUT_RATIO * copy)
    )


def reads(doc: Document | None) -> list[Verdict]:
    result = (doc or {}).get("result", {})
    out = []
    for name, label, rows_key in (
        ("history_page", "history page", "messages"),
        ("sync_pull", "sync pull", "sync_entries"),
    ):
        target = f"{label} p99 < {READS_P99_MS:.0f} ms with {READS_ROWS:,} rows stored"
        p99 = result.get(name, {}).get("p99_ms")
        rows = result.get("store", {}).get(rows_key, 0)
        if p99 is None:
            out.append(Verdict(target, "not run", "not measured"))
            continue
        measured = f"p99 {p99:,.1f} ms with {rows:,} rows"
        if rows < READS_ROWS:
            out.append(Verdict(target, measured + " (smaller store)", "not measured"))
        else:
            out.append(Verdict(target, measured, _status(p99 < READS_P99_MS)))
    return out


def readstate(doc: Document | None, throughput: Document | None) -> list[Verdict]:
    result = (doc or {}).get("result", {})
    reads = result.get("reads", {})
    out = []
    for name, label, size, counted, limit in READSTATE:
        target = f"{label} p99 ≤ {limit:.0f} ms at {size:,} {counted.replace('_', ' ')}"
        p99 = reads.get(name, {}).get("p99_ms")
        if p99 is None:
            out.append(Verdict(target, "not run", "not measured"))
            continue
        have = reads.get("store", {}).get(counted, 0)
        measured = f"p99 {p99:,.1f} ms at {have:,}"
        if reads[name].get("wrong"):
            measured += f", {reads[name]['wrong']} wrong answers"
        if have < size:
            out.append(Verdict(target, measured + " (smaller)", "not measured"))
        else:
            out.append(
                Verdict(target, measured, _status(p99 <= limit and not reads[name]["wrong"]))
            )
    target = f"read markers ≥ {MARKERS_RATIO:.0f}x the send rate the pipeline sustains"
    rate = result.get("markers", {}).get("stored_per_s")
    best = best_pipeline(throughput)
    if not rate or best is None:
        out.append(Verdict(target, "not run", "not measured"))
    else:
        measured = f"{rate:,.0f} markers/s against {best[0]:,.0f} msg/s ({rate / best[0]:.1f}x)"
        out.append(Verdict(target, measured, _status(rate >= MARKERS_RATIO * best[0])))
    return out


def live(doc: Document | None, throughput: Document | None) -> Verdict:
    target = "imstream live keeps up with the throughput scenario's best rate"
    capacity = (doc or {}).get("result", {}).get("capacity", {}).get("events_per_s")
    best = best_pipeline(throughput)
    if not capacity or best is None:
        return Verdict(target, "not run", "not measured")
    measured = f"{capacity:,.0f} events/s against {best[0]:,.0f} msg/s"
    return Verdict(target, measured, _status(capacity >= best[0]))


def all_verdicts(docs: dict[str, Document]) -> list[Verdict]:
    return [
        ratio(docs.get("throughput"), docs.get("baseline")),
        cpu(docs.get("throughput"), docs.get("baseline")),
        *latency(docs.get("latency")),
        gateway(docs.get("latency")),
        fanout(docs.get("fanout"), docs.get("baseline")),
        *reads(docs.get("reads")),
        live(docs.get("live"), docs.get("throughput")),
        *readstate(docs.get("readstate"), docs.get("throughput")),
    ]
