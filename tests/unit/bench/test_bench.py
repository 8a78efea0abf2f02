"""The bench's pure parts: percentiles, profile overrides, verdicts, the report."""

from __future__ import annotations

from typing import Any

import pytest

from bench import report, stats, targets
from bench.profiles import QUICK


def test_percentiles_are_nearest_rank() -> None:
    samples = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    summary = stats.summary_ms(samples)
    assert summary["p50_ms"] == 50.0
    assert summary["p99_ms"] == 99.0
    assert summary["max_ms"] == 100.0
    assert stats.summary_ms([]) == {"count": 0}


def test_cdf_ends_at_the_maximum() -> None:
    points = stats.cdf_ms([0.001, 0.002, 0.010])
    assert points[-1] == [10.0, 1.0]
    assert [p[1] for p in points] == sorted(p[1] for p in points)


def test_rate_over_a_window() -> None:
    series = [{"t": t, "n": 100 * t} for t in range(10)]
    assert stats.rate(series, "n", 2, 8) == 100.0
    assert stats.rate(series, "n", 20, 30) is None


def test_profile_overrides_parse_by_field_type() -> None:
    profile = QUICK.override(["fanout_sizes=10,100", "latency_duration_s=2.5", "latency_via=sdk"])
    assert profile.fanout_sizes == (10, 100)
    assert profile.latency_duration_s == 2.5
    assert profile.latency_via == ("sdk",)
    with pytest.raises(ValueError, match="no profile parameter"):
        QUICK.override(["fanout_size=10"])


def _throughput(run_id: str, rate: float, sustained: bool = True) -> dict[str, Any]:
    variant = {
        "workers": 1,
        "sustained": sustained,
        "stored_msgs_per_s": rate,
        "synced_msgs_per_s": rate,
        "window_s": [10, 70],
    }
    return {"run_id": run_id, "result": {"variants": [variant]}}


def _baseline(run_id: str) -> dict[str, Any]:
    modes = [
        {"mode": "plain", "records_per_s": 40_000},
        {"mode": "transactional", "records_per_s": 20_000},
    ]
    return {"run_id": run_id, "result": {"modes": modes}}


def test_the_ratio_is_against_the_plain_copy_loop_of_the_same_run() -> None:
    # 14% of 40,000 rec/s is 5,600 msg/s
    assert targets.ratio(_throughput("a", 5_000), _baseline("a")).status == "not met"
    assert targets.ratio(_throughput("a", 6_000), _baseline("a")).status == "met"
    assert targets.ratio(_throughput("a", 6_000), _baseline("b")).status == "not measured"
    assert targets.ratio(_throughput("a", 6_000, sustained=False), _baseline("a")).status == (
        "not measured"
    )


def test_cpu_counts_every_pipeline_process_and_not_the_driver() -> None:
    doc = _throughput("a", 6_000)
    doc["result"]["variants"][0]["cpu_per_message"] = [
        {"role": "bench driver", "cpu_us_per_message": 900.0},
        {"role": "kafka", "cpu_us_per_message": 50.0},
        {"role": "clickhouse", "cpu_us_per_message": 30.0},
        {"role": "worker0", "cpu_us_per_message": 150.0},
    ]
    baseline = _baseline("a")
    baseline["result"]["modes"][0]["copy_cpu_us_per_record"] = 20.0
    verdict = targets.cpu(doc, baseline)
    assert (verdict.status, verdict.measured.split(" (")[0]) == (
        "met",
        "230 µs/msg = 11.5x 20.0 µs/rec",
    )
    baseline["result"]["modes"][0]["copy_cpu_us_per_record"] = 10.0
    assert targets.cpu(doc, baseline).status == "not met"


def test_latency_targets_cover_load_and_the_lone_message() -> None:
    def run(rate: int, p50: float, p99: float, via: str = "sdk") -> dict[str, Any]:
        return {
            "via": via,
            "offered_per_s": rate,
            "achieved_per_s": rate,
            "sustained": True,
            "send_errors": 0,
            "pushes_missing": 0,
            "push_latency": {"p50_ms": p50, "p99_ms": p99},
            "ack_latency": {"p99_ms": 10.0},
        }

    doc = {"result": {"runs": [run(2_000, 25, 150), run(200, 12, 40), run(0, 16, 20)]}}
    verdicts = {v.target: v.status for v in targets.latency(doc)}
    assert verdicts == {
        "send → push p50 ≤ 30 ms, 2,000 msg/s (send via sdk)": "met",
        "send → push p99 ≤ 100 ms, 2,000 msg/s (send via sdk)": "not met",
        "send → push p50 ≤ 20 ms, 200 msg/s (send via sdk)": "met",
        "send → push p50 ≤ 15 ms, a lone message on an idle stack (send via sdk)": "not met",
    }
    assert targets.gateway(doc).status == "not measured"
    gateway_run = {"result": {"runs": [run(5_000, 30, 60, via="http")]}}
    assert targets.gateway(gateway_run).status == "met"


def test_reads_on_a_smaller_store_are_not_judged() -> None:
    doc = {
        "result": {
            "store": {"messages": 300_000, "sync_entries": 10_000_000},
            "history_page": {"p99_ms": 5.0},
            "sync_pull": {"p99_ms": 25.0},
        }
    }
    history, pull = targets.reads(doc)
    assert history.status == "not measured"
    assert pull.status == "not met"


def test_the_analytics_section_is_rendered_from_its_results_or_says_it_failed() -> None:
    timing = {"name": "daily", "kind": "report", "median_ms": 12.5, "max_ms": 40.0}
    result = {"shape": {"rows": 1_000, "days": 7}, "runs": 1, "timings": [timing]}
    rendered = report.render({}, {}, {**result, "timings": [{**timing, "result_rows": 7}]})
    assert "## Analytics" in rendered
    assert "| daily | report | 12.5 | 40.0 | 7 |" in rendered
    assert "Slowest run of any: 40 ms — **met**" in rendered
    failed = report.render({}, {}, {"scenario": "analytics", "status": "failed", "error": "boom"})
    assert "## Analytics\n\nFailed: `boom`" in failed
    assert "## Analytics" not in report.render({}, {})
