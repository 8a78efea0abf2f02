"""``imstream demo``: the pipeline working, end to end, on the local stack.

Brings the stack up, runs a worker, and through the producer SDK creates a
1:1 conversation and a group, sends messages while a member joins and another
leaves, then prints every user's sync timeline and the group's history as the
read side serves them from ClickHouse. Then it starts a gateway: two of bob's
devices are online and get alice's messages pushed live, while his tablet is
offline and catches up by pull when it connects. All along, ``imstream live``
(faust-streaming) counts the traffic per minute beside the worker, and the demo
ends with its figures next to ClickHouse's minute rollups. Each run has its own users
(alice-<run>, ...), so it can be run again: a direct conversation's id is the
one its two members give (pipeline/model/naming.py), and the run's is new.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import replace
from datetime import UTC, datetime

from agents.worker import Worker
from infra import stack
from pipeline.cli.live_demo import live_beside, show_live
from pipeline.cli.push_demo import push_demo
from pipeline.log.topics import catalogue
from pipeline.read import conversations, history, sync_timeline
from pipeline.read.sync_timeline import SyncEntry
from pipeline.sdk.producer import Producer, message
from pipeline.settings import Settings
from pipeline.store.clickhouse import ClickHouse

USERS = ("alice", "bob", "carol", "dave")
WAIT_S = 60.0


def topology(settings: Settings) -> str:
    """The stages and topics a message crosses (names as this stack has them)."""
    t = catalogue(settings)
    return "\n".join(
        [
            "\nthe pipeline (one worker runs every agent; `imstream worker --agents` splits them):",
            f"  {t.messages.name} ─ sequencer ─┬─ {t.timeline.name} ─ store ─► ClickHouse messages",
            f"  {' ' * len(t.messages.name)}              ├─ {t.roster.name} (the roster:"
            " gateways check senders here)",
            f"  {' ' * len(t.messages.name)}              └─ {t.sync.name} ─ sync ─ {t.inbox.name}"
            " ─┬─ sync-store ─► ClickHouse sync_timeline",
            f"  {' ' * (len(t.messages.name) + len(t.sync.name) + len(t.inbox.name) + 29)}"
            f"└─ push ─► {t.push('<gateway>').name} ─► devices",
            "  one transaction per partition in the sequencer (seq, roster, every delivery)"
            " and one in sync (sync_seq); push reads sync's output before it commits",
        ]
    )


def cast(run: str) -> dict[str, str]:
    """The run's users by role: alice, bob, carol and dave with the run's suffix."""
    return {role: f"{role}-{run}" for role in USERS}


async def main(settings: Settings) -> int:
    for line in await asyncio.to_thread(stack.up, settings):
        print(line)
    print(topology(settings))
    settings = settings.replace(worker=replace(settings.worker, health_port=-1))
    stopping = asyncio.Event()
    worker = asyncio.create_task(Worker(settings).run(stopping))
    try:
        started = datetime.now(UTC)
        log = settings.stack.dir / "live-demo.log"
        async with live_beside(settings, str(log)) as live_url:
            print(f"\nimstream live is counting beside the worker ({live_url}, log {log})")
            run = secrets.token_hex(3)
            who = cast(run)
            direct, expected = await converse(settings, run, who)
            await show(settings, (direct, f"team-{run}"), expected)
            await read_state(settings, f"team-{run}", who["carol"])
            await push_demo(settings, run, direct, who["alice"], who["bob"])
            await show_live(settings, live_url, started)
    finally:
        stopping.set()
        await worker
    return 0


async def converse(settings: Settings, run: str, who: dict[str, str]) -> tuple[str, dict[str, int]]:
    """Publish the demo's traffic; return the direct conversation's id and how many
    sync entries each user is owed."""
    alice, bob, carol, dave = (who[role] for role in USERS)
    team = f"team-{run}"
    async with Producer(settings) as producer:
        direct, _ = await producer.create_direct(alice, bob)
        print(f"\n1:1 conversation {direct}, group {team}")
        await producer.publish_many(
            [
                message(direct, alice, "hi bob"),
                message(direct, bob, "hi alice!"),
            ]
        )
        await producer.create_conversation(team, alice, [bob, carol], title="Team")
        await producer.publish_many(
            [
                message(team, alice, "welcome to the team"),
                message(team, carol, "thanks!"),
            ]
        )
        await producer.join(team, alice, dave)
        await producer.send_message(team, dave, "hello, I just joined")
        await producer.leave(team, bob, bob)
        await producer.send_message(team, carol, "bob left; dave, you won't see the start")
        # sending twice with one client_msg_id (a client retry) gives one message
        await producer.send_message(team, alice, "see you", client_msg_id=f"bye-{run}")
        await producer.send_message(team, alice, "see you", client_msg_id=f"bye-{run}")
    # created + 2 messages in the 1:1; in the group each member gets what happened
    # while they were in it: created, messages, joins and leaves
    return direct, {alice: 3 + 8, bob: 3 + 6, carol: 8, dave: 5}


async def entries_of_run(
    store: ClickHouse, user: str, conversations: tuple[str, ...], retention_days: int
) -> list[SyncEntry]:
    """The user's sync entries of this run's conversations, pulled page by page."""
    found: list[SyncEntry] = []
    cursor = 0
    while True:
        page = await sync_timeline.pull(store, user, cursor, 1000, retention_days)
        found += [e for e in page.entries if e.conversation_id in conversations]
        if not page.entries:
            return found
        cursor = page.cursor


async def show(
    settings: Settings, conversations: tuple[str, str], expected: dict[str, int]
) -> None:
    store = ClickHouse(settings)
    days = settings.pipeline.sync_retention_days
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while True:
            timelines = {u: await entries_of_run(store, u, conversations, days) for u in expected}
            if all(len(timelines[u]) >= n for u, n in expected.items()) or loop.time() > deadline:
                break
            await asyncio.sleep(0.5)
        for user in expected:
            print(f"\nsync timeline of {user} (by sync_seq):")
            for entry in timelines[user]:
                print("  " + describe(entry))
        team = conversations[1]
        page = await history.page(store, team, next(iter(expected)), limit=20)
        print(f"\nhistory of {team}, newest first, as any member's device reads it:")
        for m in page.messages:
            print(f"  seq {m.seq:>3}  {m.sender_id:>6}: {m.body}")
    finally:
        store.close()


async def read_state(settings: Settings, team: str, user: str) -> None:
    """``user`` reads the group up to its second message on one device; the list
    (docs/read-state.md) then shows what is still unread, and the mark is a sync
    entry that every device of the user gets."""
    async with Producer(settings) as producer:
        await producer.mark_read(team, user, 2, device="laptop")
    store = ClickHouse(settings)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while True:
            page = await conversations.page(store, user, lambda _: None, limit=10, before=None)
            mine = [s for s in page.conversations if s.conversation_id == team]
            if (mine and mine[0].state.marker == 2) or loop.time() > deadline:
                break
            await asyncio.sleep(0.5)
    finally:
        store.close()
    print(f"\n{user} read {team} up to seq 2 on a laptop; the conversation list of {user}:")
    for summary in mine:
        last = summary.last_message
        said = f"{last.sender_id}: {last.preview}" if last else ""
        print(
            f"  {summary.conversation_id}  {summary.state.unread} unread "
            f"(read up to {summary.state.marker}, own last message {summary.state.last_sent}) "
            f"last: {said}"
        )


def describe(entry: SyncEntry) -> str:
    head = f"#{entry.sync_seq:<4} {entry.conversation_id:<16}"
    if entry.kind == "message":
        return f"{head} seq {entry.seq:>3}  {entry.sender_id}: {entry.body}"
    if entry.kind == "created":
        return f"{head} created by {entry.sender_id}"
    if entry.kind == "role":
        return f"{head} {entry.subject_id} is now {entry.body}"
    if entry.kind == "read":
        return f"{head} read up to seq {entry.seq} (on {entry.subject_id})"
    if entry.kind in ("muted", "pinned"):
        return f"{head} {entry.kind} {entry.body}"
    verb = "joined" if entry.kind == "joined" else "left"
    return f"{head} {entry.subject_id} {verb}"
