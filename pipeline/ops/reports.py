"""Built-in analytics reports over the rollups, and ad-hoc queries.

    imstream stats daily|top|active|fanout|read-latency [--since DAY] [--until DAY]
    imstream sql "SELECT ..."

Every report reads the rollups of migration 0003 (conversation_days,
sender_days, user_sync_days) or 0008 (read_latency_hours), never the raw
tables, so it costs the same whatever the size of the history; a replayed sink
batch changes none of its figures (see pipeline/store/migrations/0003_rollups.sql).
A period is a range of whole UTC days, both ends included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from clickhouse_driver.errors import ServerException

from pipeline.errors import QueryError, ValidationError
from pipeline.ops.output import Table
from pipeline.read import read_latency
from pipeline.store import queries
from pipeline.store.clickhouse import ClickHouse

DEFAULT_DAYS = 30
DEFAULT_TOP = 10
READONLY = 164  # ClickHouse's error code for a write in read-only mode


@dataclass(frozen=True, slots=True)
class Period:
    since: date
    until: date

    def __post_init__(self) -> None:
        if self.since > self.until:
            raise ValidationError(f"the period starts ({self.since}) after it ends ({self.until})")

    @classmethod
    def ending(cls, until: date | None = None, days: int = DEFAULT_DAYS) -> Period:
        """``days`` whole days up to ``until`` (default: today, UTC)."""
        if days < 1:
            raise ValidationError("a period is at least 1 day")
        end = until or datetime.now(UTC).date()
        return cls(end - timedelta(days=days - 1), end)

    def params(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until}


def daily_volume(store: ClickHouse, period: Period, limit: int = DEFAULT_TOP) -> Table:
    """Per day: messages stored and conversations with at least one message."""
    rows = store.execute_sync(queries.REPORT_DAILY_VOLUME, period.params())
    return Table(("day", "messages", "conversations"), [tuple(r) for r in rows])


def top_conversations(store: ClickHouse, period: Period, limit: int = DEFAULT_TOP) -> Table:
    """The ``limit`` conversations with the most messages in the period."""
    if limit < 1:
        raise ValidationError("the number of conversations to show must be >= 1")
    busiest = store.execute_sync(
        queries.REPORT_TOP_CONVERSATIONS, {**period.params(), "limit": limit}
    )
    described: dict[str, tuple[str, str]] = {}
    if busiest:
        ids = tuple(conversation for conversation, _, _ in busiest)
        found = store.execute_sync(queries.CONVERSATIONS_DESCRIBED, {"conversation_ids": ids})
        described = {conversation: (kind, title) for conversation, kind, title in found}
    return Table(
        ("conversation_id", "kind", "title", "messages", "active_days"),
        [(c, *described.get(c, ("", "")), n, days) for c, n, days in busiest],
    )


def active_users(store: ClickHouse, period: Period, limit: int = DEFAULT_TOP) -> Table:
    """Per day: distinct senders, and distinct users who got a sync entry; then the
    period as a whole (a user active on several days counts once)."""
    params = period.params()
    senders = dict(store.execute_sync(queries.REPORT_DAILY_SENDERS, params))
    reached = dict(store.execute_sync(queries.REPORT_DAILY_RECEIVERS, params))
    rows: list[tuple[Any, ...]] = [
        (day, senders.get(day, 0), reached.get(day, 0)) for day in sorted({*senders, *reached})
    ]
    total_senders = _scalar(store, queries.REPORT_PERIOD_SENDERS, params)
    total_reached = _scalar(store, queries.REPORT_PERIOD_RECEIVERS, params)
    rows.append((f"{period.since}..{period.until}", total_senders, total_reached))
    return Table(("day", "senders", "receivers"), rows)


def fanout_ratio(store: ClickHouse, period: Period, limit: int = DEFAULT_TOP) -> Table:
    """Per day: messages, sync entries written (write diffusion), and entries per
    message. Sync entries include membership notices (created, joined, left, role)."""
    params = period.params()
    messages = {day: n for day, n, _ in store.execute_sync(queries.REPORT_DAILY_VOLUME, params)}
    entries = {day: n for day, n, _ in store.execute_sync(queries.REPORT_DAILY_FANOUT, params)}
    rows = []
    for day in sorted({*messages, *entries}):
        sent, written = messages.get(day, 0), entries.get(day, 0)
        rows.append((day, sent, written, round(written / sent, 2) if sent else None))
    return Table(("day", "messages", "sync_entries", "entries_per_message"), rows)


def read_latency_days(store: ClickHouse, period: Period, limit: int = DEFAULT_TOP) -> Table:
    """Per day: messages read (each by each reader once) and the time from a message to
    the reader's first read marker covering it, p50 / p90 / p99 (to within a factor of
    2: the upper bound of the rollup's bucket; docs/read-state.md)."""
    days = read_latency.days(store.execute_sync(queries.REPORT_READ_LATENCY, period.params()))
    return Table(
        ("day", "reads", "p50_ms", "p90_ms", "p99_ms"),
        [(d.day, d.reads, d.p50_ms, d.p90_ms, d.p99_ms) for d in days],
    )


Report = Callable[[ClickHouse, Period, int], Table]

REPORTS: dict[str, Report] = {
    "daily": daily_volume,
    "top": top_conversations,
    "active": active_users,
    "fanout": fanout_ratio,
    "read-latency": read_latency_days,
}


def minute_volume(store: ClickHouse, minutes: int) -> Table:
    """Per minute of the last ``minutes`` (newest first), from the minute rollups of
    migration 0005: messages, conversations with messages, distinct senders."""
    since = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    rows = store.execute_sync(queries.REPORT_MINUTES, {"since": since.replace(tzinfo=None)})
    return Table(("minute", "messages", "conversations", "senders"), [tuple(r) for r in rows])


def live_minutes(payload: dict[str, Any]) -> Table:
    """``imstream live``'s /live/minutes answer as a table, newest minute first."""
    rows = []
    for m in payload["minutes"]:
        latency = m["latency_ms"]
        letters = ", ".join(f"{kind} {n}" for kind, n in m["dead_letters"].items())
        top = ", ".join(f"{t['conversation_id']} {t['messages']}" for t in m["top"][:3])
        rows.append(
            (
                datetime.fromtimestamp(m["start"], UTC).strftime("%Y-%m-%d %H:%M"),
                "closed" if m["closed"] else "open",
                m["messages"],
                m["conversations"],
                m["senders"],
                latency["p50"],
                latency["p99"],
                letters,
                top,
            )
        )
    return Table(
        (
            "minute",
            "window",
            "messages",
            "conversations",
            "senders",
            "p50_ms",
            "p99_ms",
            "dead_letters",
            "top",
        ),
        rows,
    )


def run_query(store: ClickHouse, sql: str, *, write: bool = False) -> Table:
    """One statement as typed by a person; read-only unless ``write``."""
    text = sql.strip().rstrip(";").strip()
    if not text:
        raise QueryError("the query is empty")
    words = text.upper().split()
    if words[0] == "INSERT" and "SELECT" not in words:
        # clickhouse-driver waits for a data block that an inline VALUES never sends
        raise QueryError("INSERT ... VALUES is not supported here; use INSERT ... SELECT")
    try:
        rows, columns = store.execute_sync(
            text, None, settings={} if write else {"readonly": 2}, with_column_types=True
        )
    except ServerException as exc:
        hint = " (read-only: imstream sql --write allows it)" if exc.code == READONLY else ""
        raise QueryError(server_reason(exc) + hint) from None
    return Table(tuple(name for name, _ in columns), [tuple(r) for r in rows])


def server_reason(exc: ServerException) -> str:
    """The server's message without the stack trace or the version suffix."""
    text = " ".join(str(exc.message).split())
    for cut in (" Stack trace:", " (version "):
        text = text.split(cut, 1)[0]
    text = text.removeprefix("DB::Exception: ").rstrip(".")
    if text.startswith("Code:"):
        text = text.split("DB::Exception: ", 1)[-1]
    return f"{text} (code {exc.code})"


def _scalar(store: ClickHouse, sql: str, params: dict[str, Any]) -> Any:
    rows = store.execute_sync(sql, params)
    return rows[0][0] if rows else None
