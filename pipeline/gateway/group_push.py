"""Pushing large groups' messages to the members connected to this gateway.

The push agent broadcasts every event of a large group to every gateway; this
gateway pushes each message to the connected users its :class:`GroupIndex`
knows to be members, as a frame::

    {"type": "group_message", "conversation_id": C, "seq": N, "entry": {...}}

where ``entry`` is the message as a pull's ``groups[].messages`` holds it. A
device applies it when ``seq`` is its cursor in C + 1, else it pulls. Members
are loaded from ClickHouse when a user's first device connects, and again
while the index calls them stale. When the gateway learns late that a user is
a member (their sync entry of the switch trails the broadcast; a reload after
a break), it could not push them what came meanwhile: it tells their devices
to pull, a moment later (the store may trail the broadcast too).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import orjson

from pipeline.errors import EventError, StoreUnavailableError
from pipeline.gateway.groups import GroupIndex, State
from pipeline.model import hops
from pipeline.model.events import InboxEntry, Limits, MessageSent, TimelineEvent, decode_timeline
from pipeline.read import large_groups
from pipeline.read.history import StoredMessage
from pipeline.store.clickhouse import ClickHouse

log = logging.getLogger(__name__)
RELOAD_MAX_S = 5.0
PULL_LATER_S = 1.0
GROUP_PULL_FRAME = orjson.dumps({"type": "pull", "reason": "group"}).decode()


def group_frame(event: TimelineEvent) -> str:
    command = event.command
    assert isinstance(command, MessageSent)
    message = StoredMessage(
        conversation_id=command.conversation_id,
        seq=event.seq,
        event_id=command.event_id,
        sender_id=command.sender_id,
        client_msg_id=command.client_msg_id,
        content_type=command.content_type,
        body=command.body,
        client_ts_ms=command.ts_ms,
        ts_ms=event.ts_ms,
    )
    frame = {
        "type": "group_message",
        "conversation_id": command.conversation_id,
        "seq": event.seq,
        "entry": message.to_json(),
    }
    return orjson.dumps(frame).decode()


class GroupPush:
    def __init__(
        self, store: ClickHouse, limits: Limits, push: Callable[[str, str, bytes | None], int]
    ) -> None:
        self.store = store
        self.limits = limits
        self.push = push  # (user, frame, hop stamps) -> connections offered to
        self.index = GroupIndex()
        self._loads: dict[str, asyncio.Task[None]] = {}

    def connected(self, user: str) -> None:
        """The user's first device connected here."""
        self.index.connect(user)
        self._reload(user, connecting=True)

    def disconnected(self, user: str) -> None:
        """The user's last device here went away."""
        self.index.disconnect(user)
        task = self._loads.pop(user, None)
        if task is not None:
            task.cancel()

    def timeline(self, raw: bytes, stamps: bytes = b"") -> int:
        """One broadcast record (with its hop stamps); return how many connections it
        was offered to."""
        try:
            event = decode_timeline(raw, self.limits)
        except EventError as exc:
            log.warning("push: ignoring a broadcast record that is not an event: %s", exc)
            return 0
        if not event.large:
            return 0
        users = self.index.observe(event)
        pushed = 0
        if users:
            frame = group_frame(event)
            if stamps:
                stamps = hops.with_origin(stamps, event.command.ts_ms, event.ts_ms)
            pushed = sum(self.push(user, frame, stamps) for user in users)
        self._reload_stale()
        return pushed

    def inbox(self, entry: InboxEntry) -> None:
        """One of a connected user's sync entries (it may tell of a large group)."""
        before = self._groups_of(entry.user_id)
        self.index.learn_entry(entry.user_id, entry)
        self._pull_if_joined(entry.user_id, before)
        self._reload_stale()

    def close(self) -> None:
        for task in self._loads.values():
            task.cancel()

    def _groups_of(self, user: str) -> set[str]:
        states = self.index.users.get(user, {})
        return {conv for conv, state in states.items() if state.member}

    def _pull_if_joined(self, user: str, before: set[str]) -> None:
        if self._groups_of(user) - before:
            asyncio.get_running_loop().call_later(
                PULL_LATER_S, self.push, user, GROUP_PULL_FRAME, None
            )

    def _reload_stale(self) -> None:
        for user in self.index.take_stale():
            self._reload(user)

    def _reload(self, user: str, connecting: bool = False) -> None:
        running = self._loads.get(user)
        if running is None or running.done():
            self._loads[user] = asyncio.create_task(self._load(user, connecting))
        # else: the running load goes on until the user is not stale any more

    async def _load(self, user: str, connecting: bool) -> None:
        """Load the user's states until they are not stale. On connecting, the
        device pulls anyway; a reload means the broadcast went on without them."""
        delay = 0.1
        while user in self.index.users:
            self.index.stale.discard(user)
            try:
                states = await large_groups.membership_states(self.store, user)
            except StoreUnavailableError as exc:
                log.info("push: large groups of %s not loaded (%s); retrying", user, exc)
                self.index.stale.add(user)
            else:
                before = self._groups_of(user)
                for conv, (member, at) in states.items():
                    self.index.learn(user, conv, State(member, at))
                if not connecting:
                    self._pull_if_joined(user, before)
            if user not in self.index.stale:
                return
            await asyncio.sleep(delay)  # the store has not caught up with the broadcast yet
            delay = min(delay * 2, RELOAD_MAX_S)
            connecting = False
