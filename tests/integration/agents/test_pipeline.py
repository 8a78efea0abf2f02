"""The Timeline model end to end on the real Kafka and ClickHouse."""

from __future__ import annotations

import asyncio
import random

import pytest

from pipeline.errors import AccessDeniedError
from pipeline.read import history, sync_timeline
from pipeline.read.sync_timeline import SyncEntry
from pipeline.sdk.producer import Ack, Producer, message
from pipeline.settings import Settings
from pipeline.store.clickhouse import ClickHouse
from tests.support import converged, eventually, running_worker

RETENTION = 7


async def pull_all(store: ClickHouse, user: str, limit: int = 100) -> list[SyncEntry]:
    entries: list[SyncEntry] = []
    while True:
        page = await sync_timeline.pull(store, user, len(entries), limit, RETENTION)
        entries += page.entries
        if not page.entries:
            return entries


async def full_history(store: ClickHouse, conversation: str, reader: str) -> list[int]:
    seqs: list[int] = []
    before = None
    while True:
        page = await history.page(store, conversation, reader, before=before, limit=37)
        seqs += [m.seq for m in page.messages]
        if page.next_before is None:
            return seqs
        before = page.next_before


async def test_direct_and_group_conversations(settings: Settings) -> None:
    members = [f"u{i:02d}" for i in range(50)]
    senders = members[:6]
    store = ClickHouse(settings)
    acks: list[Ack] = []
    sent_bodies: dict[str, list[str]] = {"team": [], "dm:u00:u01": []}
    async with running_worker(settings), Producer(settings) as setup:
        await setup.create_conversation("team", "u00", members, title="fifty")
        direct, _ = await setup.create_direct("u00", "u01")

        async def chat(sender: str, rng: random.Random) -> None:
            async with Producer(settings) as producer:
                for i in range(60):
                    if sender in ("u00", "u01") and rng.random() < 0.4:
                        conversation = direct
                    else:
                        conversation = "team"
                    body = f"{sender} says {i}"
                    sent_bodies[conversation].append(body)
                    acks.append(await producer.send_message(conversation, sender, body))

        await asyncio.gather(*(chat(s, random.Random(s)) for s in senders))
        report = await converged(settings, [a.event_id for a in acks])
    assert report.ok, report.summary()
    assert report.messages == len(acks) == 360

    for conversation, bodies in sent_bodies.items():
        seqs = await full_history(store, conversation, "u00")
        assert seqs == list(range(len(bodies), 0, -1))  # newest first, dense, once each
    team_count, direct_count = len(sent_bodies["team"]), len(sent_bodies["dm:u00:u01"])
    for user in members:
        entries = await pull_all(store, user)
        assert [e.sync_seq for e in entries] == list(range(1, len(entries) + 1))
        team = [e for e in entries if e.conversation_id == "team" and e.kind == "message"]
        assert [e.seq for e in team] == list(range(1, team_count + 1))
        dms = [e for e in entries if e.conversation_id == direct and e.kind == "message"]
        assert len(dms) == (direct_count if user in ("u00", "u01") else 0)
    assert await pull_all(store, "stranger") == []
    with pytest.raises(AccessDeniedError):
        await history.page(store, direct, "u02")
    store.close()


async def test_membership_changes_take_effect_at_their_log_position(settings: Settings) -> None:
    store = ClickHouse(settings)
    async with running_worker(settings), Producer(settings) as producer:
        await producer.create_conversation("g", "alice", ["alice", "bob"])
        batch = [message("g", "alice", f"before {i}") for i in range(20)]
        await producer.publish_many(batch)
        await producer.join("g", "alice", "carol")
        await producer.publish_many([message("g", "bob", f"during {i}") for i in range(20)])
        await producer.leave("g", "bob", "bob")
        await producer.publish_many([message("g", "carol", f"after {i}") for i in range(20)])
        report = await converged(settings)
    assert report.ok, report.summary()

    def view(entries: list[SyncEntry]) -> list[tuple[str, int, str]]:
        return [(e.kind, e.seq, e.subject_id) for e in entries]

    alice, bob, carol = [await pull_all(store, u) for u in ("alice", "bob", "carol")]
    assert view(alice) == (
        [("created", 0, "")]
        + [("message", s, "") for s in range(1, 21)]
        + [("joined", 20, "carol")]
        + [("message", s, "") for s in range(21, 41)]
        + [("left", 40, "bob")]
        + [("message", s, "") for s in range(41, 61)]
    )
    # bob: nothing after the leave, which he hears about himself
    assert view(bob) == view(alice)[: 1 + 20 + 1 + 20 + 1]
    # carol: nothing from before she joined
    assert view(carol) == view(alice)[21:]
    assert [e.sync_seq for e in carol] == list(range(1, 43))
    with pytest.raises(AccessDeniedError):
        await history.page(store, "g", "bob")
    assert [m.seq for m in (await history.page(store, "g", "carol", limit=3)).messages] == [
        60,
        59,
        58,
    ]
    store.close()


async def test_same_client_msg_id_twice_is_one_message(settings: Settings) -> None:
    store = ClickHouse(settings)
    async with running_worker(settings), Producer(settings) as producer:
        await producer.create_conversation("g", "alice", ["bob"])
        first = await producer.send_message("g", "alice", "hello", client_msg_id="m-1")
        retry = await producer.send_message("g", "alice", "hello", client_msg_id="m-1")
        other = await producer.send_message("g", "bob", "hello", client_msg_id="m-1")
        report = await converged(settings, [first.event_id, other.event_id])
    assert report.ok, report.summary()
    assert report.messages == 2
    page = await history.page(store, "g", "alice")
    assert [(m.seq, m.sender_id, m.event_id) for m in page.messages] == [
        (2, "bob", other.event_id),
        (1, "alice", first.event_id),
    ]
    assert retry.event_id not in {m.event_id for m in page.messages}
    store.close()


async def test_sync_pull_pages_and_cursors(settings: Settings) -> None:
    store = ClickHouse(settings)
    async with running_worker(settings), Producer(settings) as producer:
        await producer.create_conversation("g", "alice", ["bob"])
        await producer.publish_many([message("g", "alice", f"m{i}") for i in range(25)])
        await eventually(lambda: pull_all(store, "bob"), lambda e: len(e) == 26)
    first = await sync_timeline.pull(store, "bob", 0, 10, RETENTION)
    assert [e.sync_seq for e in first.entries] == list(range(1, 11))
    assert (first.cursor, first.head, first.caught_up) == (10, 26, False)
    last = await sync_timeline.pull(store, "bob", 20, 10, RETENTION)
    assert (last.cursor, last.caught_up) == (26, True)
    assert (await sync_timeline.pull(store, "bob", 26, 10, RETENTION)).entries == []

    await sync_timeline.ack(store, "bob", "phone", 10)
    await sync_timeline.ack(store, "bob", "laptop", 26)
    await sync_timeline.ack(store, "bob", "phone", 20)
    await sync_timeline.ack(store, "bob", "phone", 5)  # late, older ack: cursor stays
    assert await sync_timeline.device_cursors(store, "bob") == {"laptop": 26, "phone": 20}
    store.close()
