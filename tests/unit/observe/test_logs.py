"""A quiet start: the broker's start-up noise is not an ERROR; JSON logs on request."""

from __future__ import annotations

import logging

import orjson

from pipeline.observe.logs import JsonFormatter, StartupNoise


def record(name: str, level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, (), None)


COORDINATOR = "Group Coordinator Request failed: [Error 15] GroupCoordinatorNotAvailableError"


def test_coordinator_noise_is_dropped_while_starting_and_a_warning_later() -> None:
    starting = StartupNoise(grace_s=60)
    noise = record("aiokafka.consumer.group_coordinator", logging.ERROR, COORDINATOR)
    assert not starting.filter(noise)
    assert StartupNoise(verbose=True, grace_s=60).filter(noise)
    assert noise.levelname == "INFO"
    later = StartupNoise(grace_s=0)
    noise = record("aiokafka.consumer.group_coordinator", logging.ERROR, COORDINATOR)
    assert later.filter(noise)
    assert noise.levelname == "WARNING"


def test_a_dead_coordinator_while_starting_is_quiet_too() -> None:
    dead = record(
        "aiokafka.consumer.group_coordinator",
        logging.WARNING,
        "Marking the coordinator dead (node 1)for group imstream.push.",
    )
    assert not StartupNoise(grace_s=60).filter(dead)


def test_other_errors_stay_errors() -> None:
    starting = StartupNoise(grace_s=60)
    for kept in (
        record("aiokafka.consumer.group_coordinator", logging.ERROR, "Heartbeat failed: boom"),
        record("agents.worker", logging.ERROR, COORDINATOR),
    ):
        assert starting.filter(kept)
        assert kept.levelname == "ERROR"


def test_json_lines() -> None:
    line = orjson.loads(JsonFormatter().format(record("agents.worker", logging.INFO, "up")))
    assert line["level"] == "INFO"
    assert line["logger"] == "agents.worker"
    assert line["message"] == "up"
    assert line["ts"].endswith("+00:00")
