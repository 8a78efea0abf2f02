"""Logging for imstream processes: one line per event, as text or JSON, quiet at start.

``IMSTREAM_LOG_FORMAT=json`` writes one JSON object per line (``ts``, ``level``,
``logger``, ``message``, and ``exc`` with the traceback if there is one), for a
log shipper; ``text`` (the default) is for people.

A broker that has just started is still creating its internal topics and
electing leaders of new ones: for a few seconds every consumer group is told
"coordinator not available" and producers "not leader for partition", which
aiokafka logs as an ERROR (and "marking the coordinator dead" as a WARNING)
although it retries by itself. Those retriable coordinator messages are
dropped during the first :data:`START_GRACE_S` seconds of the process and
shown as WARNING after that (when they do say something: the coordinator has
been away for a while).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import orjson

START_GRACE_S = 60.0
RETRIABLE_COORDINATOR = (
    "GroupCoordinatorNotAvailable",
    "NotCoordinatorForGroup",
    "CoordinatorLoadInProgress",
    "CoordinatorNotAvailable",
    "Marking the coordinator dead",
    "NotLeaderForPartition",  # new topics electing their leaders
    "LeaderNotAvailable",
)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class StartupNoise(logging.Filter):
    """Retriable coordinator errors of aiokafka: dropped while the process starts
    (unless ``verbose``), WARNING afterwards."""

    def __init__(self, verbose: bool = False, grace_s: float = START_GRACE_S) -> None:
        super().__init__()
        self.verbose = verbose
        self.until = time.monotonic() + grace_s

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith("aiokafka"):
            return True
        message = record.getMessage()
        if not any(marker in message for marker in RETRIABLE_COORDINATOR):
            return True
        if time.monotonic() < self.until:
            record.levelno, record.levelname = logging.INFO, "INFO"
            return self.verbose
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def configure(log_format: str = "text", verbose: bool = False) -> logging.Handler:
    """Log to stderr at INFO (``verbose``) or WARNING, in ``log_format``; returns the
    handler (replacing any the root logger had)."""
    handler = logging.StreamHandler()
    json = log_format == "json"
    handler.setFormatter(JsonFormatter() if json else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(StartupNoise(verbose))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    return handler
