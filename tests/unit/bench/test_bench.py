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


def test_the_ratio_is_against_the_faster_copy_loop_of_the_same_run() -> None:
    assert targets.ratio(_throughput("a", 15_000), _baseline("a")).status == "not met"
    assert targets.ratio(_throughput("a", 20_000), _baseline("a")).status == "met"
    assert targets.ratio(_throughput("a", 20_000), _baseline("b")).status == "not measured"
    assert targets.ratio(_throughput("a", 20_000, sustained=False), _baseline("a")).status == (
        "not measured"
    )


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
