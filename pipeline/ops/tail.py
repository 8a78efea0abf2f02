"""``imstream tail``: follow a topic of the catalogue, every record decoded.

    imstream tail timeline                    new timeline events as they come
    imstream tail inbox --user bob            bob's sync entries, as his devices get them
    imstream tail deadletter --from-beginning --max 10

A topic is named as in the catalogue (``timeline``, ``dead-letter``,
``sync-state``, ...) or by its full name. Records are read committed only,
without a consumer group (a tail commits nothing and moves no one's offsets).
A record that does not decode is shown with the reason, never skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeAlias

import orjson
from aiokafka import TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from pipeline.errors import ConfigError, EventError
from pipeline.log import kafka
from pipeline.log.deadletter import DeadLetter
from pipeline.log.topics import Topics, TopicSpec, catalogue
from pipeline.model.events import (
    Limits,
    command_dict,
    decode_command,
    decode_delivery,
    decode_inbox,
    decode_timeline,
    event_dict,
    timeline_dict,
)
from pipeline.read.sync_timeline import SyncEntry
from pipeline.settings import Settings

# a tail shows what is in the log, even records the agents refuse as too large
LIMITS = Limits(max_body_bytes=1 << 30, max_group_size=1 << 30)
USER_KEYED = ("sync", "inbox")
Record: TypeAlias = Any  # an aiokafka ConsumerRecord (the library has no types)


def _dead_letter(record: Record) -> dict[str, Any]:
    letter = DeadLetter.from_record(record)
    return {
        "reason": letter.reason,
        "stage": letter.stage,
        "source": letter.source,
        "value": letter.value.decode("utf-8", "replace"),
    }


def _inbox(record: Record) -> dict[str, Any]:
    entry = decode_inbox(record.value or b"", LIMITS)
    return {"user_id": entry.user_id, **SyncEntry.from_inbox(entry).to_json()}


def _delivery(record: Record) -> dict[str, Any]:
    delivery = decode_delivery(record.value or b"", LIMITS)
    return {"user_id": delivery.user_id, "event": event_dict(delivery.event)}


def _state(record: Record) -> Any:
    return None if record.value is None else orjson.loads(record.value)


DECODERS: dict[str, Callable[[Record], Any]] = {
    "messages": lambda r: command_dict(decode_command(r.value or b"", LIMITS)),
    "timeline": lambda r: timeline_dict(decode_timeline(r.value or b"", LIMITS)),
    "sync": _delivery,
    "inbox": _inbox,
    "dead_letter": _dead_letter,
    "sequencer_state": _state,
    "sync_state": _state,
    "presence": _state,
}


def _specs(topics: Topics) -> list[tuple[str, TopicSpec]]:
    return [
        (f.name, getattr(topics, f.name))
        for f in dataclasses.fields(topics)
        if isinstance(getattr(topics, f.name), TopicSpec)
    ]


def names(topics: Topics) -> list[str]:
    return [name.replace("_", "-") for name, _ in _specs(topics)]


def resolve(topics: Topics, name: str, prefix: str = "") -> tuple[str, TopicSpec]:
    """(kind, spec) for a catalogue name (``dead-letter``) or a topic name, with
    or without the configured prefix (``im.deadletter``)."""
    wanted = name.strip().lower().replace("-", "_")
    for field_name, spec in _specs(topics):
        if wanted in (field_name, field_name.replace("_", "")) or name in (
            spec.name,
            spec.name.removeprefix(prefix),
        ):
            return field_name, spec
    raise ConfigError(f"unknown topic {name!r}; choose one of: {', '.join(names(topics))}")


def decode(kind: str, record: Record) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": record.timestamp,
        "key": None if record.key is None else record.key.decode("utf-8", "replace"),
    }
    try:
        shown["value"] = DECODERS[kind](record)
    except (EventError, orjson.JSONDecodeError) as exc:
        shown["error"] = str(exc)
        shown["value"] = (record.value or b"").decode("utf-8", "replace")
    return shown


def text_line(shown: dict[str, Any]) -> str:
    body = shown.get("value")
    detail = body if isinstance(body, str) else orjson.dumps(body).decode()
    error = f" !! {shown['error']}" if "error" in shown else ""
    return f"p{shown['partition']}@{shown['offset']} {shown['key']}: {detail}{error}"


def partitions_for(spec: TopicSpec, kind: str, user: str | None) -> list[int]:
    if user is None:
        return list(range(spec.partitions))
    if kind not in USER_KEYED:
        raise ConfigError(f"--user needs a topic keyed by user: {', '.join(USER_KEYED)}")
    every = list(range(spec.partitions))
    return [DefaultPartitioner()(user.encode(), every, every)]


async def follow(
    settings: Settings,
    name: str,
    emit: Callable[[dict[str, Any]], None],
    *,
    user: str | None = None,
    from_beginning: bool = False,
    limit: int | None = None,
    ready: Callable[[str], None] = lambda _: None,
) -> int:
    """Emit each record (of ``user`` only, if given) until ``limit`` records or
    cancelled; ``ready`` hears once the consumer is in place. Returns the count."""
    kind, spec = resolve(catalogue(settings), name, settings.topics.prefix)
    tps = [TopicPartition(spec.name, p) for p in partitions_for(spec, kind, user)]
    consumer = kafka.consumer(settings)
    consumer.assign(tps)
    shown = 0
    try:
        await consumer.start()
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        start = {tp.partition: await consumer.position(tp) for tp in tps}
        where = "the beginning" if from_beginning else f"offsets {start}"
        ready(f"following {spec.name} from {where}" + (f" for user {user}" if user else ""))
        while limit is None or shown < limit:
            batch = await consumer.getmany(timeout_ms=500)
            for record in (r for records in batch.values() for r in records):
                if user is not None and record.key != user.encode():
                    continue
                emit(decode(kind, record))
                shown += 1
                if limit is not None and shown >= limit:
                    break
    finally:
        await consumer.stop()
    return shown
