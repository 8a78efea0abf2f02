"""The Prometheus sensor: what ``/metrics`` of a worker or gateway shows.

One :class:`PrometheusSensor` per process, with its own registry (nothing is
registered at import time). Names and labels, all prefixed ``imstream_``:

stages      stage_records_in_total / stage_records_out_total {stage, partition}
            stage_batch_records {stage}, stage_transaction_seconds {stage, partition}
            stage_reopens_total {stage, partition, reason}, stage_restore_seconds {stage}
            dead_letters_total {agent, kind}, dedupe_evicted_early_total
sinks       sink_rows_total, sink_insert_seconds, sink_retries_total,
            sink_last_success_timestamp_seconds {sink}
push        push_records_total {kind}: records the push agent copied to gateways
gateway     gateway_pushes_total, gateway_push_dropped_total, gateway_pulls_total,
            gateway_limited_total {limit}, http_request_seconds {route, method, status}
latency     hop_seconds {hop, at}: each hop of the chain in pipeline/model/hops.py, as
            seen at ``at`` (gateway: every entry written to a socket; store /
            sync-store: one record in HOP_SAMPLE, when readable in ClickHouse)
            latency_seconds {path}: send_to_socket, send_to_stored, send_to_pullable
tasks       task_deaths_total {task}: supervised background tasks that ended (restarted)
gauges      lag_records {agent, partition}, and what components ``watch``
            process_info {role}: worker or gateway
process     process_cpu_seconds_total, process_resident_memory_bytes, ...
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline.model import hops
from pipeline.observe.histogram import HistogramFamily
from pipeline.observe.sensor import Reading, Sensor

BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 20000)
DURATION_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PATH_OF_SINK = {"store": "send_to_stored", "sync-store": "send_to_pullable"}
HOP_SAMPLE = 8


class PrometheusSensor(Sensor):
    enabled = True

    def __init__(self, role: str) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created: noise
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        Gauge(
            "imstream_process_info", "What this process is (worker or gateway)",
            ["role"], registry=r,
        ).labels(role).set(1)  # fmt: skip
        self.records_in = Counter(
            "imstream_stage_records_in", "Records a stage consumed and committed",
            ["stage", "partition"], registry=r,
        )  # fmt: skip
        self.records_out = Counter(
            "imstream_stage_records_out", "Records a stage wrote (output, not changelog)",
            ["stage", "partition"], registry=r,
        )  # fmt: skip
        self.batch = Histogram(
            "imstream_stage_batch_records", "Records per transaction",
            ["stage"], buckets=BATCH_BUCKETS, registry=r,
        )  # fmt: skip
        self.transaction = Histogram(
            "imstream_stage_transaction_seconds", "Time to write and commit one transaction",
            ["stage", "partition"], buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.reopens = Counter(
            "imstream_stage_reopens", "Partitions dropped to be reopened from the committed state",
            ["stage", "partition", "reason"], registry=r,
        )  # fmt: skip
        self.restore = Histogram(
            "imstream_stage_restore_seconds", "Restoring a partition's state from its changelog",
            ["stage"], buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.dedupe_early = Counter(
            "imstream_dedupe_evicted_early",
            "Dedupe entries dropped before the window ended (more than the count bound)",
            registry=r,
        )  # fmt: skip
        self.task_deaths = Counter(
            "imstream_task_deaths", "Supervised background tasks that ended and were restarted",
            ["task"], registry=r,
        )  # fmt: skip
        self.dead_letters = Counter(
            "imstream_dead_letters", "Records sent to the dead-letter topic",
            ["agent", "kind"], registry=r,
        )  # fmt: skip
        self.sink_rows = Counter(
            "imstream_sink_rows", "Records written to ClickHouse", ["sink"], registry=r
        )
        self.sink_insert = Histogram(
            "imstream_sink_insert_seconds", "Writing one batch to ClickHouse",
            ["sink"], buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.sink_retries = Counter(
            "imstream_sink_retries", "ClickHouse writes that failed and are retried",
            ["sink"], registry=r,
        )  # fmt: skip
        self.sink_success = Gauge(
            "imstream_sink_last_success_timestamp_seconds", "When a sink last wrote a batch",
            ["sink"], registry=r,
        )  # fmt: skip
        self.pushed = Counter(
            "imstream_push_records", "Records the push agent copied to gateways",
            ["kind"], registry=r,
        )  # fmt: skip
        self.socket_writes = Counter(
            "imstream_gateway_pushes", "Entries written to devices' sockets", registry=r
        )
        self.dropped = Counter(
            "imstream_gateway_push_dropped",
            "Entries dropped for slow devices (they were told to pull)", registry=r,
        )  # fmt: skip
        self.pulls = Counter("imstream_gateway_pulls", "Sync pulls answered", registry=r)
        self.limited = Counter(
            "imstream_gateway_limited", "Requests and sockets refused (429) by a user's limit",
            ["limit"], registry=r,
        )  # fmt: skip
        self.requests = Histogram(
            "imstream_http_request_seconds", "HTTP requests by route and status",
            ["route", "method", "status"], buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.hops = HistogramFamily(
            "imstream_hop_seconds", "Time of each hop of a message (pipeline/model/hops.py)",
            ["hop", "at"],
        )  # fmt: skip
        self.latency = HistogramFamily(
            "imstream_latency_seconds", "End to end: from the send to a socket or the store",
            ["path"],
        )  # fmt: skip
        self._watches: list[tuple[str, str, Reading]] = []
        self._stored = 0
        r.register(_Fast(self))

    # ------------------------------------------------ stages
    def on_batch(
        self, stage: str, partition: int, records_in: int, records_out: int, seconds: float
    ) -> None:
        p = str(partition)
        self.records_in.labels(stage, p).inc(records_in)
        self.records_out.labels(stage, p).inc(records_out)
        self.batch.labels(stage).observe(records_in)
        self.transaction.labels(stage, p).observe(seconds)

    def on_dead_letters(self, agent: str, kinds: Sequence[str]) -> None:
        for kind in kinds:
            self.dead_letters.labels(agent, kind).inc()

    def on_reopen(self, stage: str, partition: int, reason: str) -> None:
        self.reopens.labels(stage, str(partition), reason).inc()

    def on_restore(self, stage: str, partition: int, seconds: float, keys: int) -> None:
        self.restore.labels(stage).observe(seconds)

    def on_task_death(self, task: str) -> None:
        self.task_deaths.labels(task).inc()

    def on_dedupe_evicted_early(self, entries: int) -> None:
        self.dedupe_early.inc(entries)

    # ------------------------------------------------ sinks
    def on_insert(self, sink: str, rows: int, seconds: float) -> None:
        self.sink_rows.labels(sink).inc(rows)
        self.sink_insert.labels(sink).observe(seconds)
        self.sink_success.labels(sink).set(time.time())

    def on_insert_retry(self, sink: str) -> None:
        self.sink_retries.labels(sink).inc()

    def on_stored(self, sink: str, stamps: Iterable[bytes], now_ms: int) -> None:
        """Every record's send → stored; the hops of one record in HOP_SAMPLE (the
        sinks see every message at full rate: each hop is timed at the gateway too)."""
        path = self.latency.labels(PATH_OF_SINK.get(sink, sink))
        for value in stamps:
            sent = hops.sent_prefix(value)
            if sent is None:
                continue
            path.observe(max(0, now_ms - sent) / 1000)
            self._stored += 1
            if self._stored % HOP_SAMPLE == 0:
                for hop, seconds in hops.hops(hops.parse(value)):
                    self.hops.labels(hop, sink).observe(seconds)

    # ------------------------------------------------ push
    def on_pushed(self, kind: str, records: int) -> None:
        self.pushed.labels(kind).inc(records)

    def on_socket_write(self, stamps: bytes, now_ms: int) -> None:
        self.socket_writes.inc()
        chain = hops.parse(stamps)
        sent = hops.sent_ms(chain)
        if sent is None:
            return
        self.latency.labels("send_to_socket").observe(max(0, now_ms - sent) / 1000)
        for hop, seconds in hops.hops(chain, now_ms):
            self.hops.labels(hop, "gateway").observe(seconds)

    def on_push_dropped(self, entries: int) -> None:
        self.dropped.inc(entries)

    def on_limited(self, limit: str) -> None:
        self.limited.labels(limit).inc()

    # ------------------------------------------------ gateway HTTP
    def on_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).observe(seconds)
        if route == "/v1/sync" and status == 200:
            self.pulls.inc()

    # ------------------------------------------------ gauges
    def watch(self, name: str, documentation: str, reading: Reading) -> None:
        self._watches.append((name, documentation, reading))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _Fast(Collector):
    """The lock-free histograms and the watched gauges, read at scrape time."""

    def __init__(self, sensor: PrometheusSensor) -> None:
        self.sensor = sensor

    def collect(self) -> Iterator[Metric]:
        yield from self.sensor.hops.collect()
        yield from self.sensor.latency.collect()
        for name, documentation, reading in self.sensor._watches:
            series = list(reading())
            labelnames = sorted(series[0][0]) if series else []
            family = GaugeMetricFamily(name, documentation, labels=labelnames)
            for labels, value in series:
                family.add_metric([labels[n] for n in labelnames], value)
            yield family


def metrics_handler(sensor: Sensor) -> Callable[[web.Request], Awaitable[web.Response]]:
    """``GET /metrics`` for ``sensor``: the Prometheus text format, or 404 when off."""

    async def metrics(request: web.Request) -> web.Response:
        if not sensor.enabled:
            body = {"error": "not_found", "reason": "metrics are off (IMSTREAM_METRICS_ENABLED=0)"}
            return web.json_response(body, status=404)
        return web.Response(body=sensor.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return metrics


def sensor_for(role: str, enabled: bool) -> Sensor:
    """The sensor of a ``role`` process: Prometheus when metrics are on, the silent
    base when off."""
    return PrometheusSensor(role) if enabled else Sensor()
