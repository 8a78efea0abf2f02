"""Read diffusion on the real Kafka and ClickHouse: a group grows past the
threshold in the middle of traffic; from then on its members read it from its
storage timeline instead of finding it in their sync timelines."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import replace

import pytest

from pipeline.errors import AccessDeniedError
from pipeline.model.events import Command, MemberJoined, MemberLeft, new_event_id
from pipeline.read import large_groups, sync_timeline
from pipeline.sdk.producer import Producer, message, now_ms
from pipeline.settings import Settings
from pipeline.store import clickhouse
from pipeline.store.clickhouse import ClickHouse
from tests.conftest import unique_name
from tests.integration.agents.test_pipeline import pull_all
from tests.integration.ops.test_rebuild import snapshot
from tests.support import converged, eventually, imstream, running_worker

THRESHOLD = 5
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "gina", "zed")


def small_threshold(settings: Settings) -> Settings:
    return settings.replace(pipeline=replace(settings.pipeline, read_diffusion_threshold=THRESHOLD))


class Script:
    """The commands, and what each user must end up with: per conversation, the
    seqs of the messages sent while they were a member."""

    def __init__(self) -> None:
        self.commands: list[Command] = []
        self.members: dict[str, set[str]] = {}
        self.seqs: dict[str, int] = defaultdict(int)
        self.owed: dict[str, dict[str, list[int]]] = {u: defaultdict(list) for u in USERS}

    def send(self, conv: str, sender: str) -> None:
        self.seqs[conv] += 1
        self.commands.append(message(conv, sender, f"{conv} {self.seqs[conv]}"))
        for user in self.members[conv]:
            self.owed[user][conv].append(self.seqs[conv])

    def join(self, conv: str, user: str) -> None:
        self.commands.append(MemberJoined(new_event_id(), conv, "alice", user, now_ms()))
        self.members[conv].add(user)

    def leave(self, conv: str, user: str) -> None:
        self.commands.append(MemberLeft(new_event_id(), conv, user, user, now_ms()))
        self.members[conv].discard(user)


def script() -> Script:
    """``big`` becomes large at frank's join (6 members > 5) after seq 7; bob leaves
    after seq 12; gina joins after seq 15. ``team`` stays small, interleaved."""
    s = Script()
    s.members = {"big": {"alice", "bob", "carol"}, "team": {"alice", "bob"}}
    steps = [
        *[("send", "big", "alice")] * 4,
        ("join", "big", "dave"),
        *[("send", "big", "bob")] * 2,
        ("join", "big", "erin"),
        ("send", "big", "erin"),
        ("join", "big", "frank"),  # the switch
        *[("send", "big", "frank")] * 5,
        ("leave", "big", "bob"),
        *[("send", "big", "carol")] * 3,
        ("join", "big", "gina"),
        *[("send", "big", "gina")] * 5,
    ]
    for i, (what, conv, user) in enumerate(steps):
        getattr(s, what)(conv, user)
        s.send("team", "bob" if i % 2 else "alice")
    return s


async def read_groups(
    store: ClickHouse, user: str, device: str, limit: int = 4
) -> dict[str, list[int]]:
    """Every seq a device reads from its large groups, pulling page by page."""
    cursors: dict[str, int] = {}
    got: dict[str, list[int]] = defaultdict(list)
    while True:
        pages = await large_groups.pages(store, user, device, cursors, limit)
        moved = False
        for page in pages:
            moved |= bool(page.messages) or page.after != cursors.get(page.conversation_id)
            got[page.conversation_id] += [m.seq for m in page.messages]
            cursors[page.conversation_id] = page.after + len(page.messages)
        if not moved:
            return dict(got)


async def test_a_group_that_grows_past_the_threshold_is_read_diffused(settings: Settings) -> None:
    settings = small_threshold(settings)
    s = script()
    store = ClickHouse(settings)
    async with running_worker(settings), Producer(settings) as producer:
        await producer.create_conversation("big", "alice", ["bob", "carol"])
        await producer.create_conversation("team", "alice", ["bob"])
        await producer.publish_many(s.commands)
        report = await converged(settings)
    assert report.ok, report.summary()
    assert report.messages == s.seqs["big"] + s.seqs["team"] == 20 + 25
    assert report.large_groups == 1  # the checker compared every reader's periods too

    for user in USERS:
        entries = await pull_all(store, user)
        assert [e.sync_seq for e in entries] == list(range(1, len(entries) + 1))
        synced = [e.seq for e in entries if e.kind == "message" and e.conversation_id == "big"]
        # before the switch (seq 7) in every member's sync timeline, after it in nobody's
        assert synced == [q for q in s.owed[user]["big"] if q <= 7], user
        team = [e.seq for e in entries if e.kind == "message" and e.conversation_id == "team"]
        assert team == s.owed[user]["team"], user  # a small group: write diffusion as before

        read = await eventually(
            lambda u=user: read_groups(store, u, "phone"),  # type: ignore[misc]
            lambda got, u=user: got.get("big", []) == [q for q in s.owed[u]["big"] if q > 7],  # type: ignore[misc]
            within=30,
        )
        assert read.get("big", []) == [q for q in s.owed[user]["big"] if q > 7], user
        # synced + read: exactly what the user should see, once each, in order
        assert synced + read.get("big", []) == s.owed[user]["big"], user

    expected = {"alice": range(1, 21), "bob": range(1, 13), "dave": range(5, 21)}
    expected |= {"erin": range(7, 21), "frank": range(8, 21), "gina": range(16, 21)}
    for user, seqs in expected.items():
        assert s.owed[user]["big"] == list(seqs), user  # the script says what we think it says
    store.close()


async def test_sync_entries_say_where_reading_starts_and_cursors_are_members_only(
    settings: Settings,
) -> None:
    settings = small_threshold(settings)
    s = script()
    store = ClickHouse(settings)
    async with running_worker(settings), Producer(settings) as producer:
        await producer.create_conversation("big", "alice", ["bob", "carol"])
        await producer.create_conversation("team", "alice", ["bob"])
        await producer.publish_many(s.commands)
        report = await converged(settings)
    assert report.ok, report.summary()

    def marks(entries: list[sync_timeline.SyncEntry]) -> list[tuple[str, str, int, bool]]:
        return [
            (e.kind, e.subject_id, e.seq, e.large)
            for e in entries
            if e.conversation_id == "big" and e.kind != "message"
        ]

    alice = await eventually(
        lambda: pull_all(store, "alice"), lambda e: len(marks(e)) == 5, within=30
    )
    assert marks(alice) == [
        ("created", "", 0, False),
        ("joined", "dave", 4, False),
        ("joined", "erin", 6, False),
        ("joined", "frank", 7, True),  # the switch: every member hears of it
        ("joined", "gina", 15, True),  # alice added gina: the actor hears of it too
    ]  # but later joins and leaves reach only the member concerned and the actor
    assert marks(await pull_all(store, "carol"))[-1] == ("joined", "frank", 7, True)
    assert marks(await pull_all(store, "bob"))[-2:] == [
        ("joined", "frank", 7, True),
        ("left", "bob", 12, True),
    ]
    assert marks(await pull_all(store, "gina")) == [("joined", "gina", 15, True)]

    # cursors: a member's are kept per device and only move forward
    await large_groups.ack(store, "carol", "phone", {"big": 10})
    await large_groups.ack(store, "carol", "phone", {"big": 9})
    assert await large_groups.device_cursors(store, "carol") == {"phone": {"big": 10}}
    page = (await large_groups.pages(store, "carol", "phone", {}, 3))[0]
    assert (page.after, [m.seq for m in page.messages], page.head) == (10, [11, 12, 13], 20)
    # ... a device's own cursor in the request wins over the acked one
    page = (await large_groups.pages(store, "carol", "phone", {"big": 18}, 3))[0]
    assert [m.seq for m in page.messages] == [19, 20]
    # bob left after seq 12: his page stops there, and once read the group is gone
    page = (await large_groups.pages(store, "bob", "phone", {"big": 10}, 50))[0]
    assert ([m.seq for m in page.messages], page.head, page.until) == ([11, 12], 12, 12)
    assert await large_groups.pages(store, "bob", "phone", {"big": 12}, 50) == []
    # non-members get nothing and cannot ack a cursor in the group
    assert await large_groups.pages(store, "zed", "phone", {"big": 0}, 50) == []
    with pytest.raises(AccessDeniedError):
        await large_groups.ack(store, "zed", "phone", {"big": 20})
    with pytest.raises(AccessDeniedError):  # a small group has no group cursor either
        await large_groups.ack(store, "alice", "phone", {"team": 1})
    assert "zed" not in str(await large_groups.device_cursors(store, "zed"))
    store.close()


async def test_a_rebuild_gives_pulls_the_same_large_groups(settings: Settings) -> None:
    settings = small_threshold(settings)
    s = script()
    async with running_worker(settings), Producer(settings) as producer:
        await producer.create_conversation("big", "alice", ["bob", "carol"])
        await producer.create_conversation("team", "alice", ["bob"])
        await producer.publish_many(s.commands)
        report = await converged(settings)
    assert report.ok, report.summary()
    before = await eventually(
        lambda: asyncio.to_thread(snapshot, settings),
        lambda snap: snap["large_group_heads"] == [("big", 20, 26)],
    )
    assert before["large_groups"] == [("big", 11, 7), ("big", 17, 12), ("big", 21, 15)]
    other = unique_name("rb")
    try:
        rebuilt = imstream(settings, "rebuild", "--into", other)
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert await asyncio.to_thread(snapshot, settings, other) == before
        store = ClickHouse(settings, other)
        assert (await read_groups(store, "gina", "phone"))["big"] == [16, 17, 18, 19, 20]
        store.close()
    finally:
        clickhouse.drop_database(settings, other)
