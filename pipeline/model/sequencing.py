"""The sequencer's rules: dense per-conversation seqs, membership, dedupe.

Pure logic over a :class:`~pipeline.model.state.StateStore` (one partition of
``im.messages``); the sequencer agent feeds it commands in log order and writes
what it returns. State keys:

    c/<conversation>                    [kind, last_seq, last_event_no, last_ts_ms, large]
    m/<conversation>                    sorted member ids: a set, changelogged as one
                                        record per member (a join writes O(1) bytes)
    r/<conversation>                    a group's roles, {user: "owner" | "admin"}
                                        (pipeline/model/roles.py); absent for a group
                                        created before roles existed
    d/<conversation>/<sender>/<cmid>    [seq, ts_ms]   (dedupe window)

Read diffusion: a group becomes *large* at the event after which it has more
members than ``read_diffusion_threshold`` (its creation, or the join that
crosses it), and stays large even if it shrinks again: every event from there
on carries ``large`` (see pipeline/model/diffusion.py for what that changes). State
values written before the flag existed have four fields and read as not large.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pipeline.model.events import (
    Command,
    ConversationCreated,
    MemberChange,
    MemberJoined,
    MemberLeft,
    MessageSent,
    TimelineEvent,
)
from pipeline.model.membership import MEMBERS_PREFIX, members_key, recipients
from pipeline.model.naming import misnamed
from pipeline.model.roles import after, created_roles, refusal
from pipeline.model.state import StateStore

STATE_SETS = (MEMBERS_PREFIX,)


@dataclass(frozen=True, slots=True)
class Accepted:
    event: TimelineEvent
    recipients: list[str] = field(default_factory=list)
    """Who gets a sync entry for it (pipeline/model/diffusion.py), from the members
    just before and after it."""


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The same client_msg_id from the same sender within the dedupe window."""

    seq: int


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str


Outcome = Accepted | Duplicate | Rejected


_GROWS = (ConversationCreated, MemberJoined)


def roles_key(conversation_id: str) -> str:
    return f"r/{conversation_id}"


class Sequencer:
    def __init__(
        self,
        state: StateStore,
        *,
        dedupe_window_ms: int,
        max_group_size: int,
        dedupe_max: int = 200_000,
        read_diffusion_threshold: int = 0,
    ) -> None:
        self.state = state
        self.dedupe_window_ms = dedupe_window_ms
        self.dedupe_max = dedupe_max
        self.max_group_size = max_group_size
        self.read_diffusion_threshold = read_diffusion_threshold
        self._dedupe_order: deque[tuple[int, str]] = deque(
            sorted((value[1], key) for key, value in state.items("d/"))
        )

    def apply(self, command: Command, log_ts_ms: int) -> Outcome:
        conv_key = f"c/{command.conversation_id}"
        conv = self.state.get(conv_key)
        before: list[str] = self.state.get(members_key(command.conversation_id), [])
        if isinstance(command, ConversationCreated):
            if conv is not None:
                return Rejected(f"conversation {command.conversation_id} already exists")
            reserved = misnamed(command)
            if reserved is not None:
                return Rejected(reserved)
            conv = [command.kind, 0, 0, 0, False]
            self.state.set_replace(members_key(command.conversation_id), list(command.members))
            roles = created_roles(command)
            if roles is not None:
                self.state.put(roles_key(command.conversation_id), roles)
        elif conv is None:
            return Rejected(f"unknown conversation {command.conversation_id}")
        else:
            reason = self._check(command, conv[0], before)
            if reason is not None:
                return Rejected(reason)
        if isinstance(command, MessageSent):
            duplicate = self.state.get(self._dedupe_key(command))
            if duplicate is not None:
                return Duplicate(duplicate[0])
        kind, last_seq, last_event_no, last_ts = conv[:4]
        is_message = isinstance(command, MessageSent)
        seq = last_seq + 1 if is_message else last_seq
        ts = max(last_ts, log_ts_ms)
        was_large = len(conv) > 4 and bool(conv[4])
        large = self._large(command, conv)
        event = TimelineEvent(command, event_no=last_event_no + 1, seq=seq, ts_ms=ts, large=large)
        self.state.put(conv_key, [kind, seq, event.event_no, ts, large])
        if isinstance(command, MessageSent):
            self._remember(command, seq, ts)
        after: list[str] = self.state.get(members_key(command.conversation_id), [])
        return Accepted(event, recipients(event, before, after, was_large))

    def expire(self, now_ms: int) -> tuple[int, int]:
        """Forget dedupe entries older than the window (``now_ms - window`` or before:
        the window is that many milliseconds, so ``window * rate`` entries hold it at
        a steady rate); return how many, and how many
        younger ones went too because there were more than ``dedupe_max`` (memory
        stays bounded at any rate: past ``dedupe_max / window`` sends per second the
        window is shorter than the setting, and the caller says so)."""
        horizon = now_ms - self.dedupe_window_ms
        expired = early = 0
        order = self._dedupe_order
        while order and (order[0][0] <= horizon or len(order) > self.dedupe_max):
            ts, key = order.popleft()
            self.state.delete(key)
            expired += 1
            early += ts > horizon
        return expired, early

    def _large(self, command: Command, conv: list[Any]) -> bool:
        """Whether the conversation is large at this (accepted) command: sticky once
        set; set by the creation or join after which a group has more members than
        the threshold (the members are already updated here)."""
        if len(conv) > 4 and conv[4]:
            return True
        threshold = self.read_diffusion_threshold
        if threshold <= 0 or conv[0] != "group" or not isinstance(command, _GROWS):
            return False
        return len(self.state.get(members_key(command.conversation_id), [])) > threshold

    def _check(self, command: Command, kind: str, members: list[str]) -> str | None:
        conv_id = command.conversation_id
        if isinstance(command, MessageSent):
            if command.sender_id not in members:
                return f"sender {command.sender_id} is not a member of conversation {conv_id}"
            return None
        assert not isinstance(command, ConversationCreated)
        if kind == "direct":
            return f"the members of direct conversation {conv_id} cannot change"
        return self._change(command, members)

    def _change(self, command: MemberChange, members: list[str]) -> str | None:
        """A group member's join, leave or role (pipeline/model/roles.py's rules)."""
        conv_id = command.conversation_id
        key = roles_key(conv_id)
        roles = self.state.get(key)
        refused = refusal(command, members, roles)
        if refused is not None:
            return refused.reason
        if isinstance(command, MemberJoined):
            if len(members) >= self.max_group_size:
                return f"conversation {conv_id} is full ({self.max_group_size} members)"
            self.state.set_add(members_key(conv_id), command.user_id)
        elif isinstance(command, MemberLeft):
            self.state.set_discard(members_key(conv_id), command.user_id)
        changed = after(command, roles)
        if changed != roles:  # most leaves are plain members': nothing to write
            self.state.put(key, changed)
        return None

    def roles(self, conversation_id: str) -> dict[str, str] | None:
        """A group's roles as the sequencer holds them (None: made before roles)."""
        roles: dict[str, str] | None = self.state.get(roles_key(conversation_id))
        return roles

    def _dedupe_key(self, command: MessageSent) -> str:
        return f"d/{command.conversation_id}/{command.sender_id}/{command.client_msg_id}"

    def _remember(self, command: MessageSent, seq: int, ts: int) -> None:
        if self.dedupe_window_ms <= 0:
            return
        key = self._dedupe_key(command)
        self.state.put(key, [seq, ts])
        self._dedupe_order.append((ts, key))
