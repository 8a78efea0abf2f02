"""The sensor interface: every component reports what it does through one object.

Components call ``sensor.on_…`` at the moments that matter (a batch committed,
rows inserted, an entry written to a socket) and never know what listens. This
base class listens to nothing: it is the sensor of a process whose metrics are
off (``IMSTREAM_METRICS_ENABLED=0``), so instrumented code needs no ``if``.
:class:`~pipeline.observe.prometheus.PrometheusSensor` is the one that counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

Labels = dict[str, str]
Reading = Callable[[], Iterable[tuple[Labels, float]]]
"""A gauge read when metrics are scraped: (labels, value) per series."""


class Sensor:
    enabled = False

    # ------------------------------------------------ transactional stages
    def on_batch(
        self, stage: str, partition: int, records_in: int, records_out: int, seconds: float
    ) -> None:
        """A batch of a partition committed in one transaction that took ``seconds``."""

    def on_dead_letters(self, agent: str, kinds: Sequence[str]) -> None:
        """Records sent to the dead-letter topic, by kind (see EventError.kind)."""

    def on_reopen(self, stage: str, partition: int, reason: str) -> None:
        """A partition was dropped (its transaction failed, it was fenced) to be reopened."""

    def on_restore(self, stage: str, partition: int, seconds: float, keys: int) -> None:
        """A partition's state was restored from its changelog."""

    def on_dedupe_evicted_early(self, entries: int) -> None:
        """Dedupe entries dropped before their window ended (over the count bound)."""

    def on_task_death(self, task: str) -> None:
        """A supervised background task ended and is being restarted."""

    # ------------------------------------------------ ClickHouse sinks
    def on_insert(self, sink: str, rows: int, seconds: float) -> None:
        """A batch was written to ClickHouse (all its inserts, ``seconds`` in total)."""

    def on_insert_retry(self, sink: str) -> None:
        """A write failed and will be retried."""

    def on_stored(self, sink: str, stamps: Iterable[bytes], now_ms: int) -> None:
        """Records whose rows are now readable in ClickHouse, with their hop stamps."""

    # ------------------------------------------------ push
    def on_pushed(self, kind: str, records: int) -> None:
        """Records the push agent copied to gateways' push topics."""

    def on_socket_write(self, stamps: bytes, now_ms: int) -> None:
        """A gateway wrote an entry to a device's socket (closing its hop chain)."""

    def on_push_dropped(self, entries: int) -> None:
        """A gateway dropped queued entries of a slow device (told to pull instead)."""

    def on_limited(self, limit: str) -> None:
        """A request or socket was refused (429) by one of a user's limits."""

    # ------------------------------------------------ gateway HTTP
    def on_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """An HTTP request was answered."""

    # ------------------------------------------------ read at scrape time
    def watch(self, name: str, documentation: str, reading: Reading) -> None:
        """Expose ``reading`` as the gauge ``name`` (read on every scrape)."""

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return b""
