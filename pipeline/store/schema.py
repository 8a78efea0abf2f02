"""The ClickHouse schema as numbered migrations (pipeline/store/migrations/NNNN_name.sql).

``migrate`` applies the ones a database has not seen yet, in order, and records
each in ``schema_migrations``. Statements are separated by a ``;`` at the end of
a line. Every statement uses syntax that both the old Debian server (18.16) and
current ClickHouse accept; tests/integration/store/test_sql_modern.py runs them all
on a modern engine.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from importlib import resources

from pipeline.settings import Settings
from pipeline.store.clickhouse import client, create_database

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version UInt32,
    name String,
    applied_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree()
ORDER BY version
"""

APPLIED = "SELECT version FROM schema_migrations"
RECORD = "INSERT INTO schema_migrations (version, name, applied_at) VALUES"

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def split_statements(text: str) -> tuple[str, ...]:
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    parts = re.split(r";\s*$", "\n".join(lines), flags=re.MULTILINE)
    return tuple(part.strip() for part in parts if part.strip())


def migrations() -> list[Migration]:
    found = []
    for entry in resources.files("pipeline.store.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(
                Migration(int(match[1]), match[2], split_statements(entry.read_text("utf-8")))
            )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions in {versions}")
    return found


def migrate(settings: Settings, database: str | None = None, *, rerun: bool = False) -> list[str]:
    """Create the database if needed and apply pending migrations; return their names.

    ``rerun`` also runs the migrations already recorded, which recreates tables
    dropped since (``imstream rebuild`` does): every migration must therefore be
    safe to run again (``IF NOT EXISTS``, backfills that change no aggregate).
    """
    db = database if database is not None else settings.clickhouse.database
    create_database(settings, db)
    conn = client(settings, db)
    try:
        conn.execute(MIGRATIONS_TABLE)
        done = {row[0] for row in conn.execute(APPLIED)}
        applied = []
        for migration in migrations():
            if migration.version in done and not rerun:
                continue
            for statement in migration.statements:
                conn.execute(statement)
            if migration.version not in done:
                conn.execute(RECORD, [(migration.version, migration.name, int(time.time()))])
                applied.append(f"{migration.version:04d}_{migration.name}")
        return applied
    finally:
        conn.disconnect()
