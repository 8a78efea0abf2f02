"""Test traffic for analytics: what a test sends, and what it expects from it.

:class:`Model` follows the rules of the Timeline model on its own, without the
pipeline's code (membership, who receives what, dedupe), so the tests can
compare ClickHouse with figures computed independently from what they sent.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from pipeline.model.events import (
    Command,
    ConversationCreated,
    MemberJoined,
    MemberLeft,
    new_event_id,
)
from pipeline.sdk.producer import Producer, message, now_ms

USERS = [f"u{i:02d}" for i in range(12)]


@dataclass
class Model:
    kinds: dict[str, str] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)
    senders: dict[str, list[str]] = field(default_factory=dict)
    """Per conversation, the sender of each accepted message, in seq order."""
    entries: Counter[str] = field(default_factory=Counter)
    """Per user, the sync entries owed (messages and membership notices)."""
    rejected: int = 0
    accepted: list[str] = field(default_factory=list)
    """The event ids of the messages the sequencer must accept."""
    commands: list[Command] = field(default_factory=list)

    def create(self, conversation: str, creator: str, others: list[str], title: str = "") -> None:
        everyone = [creator, *others]
        kind = "direct" if conversation.startswith("dm:") else "group"
        self.commands.append(
            ConversationCreated(
                new_event_id(), conversation, creator, kind, title, tuple(everyone), now_ms()
            )
        )
        self.kinds[conversation], self.titles[conversation] = kind, title
        self.members[conversation] = set(everyone)
        self.senders[conversation] = []
        self.entries.update(everyone)

    def send(self, conversation: str, sender: str, client_msg_id: str | None = None) -> None:
        n = len(self.commands)
        cmid = client_msg_id or f"m{n}"
        self.commands.append(message(conversation, sender, f"message {n}", client_msg_id=cmid))
        repeated = client_msg_id is not None and any(
            getattr(c, "client_msg_id", None) == cmid and getattr(c, "sender_id", None) == sender
            for c in self.commands[:-1]
        )
        if sender not in self.members[conversation] or repeated:
            self.rejected += 1
            return
        self.senders[conversation].append(sender)
        self.accepted.append(self.commands[-1].event_id)
        self.entries.update(self.members[conversation])

    def join(self, conversation: str, actor: str, user: str) -> None:
        self.commands.append(MemberJoined(new_event_id(), conversation, actor, user, now_ms()))
        self.members[conversation].add(user)
        self.entries.update(self.members[conversation])

    def leave(self, conversation: str, user: str) -> None:
        self.commands.append(MemberLeft(new_event_id(), conversation, user, user, now_ms()))
        self.entries.update(self.members[conversation])
        self.members[conversation].discard(user)

    @property
    def messages(self) -> int:
        return sum(len(s) for s in self.senders.values())

    def sent_by(self, conversation: str) -> Counter[str]:
        return Counter(self.senders[conversation])


def script(seed: int = 7, messages: int = 240) -> Model:
    """Five conversations, members joining and leaving mid-way, a client retry
    and sends from non-members (refused by the sequencer)."""
    rng = random.Random(seed)
    model = Model()
    model.create("team", "u00", USERS[1:6], title="Team")
    model.create("ops", "u06", ["u07", "u08"], title="Ops")
    for a, b in (("u00", "u01"), ("u02", "u09"), ("u10", "u11")):
        model.create(f"dm:{a}:{b}", a, [b])
    weights = {"team": 5, "ops": 2, "dm:u00:u01": 3, "dm:u02:u09": 1, "dm:u10:u11": 1}
    for i in range(messages):
        if i == messages // 3:
            model.join("team", "u00", "u06")
        if i == messages // 2:
            model.leave("team", "u01")
        conversation = rng.choices(list(weights), list(weights.values()))[0]
        pool = sorted(model.members[conversation])
        sender = "u11" if conversation == "team" and i % 50 == 7 else rng.choice(pool)
        model.send(conversation, sender)
    model.send("team", "u02", client_msg_id="retry-1")
    model.send("team", "u02", client_msg_id="retry-1")  # the client's retry: one message
    return model


async def publish(producer: Producer, model: Model) -> None:
    """Publish the script, in order."""
    await producer.publish_many(model.commands)
