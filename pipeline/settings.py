"""The one settings object, read once from the environment at start-up.

Every knob is an environment variable named ``IMSTREAM_<GROUP>_<FIELD>``, e.g.
``IMSTREAM_KAFKA_BOOTSTRAP`` or ``IMSTREAM_PIPELINE_SYNC_RETENTION_DAYS``. The
defaults describe the local stack that ``imstream up`` starts. A value of the
wrong type, or an ``IMSTREAM_`` variable that names no setting (a typo), is a
:class:`~pipeline.errors.ConfigError` at start-up, never a surprise later.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError

HISTORY_POLICIES = ("hidden", "visible")

ENV_PREFIX = "IMSTREAM_"
NOT_SETTINGS = frozenset({"IMSTREAM_FAULT_SEED", "IMSTREAM_TEST_KEEP_STACK"})
"""``IMSTREAM_`` variables that are read by the test suite, not by imstream: the
loader lets them be (every other unknown ``IMSTREAM_`` name is a typo)."""
DAY_S = 86_400
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    bootstrap: str = "127.0.0.1:9092"
    request_timeout_ms: int = 30_000
    transaction_timeout_ms: int = 30_000
    fetch_max_wait_ms: int = 250
    """How long the broker holds a fetch with nothing to return. New records are
    returned at once whatever this is (fetch.min.bytes is 1): it only sets how often
    an idle consumer asks again."""
    txn_retry_backoff_ms: float = 1.0
    """How soon a transactional producer asks again to add a partition while the
    broker still writes the previous transaction's markers (aiokafka waits a fixed
    20 ms there; see pipeline/log/kafka.py). It is paid on every stage commit."""


@dataclass(frozen=True, slots=True)
class ClickHouseSettings:
    host: str = "127.0.0.1"
    port: int = 9000
    http_port: int = 8123
    database: str = "imstream"
    user: str = "default"
    password: str = ""
    connect_timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class TopicSettings:
    prefix: str = ""
    conversation_partitions: int = 6
    user_partitions: int = 6
    dead_letter_retention_days: int = 30
    replication_factor: int = 1
    """Replicas of every topic imstream creates: 1 on the single-node stack; use 3
    in production (with min_insync_replicas 2, acks=all then means two copies)."""
    min_insync_replicas: int = 1


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    sync_retention_days: int = 7
    dedupe_window_s: int = 300
    dedupe_max_per_partition: int = 200_000
    """Dedupe entries a sequencer partition keeps (about 400 bytes each). The window
    holds its span up to this / dedupe_window_s sends per second per partition;
    past that the oldest entries go early, counted in
    imstream_dedupe_evicted_early_total and warned in the log."""
    max_body_bytes: int = 32_768
    max_group_size: int = 10_000
    read_diffusion_threshold: int = 2_000
    history_before_join: str = "hidden"
    """What a member reads of the messages sent before they joined: ``hidden`` (what
    their sync timeline shows: nothing) or ``visible`` (all of it), in history and
    large groups' pages alike (pipeline/read/periods.py)."""
    """A group with more members than this is read diffused (sticky); 0: never."""
    batch_max_records: int = 2_000
    transaction_max_records: int = 20_000
    transaction_max_bytes: int = 16 * 1024 * 1024
    """A stage's transaction ends after the input record whose output takes it past
    either bound (one input record's output is never split); the rest of the batch
    goes in the next one."""
    max_record_bytes: int = 1_000_000
    """The largest record (key, value, headers) or state value a stage writes: under
    the producer's 1 MiB request and the broker's message.max.bytes. An input record
    whose output or state would be larger goes to the dead-letter topic instead."""
    sink_batch_max_records: int = 20_000
    sink_linger_ms: int = 200
    sink_retry_max_s: float = 5.0


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    health_host: str = "127.0.0.1"
    health_port: int = 8081
    """0 picks a free port (logged at start); -1 serves no health endpoint."""
    instance_id: str = ""
    """A stable name unique to this worker (a pod or host name): its stages join
    their groups as static members, so a restart within the session timeout (45 s
    then, not 10 s) gets the same partitions back without a rebalance; a crashed
    worker's partitions wait that long too. Empty: dynamic membership."""
    state_dir: str = ""
    """Where stages keep their state on disk, with the changelog offset it reflects
    (agents/runtime/local_state.py), so a restart replays only the changelog past
    it. Empty: ``<IMSTREAM_STACK_DIR>/state``; ``memory``: in memory only (every
    opening replays the whole changelog)."""


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    host: str = "127.0.0.1"
    port: int = 8080
    id: str = ""
    """Names this gateway's push topic; empty: <hostname>-<port> (stable across restarts)."""
    # a development default: the gateway refuses it unless it listens on loopback only
    auth_secret: str = "imstream-local-development-secret"  # noqa: S105
    auth_old_secrets: str = ""
    """Comma-separated secrets whose tokens are still accepted (a rotation's previous
    keys); tokens are signed with auth_secret only (pipeline/gateway/auth.py)."""
    token_ttl_s: int = DAY_S
    # per user, per gateway (pipeline/gateway/limits.py); 0 turns a limit off
    sends_per_s: float = 20.0
    """Sends a user may make per second, after a burst of send_burst."""
    send_burst: int = 100
    fanout_per_s: float = 500.0
    """Sync entries a user's sends may make per second (a send into a group costs its
    members; into a read-diffused one, 1), after a burst of fanout_burst: one user
    flooding a big group cannot take the fan-out from everyone else (about 15,000
    entries/s per worker, BENCHMARKS.md). 0: no limit."""
    fanout_burst: int = 5_000
    ws_max_message_bytes: int = 4_096
    """The largest frame a device may send on its WebSocket (acks and pings are
    small): a larger one closes the socket with 1009."""
    ws_heartbeat_s: float = 20.0
    """A WebSocket is pinged this often; one whose peer does not answer within half
    of it is closed (a dead phone, a dropped network)."""
    limited_delay_s: float = 1.0
    """A 429 is sent after min(Retry-After, this): a client that ignores Retry-After
    is slowed to about a request per second per connection instead of being refused
    as fast as it asks (which costs the gateway CPU: BENCHMARKS.md, "Send flood")."""
    marks_per_s: float = 50.0
    """Read markers, mutes and pins a user may set per second, after a burst of
    mark_burst (each is one sync entry of the user's own)."""
    mark_burst: int = 500
    creates_per_min: float = 30.0
    """Conversations created and members added (or removed) per user per minute,
    after a burst of create_burst."""
    create_burst: int = 30
    max_pull_bytes: int = 1_048_576
    """Message bodies one pull of the sync timeline returns at most (the entries
    past it come with the next pull; a single larger entry still comes whole)."""
    body_timeout_s: float = 10.0
    """How long a request body may take to arrive (408 after it: slow clients)."""
    idle_timeout_s: float = 15.0
    """A connection with no request in progress for this long is closed: an idle
    keep-alive connection, or one whose request head has not all arrived (a client
    trickling its headers, which no other timeout bounds)."""
    ack_interval_ms: int = 1_000
    """Cursor acks are written at most once per device per interval, the latest
    winning (pipeline/gateway/cursors.py); 0: each ack written at once."""
    max_sockets_per_user: int = 16
    max_sockets_per_device: int = 2
    max_request_bytes: int = 65_536
    push_queue_size: int = 256
    store_timeout_s: float = 1.0
    """How long a read (history, pull, cursors) waits for ClickHouse before it is
    answered 503 with Retry-After. Sends never wait on ClickHouse."""


@dataclass(frozen=True, slots=True)
class LiveSettings:
    """``imstream live``: the faust-streaming app of live per-minute views
    (pipeline/live/)."""

    host: str = "127.0.0.1"
    port: int = 6066
    """Its web views (/live/minutes) and Prometheus metrics (/metrics)."""
    app_id: str = "imstream-live"
    """Its consumer group, and the prefix of its tables' changelog topics (after the
    topic prefix)."""
    keep_minutes: int = 60
    """Minutes of windows it keeps; older events are not counted."""
    top_n: int = 10
    """Busiest conversations listed per minute."""
    grace_s: int = 30
    """A window is reported closed this long after it ends (its late events are in)."""
    block_cache_mb: int = 64
    """RocksDB block cache per table partition (faust's default is 2 GiB)."""


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    enabled: bool = True
    """Prometheus metrics on /metrics of every process, and the per-hop timestamps
    records carry for them (header ``imstream.t``); 0 turns both off."""


@dataclass(frozen=True, slots=True)
class ProcessSettings:
    event_loop: str = "asyncio"
    """The worker's and the gateway's event loop: ``asyncio`` (the standard one) or
    ``uvloop`` (faster in the benchmark, see pipeline/cli/loop.py; not the default
    while a worker can hang on shutdown after a broker restart under it)."""


@dataclass(frozen=True, slots=True)
class LogSettings:
    format: str = "text"
    """``text`` (one line per event) or ``json`` (one JSON object per line)."""


@dataclass(frozen=True, slots=True)
class StackSettings:
    """Where and how ``infra`` runs the local Kafka and ClickHouse servers."""

    dir: Path = field(default_factory=lambda: Path.cwd() / ".stack")
    cache_dir: Path = field(
        default_factory=lambda: (
            Path(os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))) / "imstream"
        )
    )
    kafka_version: str = "3.9.1"
    kafka_controller_port: int = 9093
    kafka_heap: str = "768m"
    start_timeout_s: float = 90.0


@dataclass(frozen=True, slots=True)
class Settings:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    clickhouse: ClickHouseSettings = field(default_factory=ClickHouseSettings)
    topics: TopicSettings = field(default_factory=TopicSettings)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    live: LiveSettings = field(default_factory=LiveSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    log: LogSettings = field(default_factory=LogSettings)
    process: ProcessSettings = field(default_factory=ProcessSettings)
    stack: StackSettings = field(default_factory=StackSettings)

    def state_root(self) -> Path | None:
        """The directory of the stages' local state; None keeps it in memory only."""
        if self.worker.state_dir == "memory":
            return None
        return Path(self.worker.state_dir) if self.worker.state_dir else self.stack.dir / "state"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from ``environ`` (default: ``os.environ``)."""
        env = os.environ if environ is None else environ
        known: set[str] = set()
        groups: dict[str, Any] = {}
        for group in dataclasses.fields(cls):
            group_cls = _hints(cls)[group.name]
            values: dict[str, Any] = {}
            for item in dataclasses.fields(group_cls):
                name = env_name(group.name, item.name)
                known.add(name)
                if name in env:
                    values[item.name] = _parse(name, env[name], _hints(group_cls)[item.name])
            groups[group.name] = group_cls(**values)
        unknown = sorted(
            k for k in env if k.startswith(ENV_PREFIX) and k not in known | NOT_SETTINGS
        )
        if unknown:
            raise ConfigError(
                f"unknown setting(s) {', '.join(unknown)}; see pipeline/settings.py for the names"
            )
        settings = cls(**groups)
        settings.validate()
        return settings

    def to_env(self) -> dict[str, str]:
        """Every setting as an environment variable: how a parent hands its settings
        to a worker or gateway process it starts."""
        env = {}
        for group in dataclasses.fields(self):
            values = getattr(self, group.name)
            for item in dataclasses.fields(values):
                value = getattr(values, item.name)
                env[env_name(group.name, item.name)] = (
                    str(int(value)) if isinstance(value, bool) else str(value)
                )
        return env

    def child_env(self) -> dict[str, str]:
        """This process's environment with these settings as its only IMSTREAM_*
        variables: the environment of a worker, gateway or CLI process it starts."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMSTREAM_")}
        env.update(self.to_env())
        return env

    def replace(self, **groups: Any) -> Settings:
        """A copy with whole groups replaced: ``s.replace(topics=TopicSettings(prefix="t1."))``."""
        return dataclasses.replace(self, **groups)

    def validate(self) -> None:
        checks = [
            (
                self.topics.conversation_partitions >= 1,
                "TOPICS_CONVERSATION_PARTITIONS must be >= 1",
            ),
            (self.topics.user_partitions >= 1, "TOPICS_USER_PARTITIONS must be >= 1"),
            (self.pipeline.sync_retention_days >= 1, "PIPELINE_SYNC_RETENTION_DAYS must be >= 1"),
            (self.pipeline.dedupe_window_s >= 0, "PIPELINE_DEDUPE_WINDOW_S must be >= 0"),
            (
                min(
                    self.gateway.sends_per_s,
                    self.gateway.creates_per_min,
                    self.gateway.fanout_per_s,
                    self.gateway.marks_per_s,
                )
                >= 0,
                "GATEWAY_SENDS_PER_S, GATEWAY_CREATES_PER_MIN, GATEWAY_FANOUT_PER_S and "
                "GATEWAY_MARKS_PER_S must be >= 0 (0: no limit)",
            ),
            (
                min(
                    self.gateway.send_burst,
                    self.gateway.create_burst,
                    self.gateway.fanout_burst,
                    self.gateway.mark_burst,
                )
                >= 1,
                "GATEWAY_SEND_BURST, GATEWAY_CREATE_BURST, GATEWAY_FANOUT_BURST and "
                "GATEWAY_MARK_BURST must be >= 1",
            ),
            (
                min(
                    self.gateway.max_sockets_per_user,
                    self.gateway.max_sockets_per_device,
                    self.gateway.max_pull_bytes,
                )
                >= 0,
                "GATEWAY_MAX_SOCKETS_PER_USER, _PER_DEVICE and GATEWAY_MAX_PULL_BYTES must be "
                ">= 0 (0: no limit)",
            ),
            (
                self.pipeline.dedupe_max_per_partition >= 1,
                "PIPELINE_DEDUPE_MAX_PER_PARTITION must be >= 1",
            ),
            (self.pipeline.max_body_bytes >= 1, "PIPELINE_MAX_BODY_BYTES must be >= 1"),
            (
                self.pipeline.read_diffusion_threshold >= 0,
                "PIPELINE_READ_DIFFUSION_THRESHOLD must be >= 0",
            ),
            (self.pipeline.batch_max_records >= 1, "PIPELINE_BATCH_MAX_RECORDS must be >= 1"),
            (self.gateway.push_queue_size >= 1, "GATEWAY_PUSH_QUEUE_SIZE must be >= 1"),
            (self.gateway.store_timeout_s > 0, "GATEWAY_STORE_TIMEOUT_S must be > 0"),
            (self.gateway.ack_interval_ms >= 0, "GATEWAY_ACK_INTERVAL_MS must be >= 0"),
            (self.gateway.body_timeout_s > 0, "GATEWAY_BODY_TIMEOUT_S must be > 0"),
            (self.gateway.idle_timeout_s > 0, "GATEWAY_IDLE_TIMEOUT_S must be > 0"),
            (self.gateway.limited_delay_s >= 0, "GATEWAY_LIMITED_DELAY_S must be >= 0"),
            (
                self.gateway.ws_max_message_bytes >= 256 and self.gateway.ws_heartbeat_s > 0,
                "GATEWAY_WS_MAX_MESSAGE_BYTES must be >= 256 and GATEWAY_WS_HEARTBEAT_S > 0",
            ),
            (
                self.process.event_loop in ("uvloop", "asyncio"),
                "PROCESS_EVENT_LOOP must be uvloop or asyncio",
            ),
            (
                1_024 <= self.pipeline.max_record_bytes <= 1_047_552,
                "PIPELINE_MAX_RECORD_BYTES must be between 1024 and 1047552 (1 MiB - 1 KiB)",
            ),
            (
                self.pipeline.transaction_max_records >= 1
                and self.pipeline.transaction_max_bytes >= self.pipeline.max_record_bytes,
                "PIPELINE_TRANSACTION_MAX_RECORDS must be >= 1 and "
                "PIPELINE_TRANSACTION_MAX_BYTES >= PIPELINE_MAX_RECORD_BYTES",
            ),
            (
                0 < self.kafka.txn_retry_backoff_ms <= 100,
                "KAFKA_TXN_RETRY_BACKOFF_MS must be > 0 and <= 100",
            ),
            (self.topics.replication_factor >= 1, "TOPICS_REPLICATION_FACTOR must be >= 1"),
            (
                1 <= self.topics.min_insync_replicas <= self.topics.replication_factor,
                "TOPICS_MIN_INSYNC_REPLICAS must be between 1 and TOPICS_REPLICATION_FACTOR",
            ),
            (
                min(self.live.keep_minutes, self.live.top_n, self.live.block_cache_mb) >= 1
                and self.live.grace_s >= 0,
                "LIVE_KEEP_MINUTES, LIVE_TOP_N and LIVE_BLOCK_CACHE_MB must be >= 1, "
                "LIVE_GRACE_S >= 0",
            ),
            (
                self.pipeline.history_before_join in HISTORY_POLICIES,
                f"PIPELINE_HISTORY_BEFORE_JOIN must be one of {', '.join(HISTORY_POLICIES)}",
            ),
            (self.log.format in LOG_FORMATS, f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}"),
            (":" in self.kafka.bootstrap, "KAFKA_BOOTSTRAP must be host:port[,host:port]"),
            (self.clickhouse.database.isidentifier(), "CLICKHOUSE_DATABASE must be an identifier"),
        ]
        failed = [ENV_PREFIX + msg for ok, msg in checks if not ok]
        if failed:
            raise ConfigError("; ".join(failed))


def env_name(group: str, item: str) -> str:
    return f"{ENV_PREFIX}{group.upper()}_{item.upper()}"


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _parse(name: str, raw: str, kind: Any) -> Any:
    try:
        if kind is bool:
            return _parse_bool(raw)
        if kind in (int, float, str):
            return kind(raw)
        if kind is Path:
            return Path(raw).expanduser()
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    raise ConfigError(f"{name}: unsupported setting type {kind!r}")


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(raw)
