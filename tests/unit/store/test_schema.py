from __future__ import annotations

from pipeline.store.schema import migrations, split_statements


def test_split_statements_drops_comments_and_blank_parts() -> None:
    text = (
        "-- a comment; with a semicolon\nCREATE TABLE a (x UInt8) ENGINE = Memory;\n\nSELECT 1;\n"
    )
    assert split_statements(text) == ("CREATE TABLE a (x UInt8) ENGINE = Memory", "SELECT 1")


def test_migrations_are_numbered_in_order() -> None:
    found = migrations()
    assert [m.version for m in found] == sorted(m.version for m in found)
    assert found[0].version == 1
    assert all(m.statements for m in found)
