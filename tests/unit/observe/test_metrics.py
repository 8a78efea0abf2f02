"""The sensor and its histograms, read back as Prometheus and `imstream status` read them."""

from __future__ import annotations

import pytest

from pipeline.observe.histogram import Histogram
from pipeline.observe.prometheus import PrometheusSensor, sensor_for
from pipeline.observe.scrape import parse, quantile, since
from pipeline.observe.sensor import Sensor


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    h = Histogram((0.01, 0.1))
    for value in (0.005, 0.01, 0.05, 0.5):
        h.observe(value)
    assert h.cumulative() == [("0.01", 2.0), ("0.1", 3.0), ("+Inf", 4.0)]
    assert h.count == 4
    assert h.sum == pytest.approx(0.565)


def test_quantile_interpolates_like_prometheus() -> None:
    buckets = [(0.1, 50.0), (0.2, 100.0), (float("inf"), 100.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.1)
    assert quantile(0.75, buckets) == pytest.approx(0.15)
    assert quantile(0.99, [(0.1, 0.0), (float("inf"), 10.0)]) == 0.1  # beyond the last bound
    assert quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None


def test_what_the_sensor_counts_is_what_a_scrape_reads() -> None:
    sensor = PrometheusSensor("gateway")
    sensor.on_batch("sequencer", 2, records_in=5, records_out=4, seconds=0.01)
    sensor.on_dead_letters("sequencer", ["undecodable", "rejected", "rejected"])
    for offset in range(100):
        sensor.on_socket_write(b"1000,1002,1010,1020,1022", 1030 + offset)
    sensor.on_socket_write(b"", 2000)  # an entry without stamps: counted, not timed
    sensor.on_stored("sync-store", [b"1000,1002,1010,1020", b""] * 8, 1100)
    sensor.watch("imstream_lag_records", "lag", lambda: [({"agent": "sync"}, 7.0)])
    scrape = parse(sensor.exposition().decode())
    assert scrape.value("imstream_stage_records_in_total", stage="sequencer", partition="2") == 5
    assert scrape.by("imstream_dead_letters_total", "kind") == {"undecodable": 1, "rejected": 2}
    assert scrape.value("imstream_gateway_pushes_total") == 101
    assert scrape.value("imstream_latency_seconds_count", path="send_to_socket") == 100
    assert scrape.value("imstream_latency_seconds_count", path="send_to_pullable") == 8
    hop_counts = scrape.by("imstream_hop_seconds_count", "hop")
    assert hop_counts == {
        "log": 101, "sequenced": 101, "synced": 101, "pushed": 100,
        "socket": 100,
    }  # fmt: skip
    p50 = scrape.quantile(0.5, "imstream_latency_seconds", path="send_to_socket")
    assert p50 is not None
    assert 0.075 <= p50 <= 0.1  # the true median is 0.0795
    assert scrape.value("imstream_lag_records", agent="sync") == 7
    assert scrape.value("imstream_process_info", role="gateway") == 1


def test_metrics_off_is_a_silent_sensor() -> None:
    sensor = sensor_for("worker", enabled=False)
    assert type(sensor) is Sensor
    sensor.on_batch("sync", 0, 1, 1, 0.1)
    sensor.on_socket_write(b"1,2", 3)
    assert sensor.exposition() == b""


def test_a_window_between_two_scrapes_has_only_its_own_observations() -> None:
    sensor = PrometheusSensor("gateway")
    for _ in range(50):
        sensor.on_socket_write(b"1000,1001", 1500)  # slow: 0.5 s
    before = parse(sensor.exposition().decode())
    for _ in range(50):
        sensor.on_socket_write(b"1000,1001", 1010)  # fast: 10 ms
    window = since(before, parse(sensor.exposition().decode()))
    assert window.value("imstream_gateway_pushes_total") == 50
    p99 = window.quantile(0.99, "imstream_latency_seconds", path="send_to_socket")
    assert p99 is not None
    assert p99 <= 0.01
