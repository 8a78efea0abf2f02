"""Exactly-once Kafka-to-Kafka stages: state, output and offsets in one transaction.

A stage consumes one input topic in a consumer group. For every assigned input
partition it keeps:

* a transactional producer whose id names the partition
  (``<group>.<topic>.<partition>``): starting it fences any zombie that still
  holds the partition and aborts that zombie's open transaction;
* the partition's state, restored from the stage's compacted changelog topic
  (same partition number) before the first record is processed: in a task of
  its own after the rebalance callback (the partition is paused until then), so
  a long restore never holds up the group or the other partitions;
* a processor: the pure logic that turns records into output records.

Each batch of a partition is one transaction: the output records, the changed
state keys (changelog) and the input offset commit. Partitions commit on their
own: each open partition has a task that turns what the consumer fetched for it
into transactions, one after another, so a record never waits for another
partition's commit; the consumer keeps fetching meanwhile (a partition with a
full batch waiting is paused until its task catches up). A crash at any moment
leaves either all of it or none of it visible to ``read_committed`` readers,
and the replacement resumes from the committed offset with the state that
belongs to it. Any Kafka error inside a transaction closes the partition and
opens it again the same way; a partition that cannot be opened (the broker is
restarting) stays closed and is retried with backoff, shown as stalled, its
records fetched again from the committed offset when it opens. A record whose
output or state could never be written is dead-lettered instead (its state
changes undone), and a transaction ends once its output passes the configured
bounds. Kafka errors never stop the stage. (aiokafka's TxnOffsetCommit carries no group
generation, so fencing must come from per-partition transactional ids.)
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError, ProducerFenced

from agents.runtime.local_state import Checkpoint, DiskValues, LocalState, LocalStateBusy
from pipeline.log import kafka
from pipeline.log.deadletter import dead_letter_headers
from pipeline.log.topics import TopicSpec, catalogue
from pipeline.model.state import StateStore
from pipeline.observe.sensor import Sensor
from pipeline.settings import Settings

log = logging.getLogger(__name__)

RETRY_S = 1.0
MAX_RETRY_S = 10.0
FENCED_RETRY_S = 5.0  # > a heartbeat interval: if the group moved on, the revocation comes first
COMMIT_GRACE_S = 5.0  # past transaction_timeout_ms, a transaction is given up
STOP_S = 10.0
SETTLE_S = 10.0  # how long a revocation waits for a partition's transaction in flight
REBALANCE_TIMEOUT_MS = 60_000
# a static member is waited for this long before its partitions move: a restart
# (a rolling deploy) fits in it; a crashed worker's partitions wait as long
STATIC_SESSION_TIMEOUT_MS = 45_000
# how long a revocation (or the stage's stop) waits for an opening to wind down: an
# opening notices within ABANDON_POLL_S, so this is a safety net; well within the
# worker's SHUTDOWN_S, so that a stop during an opening still exits cleanly
ABANDON_WAIT_S = 8.0
ABANDON_POLL_S = 0.1  # how often a step of an opening looks whether it was called off
HEADROOM_BYTES = 4_096  # headers of a stage's records are far smaller than this

Headers = list[tuple[str, bytes]]
T = TypeVar("T")


@dataclass(slots=True)
class Output:
    """Records a processor emits for one batch (and the kinds of its dead letters)."""

    records: list[tuple[str, bytes | None, bytes | None, Headers | None]] = field(
        default_factory=list
    )
    dead_letters: list[str] = field(default_factory=list)
    size: int = 0
    """Bytes of keys and values so far (headers are small: left out)."""

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers | None = None
    ) -> None:
        """Add a record (no ``value``: a tombstone, for compacted topics)."""
        self.records.append((topic, key, value, headers))
        self.size += (len(key) if key else 0) + (len(value) if value else 0)

    def truncate(self, records: int, dead_letters: int) -> None:
        """Forget what was added after there (one input record's output)."""
        for _, key, value, _ in self.records[records:]:
            self.size -= (len(key) if key else 0) + (len(value) if value else 0)
        del self.records[records:]
        del self.dead_letters[dead_letters:]


class Processor(Protocol):
    def process(self, record: ConsumerRecord[bytes, bytes], out: Output) -> None: ...

    def end_batch(self, now_ms: int, out: Output) -> None: ...


ProcessorFactory = Callable[[StateStore], Processor]


@dataclass(slots=True)
class _Partition:
    tp: TopicPartition
    producer: AIOKafkaProducer
    state: StateStore
    processor: Processor
    committed: int
    fetched: int = 0
    """The offset after the last record taken into ``pending``."""
    pending: list[ConsumerRecord[Any, Any]] = field(default_factory=list)
    """Fetched, not yet in a transaction."""
    task: asyncio.Task[None] | None = None
    """Turns ``pending`` into transactions; None or done when the partition is idle."""
    local: LocalState | None = None
    """The state on disk, saved after each commit (None: in memory only)."""
    changes: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    """The changelog records of the transaction in flight, and the changelog offset
    after them: saved locally once it commits."""
    changes_end: int = 0

    @property
    def busy(self) -> bool:
        return self.task is not None and not self.task.done()


@dataclass(frozen=True, slots=True)
class StageSpec:
    name: str
    input: TopicSpec
    changelog: TopicSpec
    dead_letter: TopicSpec
    make_processor: ProcessorFactory
    state_sets: tuple[str, ...] = ()
    """Key prefixes of set values in the state (see pipeline/model/state.py)."""


class TransactionalStage:
    def __init__(self, settings: Settings, spec: StageSpec, sensor: Sensor | None = None) -> None:
        self.settings = settings
        self.spec = spec
        self.sensor = sensor or Sensor()
        self.group_id = f"{settings.topics.prefix}imstream.{spec.name}"
        self._parts: dict[TopicPartition, _Partition] = {}
        self._parked: dict[TopicPartition, tuple[StateStore, int]] = {}
        # assigned partitions that are closed (could not open, or a transaction
        # failed): when to try again, why, and how many times in a row
        self._closed: dict[TopicPartition, float] = {}
        self._stalled: dict[TopicPartition, tuple[str, int]] = {}
        self._opening: dict[TopicPartition, asyncio.Task[None]] = {}
        self._abandoned: set[TopicPartition] = set()
        self._lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._failure: Exception | None = None
        self._partitions = {t.name: t.partitions for t in catalogue(settings).all()}
        self.processed = 0
        self.restored: dict[int, dict[str, float]] = {}

    async def run(self, stopping: asyncio.Event) -> None:
        instance = self.settings.worker.instance_id
        self._consumer = kafka.consumer(
            self.settings,
            group_id=self.group_id,
            max_poll_records=self.settings.pipeline.batch_max_records,
            # callbacks only park and pause (restores run after them): a minute is ample
            rebalance_timeout_ms=REBALANCE_TIMEOUT_MS,
            # static membership: a restarted worker gets its partitions back
            group_instance_id=f"{instance}.{self.spec.name}" if instance else None,
            **({"session_timeout_ms": STATIC_SESSION_TIMEOUT_MS} if instance else {}),
        )
        self._consumer.subscribe([self.spec.input.name], listener=_Listener(self))
        await self._consumer.start()
        try:
            while not stopping.is_set():
                self._raise_failed()
                if self._closed:
                    async with self._lock:
                        await self._reopen_due()
                batch = await self._consumer.getmany(
                    timeout_ms=200, max_records=self.settings.pipeline.batch_max_records
                )
                async with self._lock:
                    if batch:
                        for tp, records in batch.items():
                            self._enqueue(tp, records)
                    else:
                        await self._commit_idle()
        finally:
            # leave the group first, then close: what an assignment opened on the way out too
            await self._consumer.stop()
            async with self._lock:
                await self._close_all()

    def status(self) -> dict[str, Any]:
        """Open partitions, records processed, lag (committed records not yet done),
        and the partitions that are *stalled*: closed, retried with backoff, and why;
        how each partition's state was last restored (records read from the local
        store and from the changelog)."""
        return {
            "partitions": sorted(tp.partition for tp in self._parts),
            "restored": {str(p): counts for p, counts in sorted(self.restored.items())},
            "processed": self.processed,
            "lag": sum(self.partition_lag().values()),
            "stalled": {
                str(tp.partition): {"reason": why, "attempts": attempts}
                for tp, (why, attempts) in sorted(self._stalled.items())
                if tp in self._closed
            },
        }

    def partition_lag(self) -> dict[int, int]:
        """Committed input records not processed yet, per open partition."""
        lags = {}
        if self._consumer is not None:
            for tp, part in self._parts.items():
                stable = self._consumer.last_stable_offset(tp)
                lags[tp.partition] = max(0, stable - part.committed) if stable is not None else 0
        return lags

    def _enqueue(self, tp: TopicPartition, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        """Hand fetched records to the partition's task (started if idle). A partition
        with a full batch waiting is paused: the consumer fetches for the others."""
        part = self._parts.get(tp)
        if part is None:
            return  # closed: fetched again from the committed offset when it opens
        # the consumer can hand out records again after we sought past them (a late
        # offset reset on a new topic does that): what is taken already is not redone
        if records[0].offset < part.fetched:
            records = [r for r in records if r.offset >= part.fetched]
            if not records:
                return
        part.pending.extend(records)
        part.fetched = records[-1].offset + 1
        assert self._consumer is not None
        full = len(part.pending) >= self.settings.pipeline.batch_max_records
        if full and tp in self._consumer.assignment():
            self._consumer.pause(tp)
        if not part.busy:
            part.task = asyncio.create_task(self._drain(part), name=f"{self.spec.name}:{tp}")

    async def _drain(self, part: _Partition) -> None:
        """Transactions for the partition's pending records until none are left, or
        until the partition is no longer open (a failed transaction dropped it)."""
        limit = self.settings.pipeline.batch_max_records
        while part.pending and self._parts.get(part.tp) is part:
            records, part.pending = part.pending[:limit], part.pending[limit:]
            consumer = self._consumer
            if len(part.pending) < limit and consumer and part.tp in consumer.assignment():
                consumer.resume(part.tp)
            await self._transact(part, records)

    def _raise_failed(self) -> None:
        """A partition's task (or its opening) that ended with anything but a Kafka
        error (handled inside it) is a bug: stop the stage with it, as a synchronous
        loop would."""
        if self._failure is not None:
            raise self._failure
        tasks = [part.task for part in self._parts.values()] + list(self._opening.values())
        for task in tasks:
            if task is not None and task.done() and not task.cancelled():
                exc = task.exception()
                if exc is not None:
                    raise exc

    async def _transact(
        self, part: _Partition, records: Sequence[ConsumerRecord[Any, Any]]
    ) -> None:
        tp = part.tp
        # no record below part.committed gets here: _enqueue takes each offset once,
        # from the committed offset on
        while records:
            out, taken = self._process(part, records)
            batch, records = records[:taken], records[taken:]
            part.processor.end_batch(batch[-1].timestamp, out)
            started = time.perf_counter()
            if not await self._commit_or_reopen(part, out, batch[-1].offset + 1):
                return
            self.processed += len(batch)
            written = len(out.records) - len(out.dead_letters)
            seconds = time.perf_counter() - started
            self.sensor.on_batch(self.spec.name, tp.partition, len(batch), written, seconds)
            if out.dead_letters:
                self.sensor.on_dead_letters(self.spec.name, out.dead_letters)

    def _process(
        self, part: _Partition, records: Sequence[ConsumerRecord[Any, Any]]
    ) -> tuple[Output, int]:
        """The output of the first records, up to the one that takes it past the
        transaction's bounds; and how many records that is. A record whose output or
        state could never be written is undone and dead-lettered with the reason."""
        pipeline = self.settings.pipeline
        out = Output()
        state = part.state
        for taken, record in enumerate(records, start=1):
            mark = len(out.records), len(out.dead_letters)
            state.savepoint()
            part.processor.process(record, out)
            problem = self._unwritable(out, mark[0], state)
            if problem is None:
                state.release()
            else:
                state.rollback()
                out.truncate(*mark)
                log.warning(
                    "%s: dead-lettering a record of %s: %s", self.spec.name, part.tp, problem
                )
                dead_letter(
                    out,
                    self.spec.dead_letter.name,
                    record,
                    self.spec.name,
                    problem,
                    kind="too_large",
                )
            if (
                len(out.records) >= pipeline.transaction_max_records
                or out.size >= pipeline.transaction_max_bytes
            ):
                return out, taken
        return out, len(records)

    def _unwritable(self, out: Output, since: int, state: StateStore) -> str | None:
        """Why the output added since ``since``, or the state changed since the
        savepoint, cannot be written (a record or value over max_record_bytes)."""
        limit = self.settings.pipeline.max_record_bytes
        for topic, key, value, headers in out.records[since:]:
            size = (len(key) if key else 0) + (len(value) if value else 0)
            if size > limit - HEADROOM_BYTES:  # headers are small: count them only here
                size += sum(len(k) + len(v) for k, v in headers or ())
            if size > limit:
                return f"its output to {topic} would be a {size:,}-byte record (limit {limit:,})"
        for name in state.since_savepoint():
            if state.maybe_larger_than(name, limit):
                size = state.encoded_size(name)
                if size > limit:
                    return f"its state {name[:80]!r} would be {size:,} bytes (limit {limit:,})"
        return None

    async def _commit_idle(self) -> None:
        """Commit up to the position of idle partitions. Past the last record of a
        transactional input lies the marker of the upstream's last transaction, which
        a read_committed consumer steps over but never receives: without this the
        committed offset (and the lag) would stay one short of the end for good."""
        assert self._consumer is not None
        assigned = self._consumer.assignment()
        for tp, part in list(self._parts.items()):
            stable = self._consumer.last_stable_offset(tp)
            if part.busy or part.pending or tp not in assigned:
                continue
            if stable is None or stable <= part.committed:
                continue
            position = await self._consumer.position(tp)
            if position > part.committed:
                await self._commit_or_reopen(part, Output(), position)

    async def _commit_or_reopen(self, part: _Partition, out: Output, next_offset: int) -> bool:
        """One transaction: ``out``, the state changes and ``next_offset``. On failure
        the partition is dropped (fenced) or reopened from what was committed."""
        tp = part.tp
        # a transaction whose records cannot be delivered (their topic was deleted, say)
        # would wait for ever: past the broker's own timeout for it, give it up
        limit_s = self.settings.kafka.transaction_timeout_ms / 1000 + COMMIT_GRACE_S
        try:
            await asyncio.wait_for(self._commit(part, out, next_offset), limit_s)
        except TimeoutError:
            log.warning(
                "%s: transaction on %s took over %.0fs; reopening", self.spec.name, tp, limit_s
            )
            self.sensor.on_reopen(self.spec.name, tp.partition, "transaction_timeout")
            await self._drop(tp, why=f"a transaction did not complete within {limit_s:.0f}s")
        except ProducerFenced:
            # another worker owns it now (its revocation is on the way), or the broker
            # aborted a transaction that ran out of time: take it up again later
            log.warning("%s: fenced on %s; reopening later if still ours", self.spec.name, tp)
            self.sensor.on_reopen(self.spec.name, tp.partition, "fenced")
            await self._drop(tp, why="fenced", first_retry_s=FENCED_RETRY_S)
        except KafkaError as exc:
            log.warning("%s: transaction on %s failed (%r); reopening", self.spec.name, tp, exc)
            self.sensor.on_reopen(self.spec.name, tp.partition, "transaction_failed")
            await self._drop(tp, why=f"transaction failed: {exc!r}")
        else:
            failed = self._save_local(part)
            if failed is not None:
                log.warning("%s: %s on %s; reopening", self.spec.name, failed, tp)
                await self._drop(tp, why=failed)
                return False
            part.state.commit()
            part.committed = next_offset
            self._stalled.pop(tp, None)
            return True
        return False

    async def _commit(self, part: _Partition, out: Output, next_offset: int) -> None:
        producer = part.producer
        await producer.begin_transaction()
        writer = kafka.BatchWriter(producer, self._partitions)
        for topic, key, value, headers in out.records:
            writer.add(topic, key, value, headers)
        changelog = self.spec.changelog.name
        part.changes = part.state.changelog()
        for state_key, state_value in part.changes:
            writer.add(changelog, state_key, state_value, partition=part.tp.partition)
        await writer.flush()
        part.changes_end = writer.last_offsets.get((changelog, part.tp.partition), -1) + 1
        await producer.send_offsets_to_transaction({part.tp: next_offset}, self.group_id)
        await producer.commit_transaction()

    def _save_local(self, part: _Partition) -> str | None:
        """After a commit: its state changes to the local store; why not, if that
        failed (disk full, I/O error). The store's checkpoint still says what it
        holds, so reopening the partition (from the changelog past it) is right."""
        if part.local is None or not part.changes:
            return None
        try:
            part.local.save(part.changes, part.changes_end)
        except Exception as exc:  # noqa: BLE001 (any failure of the disk: reopen)
            return f"saving the local state failed: {exc!r}"
        return None

    async def _reopen_due(self) -> None:
        assert self._consumer is not None
        now = asyncio.get_running_loop().time()
        assigned = self._consumer.assignment()
        for tp, when in list(self._closed.items()):
            if tp not in assigned:
                del self._closed[tp]
            elif when <= now:
                self._schedule_open(tp)

    def _schedule_open(self, tp: TopicPartition) -> None:
        """Open ``tp`` in a task of its own (a restore can take long: never inside a
        rebalance callback, never holding up the other partitions). The consumer
        fetches nothing for it until it is open."""
        assert self._consumer is not None
        self._closed.pop(tp, None)
        if tp in self._consumer.assignment():
            self._consumer.pause(tp)
        opening = self._opening.get(tp)
        if opening is None or opening.done():
            self._opening[tp] = asyncio.create_task(self._try_open(tp), name=f"open:{tp}")

    async def _abandon_opening(self, tp: TopicPartition) -> None:
        """Stop opening ``tp`` (revoked, or the stage stops): the opening notices at
        its next step (a Kafka call is cut short, see ``_step``) and closes what it
        started. It is not cancelled from here: a step that writes the local store
        runs in a thread, and the store must not be closed under it."""
        opening = self._opening.pop(tp, None)
        if opening is None or opening.done():
            return
        self._abandoned.add(tp)
        try:
            await asyncio.wait_for(asyncio.shield(opening), ABANDON_WAIT_S)
        except TimeoutError:
            opening.cancel()
            await asyncio.gather(opening, return_exceptions=True)
        except Exception as exc:  # noqa: BLE001 (a bug in opening: the stage stops with it)
            self._failure = exc
        finally:
            self._abandoned.discard(tp)

    async def _try_open(self, tp: TopicPartition) -> None:
        """Open ``tp``; if Kafka is not up to it (say, the broker is restarting), leave
        it closed and try again later. Its records are skipped meanwhile, and opening
        seeks back to the committed offset, so none is lost."""
        self._closed.pop(tp, None)
        try:
            await self._open(tp)
        except Abandoned:
            log.info("%s: stopped opening %s (no longer ours, or stopping)", self.spec.name, tp)
        except (KafkaError, LocalStateBusy) as exc:
            log.warning("%s: cannot open %s yet (%r); retrying", self.spec.name, tp, exc)
            self.sensor.on_reopen(self.spec.name, tp.partition, "open_failed")
            self._close(tp, f"cannot open: {exc!r}")

    async def _open(self, tp: TopicPartition) -> None:
        assert self._consumer is not None
        producer = kafka.transactional_producer(
            self.settings, f"{self.group_id}.{tp.topic}.{tp.partition}"
        )
        local = None
        try:
            await self._step(tp, producer.start())
            committed = await self._step(tp, self._consumer.committed(tp)) or 0
            parked = self._parked.pop(tp, None)
            if parked is not None and parked[1] == committed:
                state, how = parked[0], "kept in memory"
            else:
                state, local, how = await self._restore(tp.partition)
            self._check_abandoned(tp)
        except BaseException:
            if local is not None:
                local.close()
            await _stop(producer)
            raise
        self._parts[tp] = _Partition(
            tp,
            producer,
            state,
            self.spec.make_processor(state),
            committed,
            fetched=committed,
            local=local,
        )
        self._consumer.seek(tp, committed)
        self._consumer.resume(tp)  # paused before it was dropped, perhaps
        log.info(
            "%s: opened %s at offset %d (%d state keys: %s)",
            self.spec.name,
            tp,
            committed,
            len(state),
            how,
        )

    def _local_state(self, partition: int) -> LocalState | None:
        root = self.settings.state_root()
        if root is None:
            return None
        owner = self.settings.worker.instance_id or "worker"
        return LocalState(root / owner / self.group_id / str(partition))

    def _check_abandoned(self, tp: TopicPartition) -> None:
        if tp in self._abandoned:
            raise Abandoned

    async def _step(self, tp: TopicPartition, step: Awaitable[T]) -> T:
        """One Kafka step of opening ``tp`` (input partition), which may wait without
        end (aiokafka's producer start retries InitProducerId for as long as the
        transaction coordinator is loading, or busy aborting a transaction): called
        off as soon as ``tp`` is abandoned, so a revocation or a stop never waits on
        it. Cancelling a Kafka call is safe: a connection cut halfway is closed by
        aiokafka, and the opening stops the clients it started. It has no time limit
        of its own: cutting a slow start short only made a recovering partition start
        over later (tests/integration/agents/test_stalled.py)."""
        return await abandonable(step, lambda: tp in self._abandoned)

    async def _restore(self, partition: int) -> tuple[StateStore, LocalState | None, str]:
        """The partition's state. On disk: the local store, brought up to the end of
        the changelog from its checkpoint (from the start if the checkpoint does not
        hold), read through a cache. In memory: the whole changelog replayed. Also
        says how, for the log."""
        started = time.perf_counter()
        memory = StateStore(self.spec.state_sets)
        tp = TopicPartition(self.spec.changelog.name, partition)
        input_tp = TopicPartition(self.spec.input.name, partition)
        local = self._local_state(partition)
        reader = kafka.consumer(self.settings, enable_auto_commit=False)
        reader.assign([tp])
        loaded = replayed = 0
        try:
            await self._step(input_tp, reader.start())
            end = (await self._step(input_tp, reader.end_offsets([tp])))[tp]
            start = 0
            if local is not None:
                checkpoint = await asyncio.to_thread(local.open)
                if checkpoint is not None and await self._holds(reader, tp, checkpoint, end):
                    loaded = local.estimated_keys()
                    start = checkpoint.offset
                elif checkpoint is not None:
                    log.info("%s: local state of %s is stale: full restore", self.spec.name, tp)
                    await asyncio.to_thread(local.wipe)
            reader.seek(tp, start)
            while await reader.position(tp) < end:
                self._check_abandoned(input_tp)
                batch = await reader.getmany(tp, timeout_ms=500, max_records=10_000)
                records = batch.get(tp, [])
                replayed += len(records)
                if local is None:
                    for record in records:
                        memory.restore(record.key, record.value)
                elif records:
                    changes = [(r.key, r.value) for r in records]
                    await asyncio.to_thread(local.save, changes, records[-1].offset + 1)
        except BaseException:
            if local is not None:
                local.close()
            raise
        finally:
            await reader.stop()
        state = memory
        if local is not None:
            state = StateStore(self.spec.state_sets, DiskValues(local, self.spec.state_sets))
        took = time.perf_counter() - started
        self.sensor.on_restore(self.spec.name, partition, took, len(state))
        self.restored[partition] = {"local": loaded, "changelog": replayed, "seconds": took}
        how = f"about {loaded} keys on disk kept, {replayed} changelog records read"
        return state, local, how

    async def _holds(
        self, reader: AIOKafkaConsumer, tp: TopicPartition, checkpoint: Checkpoint, end: int
    ) -> bool:
        """Whether the changelog still has the record the checkpoint names just before
        its offset (see agents/runtime/local_state.py)."""
        if not checkpoint.fresh or not 0 < checkpoint.offset <= end:
            return False
        reader.seek(tp, checkpoint.offset - 1)
        while await reader.position(tp) < checkpoint.offset:
            self._check_abandoned(TopicPartition(self.spec.input.name, tp.partition))
            records = (await reader.getmany(tp, timeout_ms=500, max_records=1)).get(tp, [])
            if records:
                first = records[0]
                return first.offset == checkpoint.offset - 1 and checkpoint.names(
                    first.key, first.value
                )
        return False  # compacted away (the position moved past it)

    async def _drop(
        self, tp: TopicPartition, why: str | None = None, first_retry_s: float = RETRY_S
    ) -> None:
        """Close ``tp`` and forget its state (it is restored when it opens again).
        Called from the partition's own task when a transaction fails (``why``: then
        it is reopened after a backoff)."""
        part = self._parts.pop(tp, None)
        if part is not None:
            part.pending.clear()
            await _stop(part.producer)
            _close_local(part)
        if why is not None:
            self._close(tp, why, first_retry_s)

    def _close(self, tp: TopicPartition, why: str, first_retry_s: float = RETRY_S) -> None:
        """Retry ``tp`` after a backoff that doubles with each failure in a row (up to
        MAX_RETRY_S, with jitter); until it commits again it shows as stalled."""
        attempts = self._stalled.get(tp, ("", 0))[1] + 1
        self._stalled[tp] = (why, attempts)
        backoff = min(first_retry_s * 2 ** (attempts - 1), MAX_RETRY_S)
        jittered = backoff * random.uniform(0.8, 1.2)  # noqa: S311
        self._closed[tp] = asyncio.get_running_loop().time() + jittered

    async def _park(self, tp: TopicPartition) -> None:
        """Close ``tp`` after its transaction in flight, keeping its state in case the
        partition comes back at the same offset (a rebalance that changed nothing)."""
        part = self._parts.get(tp)
        if part is None:
            return
        part.pending.clear()  # the task stops after its current transaction
        # state on disk is not parked: its store is closed, and reopening it is quick
        if await self._settled(part) and self._parts.get(tp) is part and part.local is None:
            self._parked[tp] = (part.state, part.committed)
        self._parts.pop(tp, None)
        await _stop(part.producer)
        _close_local(part)

    async def _settled(self, part: _Partition) -> bool:
        """Wait for the partition's transaction in flight; True if the state is clean
        (everything it holds is committed). A transaction that hangs is cancelled: the
        next owner's producer fences and aborts it."""
        if part.task is None:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(part.task), SETTLE_S)
        except TimeoutError:
            part.task.cancel()
            return False
        except Exception as exc:  # noqa: BLE001 (a processor's bug: the stage stops with it)
            self._failure = exc
            return False
        return True

    async def _close_all(self) -> None:
        """Every partition at once (each may wait for its transaction or producer)."""
        await asyncio.gather(*(self._abandon_opening(tp) for tp in list(self._opening)))
        await asyncio.gather(*(self._park(tp) for tp in list(self._parts)))
        self._parked.clear()

    async def revoked(self, tps: list[TopicPartition]) -> None:
        async with self._lock:
            await asyncio.gather(*(self._revoke(tp) for tp in tps))

    async def _revoke(self, tp: TopicPartition) -> None:
        await self._abandon_opening(tp)
        await self._park(tp)
        self._closed.pop(tp, None)
        self._stalled.pop(tp, None)

    async def assigned(self, tps: list[TopicPartition]) -> None:
        async with self._lock:
            for tp in set(self._parked) - set(tps):
                del self._parked[tp]
            for tp in tps:
                self._schedule_open(tp)


class Abandoned(Exception):  # not an error: an opening was called off
    """An opening noticed it was abandoned."""


async def abandonable(step: Awaitable[T], abandoned: Callable[[], bool]) -> T:
    """``step``'s result; cancelled (and ``Abandoned`` raised) as soon as
    ``abandoned()`` says so, looked at every ABANDON_POLL_S. Cancelling the caller
    cancels it too."""
    task = asyncio.ensure_future(step)
    try:
        while not task.done():
            if abandoned():
                raise Abandoned
            await asyncio.wait({task}, timeout=ABANDON_POLL_S)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return task.result()


async def _stop(producer: AIOKafkaProducer) -> None:
    """Stop a producer that may be broken (its transaction failed, the broker is away,
    its records cannot be delivered): within STOP_S, else leave it."""
    try:
        await asyncio.wait_for(producer.stop(), STOP_S)
    except KafkaError as exc:
        log.warning("stopping a transactional producer failed: %r", exc)
    except TimeoutError:
        log.warning("a transactional producer did not stop within %.0fs; left", STOP_S)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, stage: TransactionalStage) -> None:
        self.stage = stage

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.stage.revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.stage.assigned(list(assigned))


def dead_letter(
    out: Output,
    topic: str,
    record: ConsumerRecord[Any, Any],
    stage: str,
    reason: str,
    *,
    kind: str = "invalid",
) -> None:
    """Send ``record`` as it is to the dead-letter topic, the reason in its headers;
    ``kind`` (a small fixed set: see EventError.kind) is what metrics count it by."""
    headers = dead_letter_headers(record, stage, reason, kind)
    out.send(topic, record.key, record.value or b"", headers)
    out.dead_letters.append(kind)


def _close_local(part: _Partition) -> None:
    if part.local is not None:
        part.local.close()
        part.local = None
