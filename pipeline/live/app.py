"""``imstream live``: live per-minute views of the pipeline, kept by faust-streaming.

A read-only consumer of ``im.timeline`` and ``im.deadletter`` in its own process
and consumer group (``live.app_id``), reading ``read_committed``
(pipeline/streams/app.py): a record of an aborted transaction is never counted.
Its windowed tables live in RocksDB, with faust's changelogs to recover them;
pipeline/live/windows.py says why a restart after kill -9 counts nothing twice.

    GET /live/minutes?minutes=N   the last N minutes (default 10), newest first
    GET /live/ready               200 once its partitions are assigned and recovered
    GET /metrics                  Prometheus: faust's own sensor and the last
                                  closed minute's figures (imstream_live_*)

Per minute (the events' own time: the log's ``ts_ms``, as ClickHouse's
``created_at``): messages, conversations with messages, the busiest
conversations, active senders, send → stored latency percentiles, and dead
letters by kind. "Stored" is the message's timeline record (im.timeline, which
the ClickHouse store reads): latency is that record's timestamp minus the
producer's send time (the command's ``ts_ms``), so it includes the clock skew
between the producer's host and the sequencer's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.types import EventT
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline.live import windows
from pipeline.log.deadletter import KIND
from pipeline.log.topics import catalogue
from pipeline.settings import Settings
from pipeline.streams.app import dead_letter_topic, streams_app, timeline_topic
from pipeline.streams.records import MessageSent, TimelineEvent

WINDOW_S = 60
DEFAULT_MINUTES = 10
MAX_MINUTES = 24 * 60
SEEN_SENDERS = 100_000
"""(sender, minute) pairs remembered in memory, so that a sender's next message in
the same minute costs no table lookup (most of them: one lookup per event was 3%
of the app's CPU)."""


def app_id(settings: Settings) -> str:
    return settings.topics.prefix + settings.live.app_id


def _event_time(event: EventT[Any] | None) -> float:
    """A timeline event's window: the log's time of the event, in seconds."""
    if event is None:
        raise RuntimeError("a window is chosen inside the stream only")
    record: TimelineEvent = event.value  # type: ignore[assignment]
    return record.ts_ms / 1000.0


class LiveViews:
    """The app, its tables and agents, and what its views read."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        live = settings.live
        topics = catalogue(settings)
        self.app = streams_app(
            app_id(settings),
            settings,
            web_enabled=True,
            web_bind=live.host,
            web_port=live.port,
            store="rocksdb://",
            table_cleanup_interval=30.0,
        )
        expires = timedelta(minutes=live.keep_minutes)
        self.keep_s = live.keep_minutes * 60
        self._seen = windows.Seen(SEEN_SENDERS)
        rocks = {"block_cache_size": live.block_cache_mb * 1024 * 1024}

        def table(name: str, partitions: int) -> Any:
            return self.app.Table(
                name,
                default=dict,  # a window with nothing yet: {} (faust stores no default)
                partitions=partitions,
                options=dict(rocks),
            ).tumbling(WINDOW_S, expires=expires)

        conv_partitions = topics.timeline.partitions
        self.conversations = table("conversation-minutes", conv_partitions).relative_to(_event_time)
        self.senders = table("sender-minutes", conv_partitions).relative_to(_event_time)
        # a dead letter's window: its record's timestamp (when it was refused)
        self.dead_letters = table(
            "dead-letter-minutes", topics.dead_letter.partitions
        ).relative_to_stream()
        self.app.agent(timeline_topic(self.app, settings), name="live-timeline")(self.count)
        self.app.agent(dead_letter_topic(self.app, settings), name="live-dead-letters")(
            self.count_dead_letters
        )
        # faust makes a page's handler the ``get`` of a View class: a plain function
        views = self

        async def minutes_page(web: Any, request: Any) -> Any:
            return await views.minutes_view(web, request)

        async def ready_page(web: Any, request: Any) -> Any:
            return await views.ready_view(web, request)

        self.app.page("/live/minutes")(minutes_page)
        self.app.page("/live/ready")(ready_page)
        self.registry = CollectorRegistry()
        setup_prometheus_sensors(self.app, "/metrics", self.registry, name_prefix="faust")
        self.registry.register(_LastMinute(self))

    async def count(self, stream: Any) -> None:
        async for event in stream.events():
            record: TimelineEvent = event.value
            command = record.command
            if not isinstance(command, MessageSent) or self._too_old(record.ts_ms / 1000):
                continue
            conversation = command.conversation_id
            stored_ms = event.message.timestamp * 1000.0
            window = self.conversations[conversation]
            folded = windows.fold_message(
                window.value(event), record.seq, stored_ms - command.ts_ms
            )
            if folded is not None:
                self.conversations[conversation] = folded
            key = windows.sender_key(conversation, command.sender_id)
            if self._seen.add((key, record.ts_ms // 60_000)) and key not in self.senders:
                self.senders[key] = 1  # a set: a replay adds nothing

    async def count_dead_letters(self, stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            if self._too_old(message.timestamp):
                continue
            headers = dict(message.headers or ())
            kind = bytes(headers.get(KIND, b"unknown")).decode("utf-8", "replace")
            key = windows.dead_letter_key(kind, message.partition)
            folded = windows.fold_dead_letter(self.dead_letters[key].value(event), message.offset)
            if folded is not None:
                self.dead_letters[key] = folded

    def _too_old(self, ts_s: float) -> bool:
        return ts_s < time.time() - self.keep_s

    def minutes(self, count: int) -> list[dict[str, Any]]:
        """The last ``count`` minutes' figures, newest first, each marked closed once
        ``live.grace_s`` has passed since it ended."""
        now = time.time()
        since = (now // WINDOW_S - count + 1) * WINDOW_S
        found = windows.minutes(
            self._items(self.conversations),
            (key for key, _ in self._items(self.senders)),
            self._items(self.dead_letters),
            self.settings.live.top_n,
            since,
        )
        grace = self.settings.live.grace_s
        return [m.as_dict(closed=m.start + WINDOW_S + grace <= now) for m in found]

    @staticmethod
    def _items(wrapper: Any) -> Iterator[tuple[Any, Any]]:
        return iter(wrapper.table.data.items())

    async def minutes_view(self, web: Any, request: Any) -> Any:
        raw = request.query.get("minutes", str(DEFAULT_MINUTES))
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_MINUTES:
            return web.json(
                {"error": "invalid_request", "reason": f"minutes must be 1-{MAX_MINUTES}"},
                status=400,
            )
        return web.json({"window_s": WINDOW_S, "minutes": self.minutes(int(raw))})

    async def ready_view(self, web: Any, request: Any) -> Any:
        app = self.app
        assigned = len(app.consumer.assignment()) if app.consumer else 0
        recovered = app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
        ready = assigned > 0 and not app.rebalancing and recovered
        return web.json({"ready": ready, "assigned": assigned}, status=200 if ready else 503)


class _LastMinute(Collector):
    """The last closed minute's figures, computed when Prometheus scrapes."""

    def __init__(self, views: LiveViews) -> None:
        self.views = views

    def collect(self) -> Iterator[Metric]:
        closed = [m for m in self.views.minutes(3) if m["closed"]]
        if not closed:
            return
        last = closed[0]
        for name, text in (
            ("messages", "messages in the last closed minute"),
            ("conversations", "conversations with messages in the last closed minute"),
            ("senders", "distinct senders in the last closed minute"),
        ):
            yield GaugeMetricFamily(f"imstream_live_{name}", text, value=last[name])
        latency = GaugeMetricFamily(
            "imstream_live_send_to_stored_ms",
            "send → stored latency in the last closed minute (within 5%)",
            labels=["quantile"],
        )
        for q in ("p50", "p95", "p99"):
            value = last["latency_ms"][q]
            if value is not None:
                latency.add_metric([q], value)
        yield latency
        letters = GaugeMetricFamily(
            "imstream_live_dead_letters",
            "dead letters in the last closed minute, by kind",
            labels=["kind"],
        )
        for kind, count in last["dead_letters"].items():
            letters.add_metric([kind], count)
        yield letters


def run(settings: Settings, loglevel: str = "info") -> None:
    """Run the live app until SIGTERM / Ctrl-C."""
    views = LiveViews(settings)
    worker = faust.Worker(views.app, loglevel=loglevel)
    # at WARNING faust keeps a terminal spinner that sets the root logger to DEBUG
    # (every record of aiokafka's and faust's debug logging built, then dropped):
    # a quarter of the live app's CPU per event in the profile (BENCHMARKS.md)
    worker.spinner = None
    worker.execute_from_commandline()
