"""Every DDL statement and query in pipeline/ also runs on a modern ClickHouse.

The local server is Debian's 18.16; users run current releases. chdb embeds a
current ClickHouse engine in-process: each migration, each query of
pipeline/store/queries.py (with example parameters, rendered by clickhouse-driver's
own escaping) and each INSERT (with an example row) is executed on it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from chdb import session as chdb_session
from clickhouse_driver.util.escape import escape_param, escape_params

from pipeline.store import queries, schema

AT = datetime(2026, 11, 27, 10, 30, tzinfo=UTC)
EVENT = uuid.UUID("5899b688-0000-4000-8000-000000000001")
CONTEXT = SimpleNamespace(server_info=SimpleNamespace(get_timezone=lambda: "UTC"))

PERIOD = {"since": AT.date(), "until": AT.date()}

EXAMPLE_PARAMS: dict[str, dict[str, Any]] = {
    "HISTORY_HEAD": {"conversation_id": "c1"},
    "HISTORY_RANGE": {"conversation_id": "c1", "low": 1, "high": 50},
    "MEMBER_LAST_ACTION": {"conversation_id": "c1", "user_id": "alice"},
    "MEMBER_ACTIONS": {"conversation_id": "c1", "user_id": "alice"},
    "CURRENT_MEMBERS": {"conversation_id": "c1"},
    "CONVERSATION": {"conversation_id": "c1"},
    "SYNC_RANGE": {"user_id": "alice", "after": 0, "high": 100},
    "SYNC_FLOOR": {"user_id": "alice"},
    "SYNC_HEAD": {"user_id": "alice"},
    "DEVICE_CURSORS": {"user_id": "alice"},
    "SYNC_PARTITIONS": {"database": "imstream"},
    "DROP_SYNC_PARTITION": {"partition_id": "20261120"},
    "USER_LARGE_GROUPS": {"user_id": "alice"},
    "LARGE_GROUPS_IN": {"conversation_ids": ("c1", "c2")},
    "USER_MEMBERSHIP_IN": {"user_id": "alice", "conversation_ids": ("c1",)},
    "LARGE_GROUP_HEADS": {"conversation_ids": ("c1",)},
    "USER_GROUP_CURSORS": {"user_id": "alice"},
    "USER_LIST_PAGE": {
        "user_id": "alice",
        "pinned": 2,
        "activity": 0,
        "conversation_id": "",
        "limit": 50,
    },
    "USER_UNREAD": {"user_id": "alice"},
    "LIST_DETAILS": {"conversation_ids": ("c1",)},
    "CONVERSATION_HEAD": {"conversation_id": "c1"},
    "READ_POINTS": {"conversation_id": "c1"},
    "MESSAGE_SENDER": {"conversation_id": "c1", "seq": 1},
    "ROLLUP_READ_LATENCY": {"since_ms": 0, "until_ms": 10, "computed_ms": 1},
    "REPORT_READ_LATENCY": PERIOD,
    "CHECK_HISTORY": {},
    "CHECK_SYNC": {},
    "CHECK_READ_ENTRIES": {},
    "CHECK_READ_TABLES": {},
    "CHECK_LARGE_GROUPS": {},
    "CHECK_LARGE_MEMBERSHIP": {},
    "REPORT_DAILY_VOLUME": PERIOD,
    "REPORT_DAILY_SENDERS": PERIOD,
    "REPORT_PERIOD_SENDERS": PERIOD,
    "REPORT_DAILY_FANOUT": PERIOD,
    "REPORT_DAILY_RECEIVERS": PERIOD,
    "REPORT_PERIOD_RECEIVERS": PERIOD,
    "REPORT_TOP_CONVERSATIONS": {**PERIOD, "limit": 10},
    "REPORT_MINUTES": {"since": AT.replace(tzinfo=None, minute=0)},
    "CONVERSATIONS_DESCRIBED": {"conversation_ids": ("c1", "c2")},
    "TABLES_IN": {"database": "imstream"},
    "ROWS_IN": {"database": "imstream"},
}

EXAMPLE_ROWS: dict[str, tuple[Any, ...]] = {
    "messages": ("c1", 1, 2, EVENT, "alice", "m1", "text/plain", "hi 'there'", 1, 2, AT),
    "conversations": ("c1", "group", "team", "alice", EVENT, 1, AT),
    "membership": ("c1", 1, "alice", "join", "alice", 0, EVENT, 1, AT),
    "sync_timeline": (
        "alice",
        1,
        "c1",
        2,
        1,
        "message",
        EVENT,
        "alice",
        "",
        "m1",
        "text/plain",
        "hi",
        2,
        AT,
    ),
    "sync_heads": ("alice", 1),
    "device_cursors": ("alice", "phone", 1, 2),
    "large_groups": ("c1", 1, 0),
    "large_group_heads": ("c1", 1, 2),
    "device_group_cursors": ("alice", "phone", "c1", 1, 2),
}


def run(session: Any, sql: str) -> Any:
    return session.query(sql, "CSV")


def migrate(session: Any, database: str) -> None:
    run(session, f"CREATE DATABASE IF NOT EXISTS {database}")
    run(session, f"USE {database}")
    run(session, schema.MIGRATIONS_TABLE)
    for migration in schema.migrations():
        for statement in migration.statements:
            run(session, statement)
        row = ", ".join(
            str(escape_param(v, CONTEXT)) for v in (migration.version, migration.name, AT)
        )
        run(session, f"{schema.RECORD} ({row})")


@pytest.fixture(scope="module")
def modern() -> Iterator[Any]:
    """A modern engine with the whole schema applied and one example row per table."""
    session = chdb_session.Session()
    migrate(session, "imstream")
    for insert in queries.INSERTS:
        values = ", ".join(str(escape_param(v, CONTEXT)) for v in EXAMPLE_ROWS[insert.table])
        run(session, f"{insert.sql} ({values})")
    yield session
    session.cleanup()


def test_the_engine_is_modern(modern: Any) -> None:
    major = int(str(run(modern, "SELECT version()")).strip().strip('"').split(".")[0])
    assert major >= 24


def test_every_migration_applies_and_is_recorded(modern: Any) -> None:
    migrate(modern, "fresh")
    applied = str(run(modern, schema.APPLIED))
    assert sorted(applied.split()) == sorted(str(m.version) for m in schema.migrations())
    tables = str(run(modern, "SHOW TABLES FROM fresh"))
    for table in ("messages", "sync_timeline", "membership", "device_cursors", "large_groups"):
        assert table in tables
    run(modern, "USE imstream")


def test_every_insert_has_run(modern: Any) -> None:
    assert {i.table for i in queries.INSERTS} == set(EXAMPLE_ROWS)
    for insert in queries.INSERTS:
        assert len(EXAMPLE_ROWS[insert.table]) == len(insert.columns), insert.table
        count = str(run(modern, f"SELECT count() FROM {insert.table}")).strip()
        assert count == "1", insert.table


def test_every_query_runs(modern: Any) -> None:
    assert set(queries.STATEMENTS) == set(EXAMPLE_PARAMS), "give every query an example"
    for name, sql in queries.STATEMENTS.items():
        run(modern, sql % escape_params(EXAMPLE_PARAMS[name], CONTEXT))
    page = str(
        run(modern, queries.HISTORY_RANGE % escape_params(EXAMPLE_PARAMS["HISTORY_RANGE"], CONTEXT))
    )
    assert "hi 'there'" in page  # quotes survived the escaping


def test_every_statement_is_registered() -> None:
    """No SQL string in pipeline/store/queries.py escapes the registry the checks above walk."""
    registered = set(queries.STATEMENTS.values()) | {i.sql for i in queries.INSERTS}
    constants = {
        name: value
        for name, value in vars(queries).items()
        if name.isupper() and isinstance(value, str)
    }
    assert set(constants.values()) <= registered


def test_a_users_large_groups_are_found_through_the_membership_view(modern: Any) -> None:
    """membership_by_user is filled by its view from the example membership row."""
    sql = queries.USER_LARGE_GROUPS % escape_params({"user_id": "alice"}, CONTEXT)
    assert str(run(modern, sql)).split() == ['"c1",1,0']
    sql = queries.USER_MEMBERSHIP_IN % escape_params(
        {"user_id": "alice", "conversation_ids": ("c1",)}, CONTEXT
    )
    assert str(run(modern, sql)).split() == ['"c1",1,"join",0']


def test_the_read_state_views_fill_from_messages_and_sync_entries(modern: Any) -> None:
    """conversation_heads, user_conversations and read_points are filled from the
    example membership, conversation, message and sync entries of their kinds."""
    run(modern, "USE imstream")
    for kind, seq, body, sync_seq in (("read", 1, "", 2), ("muted", 0, "on", 3)):
        row = ("alice", sync_seq, "c1", 0, seq, kind, EVENT, "alice", "pc", "", "", body, 3, AT)
        values = ", ".join(str(escape_param(v, CONTEXT)) for v in row)
        run(modern, f"{queries.INSERT_SYNC_TIMELINE.sql} ({values})")
    page = dict(EXAMPLE_PARAMS["USER_LIST_PAGE"])
    (row,) = str(run(modern, queries.USER_LIST_PAGE % escape_params(page, CONTEXT))).splitlines()
    # c1: head 1, joined after 0, marker 1, sent 1, muted, not pinned, active at 2
    assert row == '"c1",1,0,1,1,1,0,2'
    user = escape_params({"user_id": "alice"}, CONTEXT)
    assert str(run(modern, queries.USER_UNREAD % user)).split() == ["0,0,1"]
    details = queries.LIST_DETAILS % escape_params({"conversation_ids": ("c1",)}, CONTEXT)
    assert sorted(str(run(modern, details)).splitlines()) == [
        '"head","c1","alice","text/plain","hi \'there\'"',
        '"info","c1","group","team",""',
    ]
    points = queries.READ_POINTS % escape_params({"conversation_id": "c1"}, CONTEXT)
    assert str(run(modern, points)).split() == ['"alice",1']
