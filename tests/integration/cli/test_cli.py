"""The ``imstream`` command line, run as real processes against the real stack."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.sdk.producer import Producer, message
from pipeline.settings import Settings
from tests.support import ROOT, converged, imstream, running_worker


def ok(settings: Settings, *args: str) -> str:
    result = imstream(settings, *args)
    assert result.returncode == 0, f"imstream {' '.join(args)}: {result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


async def test_write_and_read_through_the_cli(settings: Settings) -> None:
    async with running_worker(settings):
        out = ok(
            settings, "create", "team", "--as", "alice", "--members", "bob,carol", "--title", "T"
        )
        assert out.startswith("event ")
        assert " in team: partition " in out
        assert "dm:alice:bob" in ok(
            settings, "create", "--direct", "--as", "alice", "--members", "bob"
        )
        for i in range(3):
            ok(settings, "send", "team", f"hello {i}", "--as", "alice")
        ok(settings, "join", "team", "dave", "--by", "alice")
        ok(settings, "leave", "team", "bob")
        ok(settings, "send", "team", "after", "--as", "carol", "--client-msg-id", "c-1")
        ok(settings, "send", "team", "after", "--as", "carol", "--client-msg-id", "c-1")  # retry
        ok(settings, "send", "dm:alice:bob", "psst", "--as", "bob")
        ok(settings, "role", "team", "carol", "admin", "--by", "alice")
        # everything stored, history and sync timelines alike
        report = await converged(settings)
    assert report.ok, report.summary()
    assert report.messages == 5

    page = json.loads(ok(settings, "history", "team", "--as", "alice", "--format", "json"))
    assert [(m["seq"], m["sender_id"], m["body"]) for m in page] == [
        (4, "carol", "after"),
        (3, "alice", "hello 2"),
        (2, "alice", "hello 1"),
        (1, "alice", "hello 0"),
    ]
    # dave joined after seq 3: what came before is not his (docs/roles.md)
    page = json.loads(ok(settings, "history", "team", "--as", "dave", "--format", "json"))
    assert [(m["seq"], m["sender_id"], m["body"]) for m in page] == [(4, "carol", "after")]
    short = imstream(settings, "history", "team", "--as", "alice", "--limit", "2")
    assert short.stdout.splitlines()[0].split() == ["seq", "ts_ms", "sender_id", "body"]
    assert short.stdout.rstrip().endswith("(2 rows)")
    assert "older messages: --before 3" in short.stderr

    entries = json.loads(ok(settings, "sync", "dave", "--format", "json"))
    assert [(e["sync_seq"], e["kind"], e["seq"]) for e in entries] == [
        (1, "joined", 3),
        (2, "left", 3),
        (3, "message", 4),
        (4, "role", 4),
    ]
    paged = imstream(settings, "sync", "dave", "--after", "1", "--limit", "1", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(paged.stdout)))
    assert [(r["sync_seq"], r["kind"], r["subject_id"]) for r in rows] == [("2", "left", "bob")]
    assert "cursor 2, head 4 (more to pull)" in paged.stderr
    (role,) = json.loads(ok(settings, "sync", "dave", "--after", "3", "--format", "json"))
    assert (role["sender_id"], role["subject_id"], role["body"]) == ("alice", "carol", "admin")


async def test_read_markers_mutes_and_the_conversation_list_through_the_cli(
    settings: Settings,
) -> None:
    async with running_worker(settings):
        ok(settings, "create", "team", "--as", "alice", "--members", "bob", "--title", "Team")
        ok(settings, "create", "--direct", "--as", "alice", "--members", "bob")
        for i in range(3):
            ok(settings, "send", "team", f"hello {i}", "--as", "alice")
        ok(settings, "send", "dm:alice:bob", "psst", "--as", "alice")

        def listed() -> list[dict[str, object]]:
            return json.loads(ok(settings, "conversations", "--as", "bob", "--format", "json"))

        for _ in range(120):  # the store is a moment behind the log
            if sum(int(c["unread"]) for c in listed()) == 4:  # type: ignore[call-overload]
                break
            await asyncio.sleep(0.5)
        out = ok(settings, "read", "team", "--as", "bob", "--seq", "2")
        assert " in team: partition " in out
        ok(settings, "mute", "dm:alice:bob", "--as", "bob")
        for _ in range(120):
            found = {c["conversation_id"]: c for c in listed()}
            if found["dm:alice:bob"]["muted"] and found["team"]["read_seq"] == 2:
                break
            await asyncio.sleep(0.5)
        report = await converged(settings)
    assert report.ok, report.summary()
    assert (found["team"]["unread"], found["dm:alice:bob"]["unread"]) == (1, 1)
    table = imstream(settings, "conversations", "--as", "bob")
    assert "unread total (not muted): 1" in table.stderr  # the muted one is left out
    assert table.stdout.splitlines()[0].split() == [
        "conversation_id", "kind", "title", "unread", "flags", "last"
    ]  # fmt: skip
    (entry,) = [
        e
        for e in json.loads(ok(settings, "sync", "bob", "--format", "json"))
        if e["kind"] == "read"
    ]
    assert (entry["seq"], entry["sender_id"], entry["subject_id"]) == (2, "bob", "cli")


@pytest.fixture
def live_tail(settings: Settings) -> Iterator[subprocess.Popen[str]]:
    with subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "tail", "timeline", "--format", "json"],
        cwd=ROOT,
        env=settings.child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:  # on exit: pipes closed, process waited for
        try:
            yield process
        finally:
            process.terminate()


async def test_tail_follows_a_topic_and_a_user(
    settings: Settings, live_tail: subprocess.Popen[str]
) -> None:
    assert live_tail.stderr is not None
    assert live_tail.stdout is not None
    ready = await asyncio.to_thread(live_tail.stderr.readline)
    assert ready.startswith(f"following {settings.topics.prefix}im.timeline from offsets")
    async with running_worker(settings), Producer(settings) as producer:
        await producer.create_conversation("g", "alice", ["bob"])
        await producer.publish_many([message("g", "alice", f"m{i}") for i in range(3)])
        lines = [await asyncio.to_thread(live_tail.stdout.readline) for _ in range(4)]
        shown = [json.loads(line) for line in lines]
        assert [s["value"]["event_no"] for s in shown] == [1, 2, 3, 4]
        assert [s["value"]["command"]["type"] for s in shown] == ["conversation.created"] + [
            "message.sent"
        ] * 3
        assert {s["key"] for s in shown} == {"g"}

        # blocks until bob's four entries have come through the pipeline
        bob = await asyncio.to_thread(
            imstream, settings, "tail", "--user", "bob", "--from-beginning", "--max", "4"
        )
    assert bob.returncode == 0, bob.stderr
    text = bob.stdout.splitlines()
    assert all(line.split(": ", 1)[0].endswith(" bob") for line in text)
    sync_seqs = [json.loads(line.split(": ", 1)[1])["sync_seq"] for line in text]
    assert sync_seqs == [1, 2, 3, 4]


async def test_sql_stats_and_check(settings: Settings) -> None:
    async with running_worker(settings), Producer(settings) as producer:
        await producer.create_conversation("g", "alice", ["bob", "carol"])
        await producer.publish_many([message("g", "bob", f"m{i}") for i in range(5)])
        report = await converged(settings)
    assert report.ok, report.summary()

    query = "SELECT sender_id, count() AS n FROM messages GROUP BY sender_id"
    assert ok(settings, "sql", query, "--format", "csv") == "sender_id,n\nbob,5\n"
    assert json.loads(ok(settings, "sql", query, "--format", "json")) == [
        {"sender_id": "bob", "n": 5}
    ]
    piped = imstream(settings, "sql", stdin="SELECT count() AS messages FROM messages;")
    assert piped.stdout.splitlines() == ["messages", "--------", "       5", "(1 row)"]

    daily = json.loads(ok(settings, "stats", "daily", "--format", "json"))
    assert [(d["messages"], d["conversations"]) for d in daily] == [(5, 1)]
    fanout = json.loads(ok(settings, "stats", "fanout", "--format", "json"))
    # 3 members: a creation notice each, and each of the 5 messages to each
    assert [(f["messages"], f["sync_entries"]) for f in fanout] == [(5, 18)]
    top = ok(settings, "stats", "top", "--days", "1").splitlines()
    assert top[2].split() == ["g", "group", "5", "1"]

    check = imstream(settings, "check")
    assert check.returncode == 0, check.stderr
    assert "1 conversations, 5 messages, 3 users, 18 sync entries: 0 lost" in check.stdout
    # a message the log never had: the checker must say so, and exit 1
    ok(
        settings,
        "sql",
        "--write",
        "INSERT INTO messages (conversation_id, seq, sender_id, created_at) "
        "SELECT 'g', 99, 'mallory', now()",
    )
    bad = imstream(settings, "check")
    assert bad.returncode == 1
    assert "unexpected: history g seq 99 not in the log" in bad.stdout


BAD_INPUT = [
    (["history", "g", "--as", "mallory"], "error: mallory is not a member of conversation g"),
    (["sql", "SELEC 1"], "error: Syntax error"),
    (["sql", "DROP TABLE messages"], "read-only: imstream sql --write allows it"),
    (["sql", "INSERT INTO messages VALUES (1)", "--write"], "use INSERT ... SELECT"),
    (["sql", "   "], "error: the query is empty"),
    (["sql", "SELECT 1", "--database", "nosuch"], "Database nosuch doesn't exist"),
    (["stats", "daily", "--since", "2026-13-01"], "'2026-13-01' is not a day (YYYY-MM-DD)"),
    (["stats", "daily", "--since", "2026-02-01", "--until", "2026-01-01"], "starts (2026-02-01)"),
    (["stats", "weekly"], "invalid choice: 'weekly'"),
    (["stats", "top", "--limit", "0"], "'0' is not a whole number >= 1"),
    (["tail", "nosuch"], "error: unknown topic 'nosuch'; choose one of: messages, timeline"),
    (["tail", "timeline", "--user", "bob"], "--user needs a topic keyed by user"),
    (["tail"], "name a topic, or a user with --user"),
    (["send", "g", "hi", "--as", "bad id!"], "error: field 'sender_id' must be 1-128 characters"),
    (["create", "--direct", "--as", "a", "--members", "b,c"], "exactly one other member"),
    (["create", "--as", "a", "--members", "b"], "a group conversation needs an id"),
    (["sync", "bob", "--after", "-1"], "'-1' is not a whole number >= 0"),
    (["sync", "bob", "--limit", "5000"], "error: limit must be between 1 and 1000"),
    (["rebuild", "--into", "system"], "'system' cannot be rebuilt into"),
    (["read", "g", "--as", "bob", "--seq", "0"], "'0' is not a whole number >= 1"),
    (["read", "nosuch", "--as", "bob", "--seq", "5"], "has no message 5 (its last stored is 0)"),
    (["conversations", "--as", "bob", "--before", "x"], "must be a list's next_before"),
]


@pytest.mark.parametrize(("args", "says"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_is_a_clear_error(settings: Settings, args: list[str], says: str) -> None:
    result = imstream(settings, *args)
    assert result.returncode == 2, result.stdout
    assert says in result.stderr.strip().splitlines()[-1]  # after a usage line, if any
    assert "Traceback" not in result.stderr


def test_servers_that_do_not_answer_are_one_line(settings: Settings) -> None:
    kafka_down = settings.replace(kafka=replace(settings.kafka, bootstrap="127.0.0.1:9"))
    clickhouse_down = settings.replace(clickhouse=replace(settings.clickhouse, port=9))
    for target, args, says in [
        (kafka_down, ["send", "g", "hi", "--as", "alice"], "error: Kafka: "),
        (kafka_down, ["tail", "timeline"], "error: Kafka: "),
        (clickhouse_down, ["sql", "SELECT 1"], "error: ClickHouse unavailable"),
        (clickhouse_down, ["stats", "daily"], "error: ClickHouse unavailable"),
        (clickhouse_down, ["rebuild", "--into", "x"], "error: ClickHouse: "),
    ]:
        result = imstream(target, *args)
        assert result.returncode == 2, args
        assert result.stderr.startswith(says), (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_schemas_are_printed_with_the_deployments_limits(
    settings: Settings, tmp_path: Path
) -> None:
    """`imstream schemas` needs no server: it states this deployment's limits."""
    limited = replace(settings, pipeline=replace(settings.pipeline, max_body_bytes=1000))
    printed = json.loads(ok(limited, "schemas"))
    body = printed["command"]["oneOf"][0]["properties"]["body"]
    assert body["maxLength"] == 1000
    assert "1000 bytes" in body["description"]
    files = ok(settings, "schemas", "--out", str(tmp_path)).split()
    assert sorted(f.rsplit("/", 1)[-1] for f in files) == sorted(
        f"{name}.schema.json" for name in printed
    )
    written = json.loads((tmp_path / "command.schema.json").read_text())
    assert written["oneOf"][0]["properties"]["body"]["maxLength"] == 32_768
