"""The issue's targets, judged from the results: met, not met, or not measured.

Nothing here asserts: a target that was missed is a row that says so, with the
figure that missed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Document = dict[str, Any]

RATIO = 0.5
SUSTAINED_MSGS = 10_000
LATENCY_RATE, LATENCY_P99_MS = 2_000, 100.0
FANOUT_SIZE, FANOUT_ENTRIES = 1_000, 100_000
READS_ROWS, READS_P99_MS = 10_000_000, 20.0


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
    target = f"pipeline ≥ {RATIO:.0%} of the raw copy loop (same run)"
    best, rates = best_pipeline(throughput), baseline_rates(baseline)
    if best is None or not rates:
        return Verdict(target, "no sustained throughput run or no baseline", "not measured")
    if (throughput or {}).get("run_id") != (baseline or {}).get("run_id"):
        return Verdict(target, "baseline and throughput come from different runs", "not measured")
    ceiling_mode = max(rates, key=lambda m: rates[m])
    share = best[0] / rates[ceiling_mode]
    parts = ", ".join(f"{best[0] / r:.1%} of {m} ({r:,.0f} rec/s)" for m, r in rates.items())
    measured = f"{best[0]:,.0f} msg/s ({best[1]['workers']} worker(s)) = {parts}"
    return Verdict(target, measured, _status(share >= RATIO))


def sustained(throughput: Document | None) -> Verdict:
    target = f"≥ {SUSTAINED_MSGS:,} msg/s sustained, 1:1, stored and synced"
    best = best_pipeline(throughput)
    variants = (throughput or {}).get("result", {}).get("variants", [])
    if best is None:
        return Verdict(target, f"no sustained run among {len(variants)}", "not measured")
    window = best[1].get("window_s", [0, 0])
    measured = (
        f"{best[0]:,.0f} msg/s with {best[1]['workers']} worker(s) "
        f"over {window[1] - window[0]:.0f} s"
    )
    return Verdict(target, measured, _status(best[0] >= SUSTAINED_MSGS))


def latency(doc: Document | None) -> list[Verdict]:
    runs = [
        r
        for r in (doc or {}).get("result", {}).get("runs", [])
        if r["offered_per_s"] == LATENCY_RATE
    ]
    target = f"p99 send → push < {LATENCY_P99_MS:.0f} ms at {LATENCY_RATE:,} msg/s"
    if not runs:
        return [Verdict(target, f"no run at {LATENCY_RATE:,} msg/s", "not measured")]
    out = []
    for run in runs:
        p99 = run["push_latency"].get("p99_ms")
        note = "" if run["sustained"] else f", offered load not sustained ({_why(run)})"
        measured = f"{run['via']}: p99 {p99:,.1f} ms{note}" if p99 is not None else "no pushes"
        ok = p99 is not None and p99 < LATENCY_P99_MS and run["sustained"]
        out.append(Verdict(f"{target} (send via {run['via']})", measured, _status(ok)))
    return out


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


def fanout(doc: Document | None) -> Verdict:
    target = f"fan-out ≥ {FANOUT_ENTRIES:,} sync entries/s, {FANOUT_SIZE:,}-member groups"
    sizes = [
        s for s in (doc or {}).get("result", {}).get("sizes", []) if s["group_size"] == FANOUT_SIZE
    ]
    if not sizes or not sizes[0].get("entries_per_s"):
        return Verdict(target, "no completed run at that size", "not measured")
    rate = sizes[0]["entries_per_s"]
    return Verdict(target, f"{rate:,.0f} entries/s", _status(rate >= FANOUT_ENTRIES))


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


def all_verdicts(docs: dict[str, Document]) -> list[Verdict]:
    return [
        ratio(docs.get("throughput"), docs.get("baseline")),
        sustained(docs.get("throughput")),
        *latency(docs.get("latency")),
        fanout(docs.get("fanout")),
        *reads(docs.get("reads")),
    ]
