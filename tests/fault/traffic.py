"""Steady, seeded traffic for fault tests: many conversations, joins and leaves, every ack kept.

Each conversation is driven by one coroutine that sends one command at a time
and waits for its ack, so within a conversation the acknowledged order is the
order the log must keep. A send that fails is retried as the *same* command
(same event id, same client_msg_id): if an earlier attempt reached the log
after all, the sequencer drops the repeat (invariant 4), so the event is in
history once either way. Only acknowledged sends count; a conversation whose
membership change was never acknowledged is retired (its state is unknown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from dataclasses import dataclass, field

from aiokafka.errors import KafkaError

from pipeline.model.events import Command, MemberJoined, MemberLeft, MessageSent, new_event_id
from pipeline.ops.checker import read_timeline
from pipeline.sdk.producer import Producer, message, now_ms
from pipeline.settings import Settings

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 40.0
MAX_ATTEMPTS = 3


@dataclass
class Conversation:
    id: str
    members: list[str]
    group: bool
    acked: list[str] = field(default_factory=list)  # message event ids, in ack order


@dataclass
class Traffic:
    settings: Settings
    seed: int
    groups: int = 14
    directs: int = 8
    users: int = 30
    pause_s: float = 0.25
    conversations: list[Conversation] = field(default_factory=list)
    failed_attempts: int = 0
    retired: list[str] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._producer = Producer(self.settings)

    @property
    def acked(self) -> list[str]:
        return [e for c in self.conversations for e in c.acked]

    async def start(self) -> None:
        """Create the conversations (every creation acknowledged), then send until stopped."""
        await self._producer.start()
        people = [f"u{i:03d}" for i in range(self.users)]
        for i in range(self.groups):
            members = self.rng.sample(people, self.rng.randint(3, 7))
            conversation = Conversation(f"g{i:02d}", members, group=True)
            await self._producer.create_conversation(conversation.id, members[0], members)
            self.conversations.append(conversation)
        for _ in range(self.directs):
            a, b = self.rng.sample(people, 2)
            if any(c.id.startswith("dm:") and {a, b} == set(c.members) for c in self.conversations):
                continue
            conversation_id, _ = await self._producer.create_direct(a, b)
            self.conversations.append(Conversation(conversation_id, [a, b], group=False))
        self._people = people
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop sending: every conversation finishes (acks or gives up) its current send."""
        self._stopping.set()
        if self._task is not None:
            await self._task
        await self._producer.stop()
        log.warning(
            "traffic (seed %d): %d messages acknowledged in %d conversations, %d failed "
            "attempts retried, retired: %s",
            self.seed,
            len(self.acked),
            len(self.conversations),
            self.failed_attempts,
            self.retired or "none",
        )

    async def _run(self) -> None:
        await asyncio.gather(
            *(self._converse(c, random.Random(self.rng.random())) for c in self.conversations)
        )

    async def _converse(self, conversation: Conversation, rng: random.Random) -> None:
        while not self._stopping.is_set():
            command = self._next(conversation, rng)
            if not await self._deliver(command):
                if not isinstance(command, MessageSent):
                    self.retired.append(conversation.id)
                    return
                continue
            if isinstance(command, MessageSent):
                conversation.acked.append(command.event_id)
            elif isinstance(command, MemberJoined):
                conversation.members.append(command.user_id)
            elif isinstance(command, MemberLeft):
                conversation.members.remove(command.user_id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), rng.uniform(0, 2 * self.pause_s))

    def _next(self, conversation: Conversation, rng: random.Random) -> Command:
        members = conversation.members
        actor = rng.choice(members)
        if conversation.group and rng.random() < 0.08:
            actor = members[0]  # the creator, its owner (never removed: it is the actor)
            outsiders = [p for p in self._people if p not in members]
            if len(members) > 2 and (rng.random() < 0.5 or not outsiders):
                leaver = rng.choice([m for m in members if m != actor])
                return MemberLeft(new_event_id(), conversation.id, actor, leaver, now_ms())
            if outsiders:
                joiner = rng.choice(outsiders)
                return MemberJoined(new_event_id(), conversation.id, actor, joiner, now_ms())
        return message(conversation.id, actor, f"{actor} {rng.getrandbits(32):08x}")

    async def _deliver(self, command: Command) -> bool:
        """Publish ``command`` until acknowledged; False if it never was."""
        for _ in range(MAX_ATTEMPTS):
            try:
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    await self._producer.publish(command)
            except (KafkaError, TimeoutError) as exc:
                self.failed_attempts += 1
                log.info("send of %s failed (%r); retrying it", command.event_id, exc)
                await asyncio.sleep(1.0)
            else:
                self.sent_at.append(asyncio.get_running_loop().time())
                return True
        return False


async def ack_order_problems(settings: Settings, traffic: Traffic) -> list[str]:
    """Acknowledged messages of a conversation whose seqs do not follow their ack order."""
    timeline = await read_timeline(settings)
    seq_of: dict[str, int] = {}
    for events in timeline.values():
        for event in events:
            if isinstance(event.command, MessageSent):
                seq_of[event.command.event_id] = event.seq
    problems: dict[str, list[int]] = defaultdict(list)
    for conversation in traffic.conversations:
        seqs = [seq_of.get(e, -1) for e in conversation.acked]
        if seqs != sorted(seqs) or -1 in seqs:
            problems[conversation.id] = seqs
    return [f"{c}: seqs in ack order {s[:20]}" for c, s in problems.items()]
