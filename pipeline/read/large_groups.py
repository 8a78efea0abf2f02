"""Reading large groups (read diffusion): a user's groups, a device's page of each.

A large group's messages are not in its members' sync timelines (see
pipeline/model/diffusion.py): a member's device reads them from the group's storage
timeline, after its own cursor in that group. Which messages a user may read
follows from their membership, at its positions in the log: each time they
were a member of the group while it was large is a :class:`Period`,

    since   the seq they read after: their join's seq, or the seq where the
            group became large if they joined before (the messages up to it
            are in their sync timeline)
    until   the seq of their leave (the last message they may read); None
            while they are a member

A device starts at the first period's ``since``; when it reaches a period's
``until`` it goes on from the next one's ``since`` (a member who left and
came back reads nothing of the time between). A page of a group never shows a
hole: it stops before the first seq not stored yet. Cursors are kept per
device and group, like the sync cursor, and only move forward.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.errors import AccessDeniedError, ValidationError
from pipeline.read.history import StoredMessage
from pipeline.read.periods import MembershipRow, Period, periods
from pipeline.store import queries
from pipeline.store.clickhouse import ClickHouse


@dataclass(frozen=True, slots=True)
class GroupPage:
    conversation_id: str
    after: int
    head: int
    """The last seq this device may read of the group now (its leave's, if it left)."""
    messages: list[StoredMessage]
    until: int | None = None

    @property
    def caught_up(self) -> bool:
        return self.after + len(self.messages) >= self.head

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "conversation_id": self.conversation_id,
            "after": self.after,
            "messages": [m.to_json() for m in self.messages],
            "head": self.head,
        }
        if self.until is not None:
            data["until"] = self.until
        return data


def window(found: Sequence[Period], cursor: int | None) -> tuple[int, int | None] | None:
    """Where a device at ``cursor`` (None: it has none yet) reads next: (after, until);
    None when it has read everything the user may read of the group."""
    for period in found:
        after = period.since if cursor is None else max(cursor, period.since)
        if period.until is None or after < period.until:
            return after, period.until
    return None


def contiguous(after: int, messages: Iterable[StoredMessage]) -> list[StoredMessage]:
    """The messages after ``after`` up to the first missing seq (never past a hole)."""
    run: list[StoredMessage] = []
    for message in messages:
        if message.seq != after + len(run) + 1:
            break
        run.append(message)
    return run


async def memberships(
    store: ClickHouse, user_id: str, *, before_join: bool = False
) -> dict[str, list[Period]]:
    """The user's periods in every large group they have read-diffused time in
    (``before_join``: PIPELINE_HISTORY_BEFORE_JOIN is visible, pipeline/read/periods.py)."""
    large = await store.execute(queries.USER_LARGE_GROUPS, {"user_id": user_id})
    if not large:
        return {}
    large_seq = {conv: int(seq) for conv, _, seq in large}
    rows = await store.execute(
        queries.USER_MEMBERSHIP_IN, {"user_id": user_id, "conversation_ids": tuple(large_seq)}
    )
    by_group: dict[str, list[MembershipRow]] = defaultdict(list)
    for conv, event_no, action, after_seq in rows:
        by_group[conv].append((int(event_no), str(action), int(after_seq)))
    found = {
        conv: periods(by_group[conv], seq, before_join=before_join)
        for conv, seq in large_seq.items()
    }
    return {conv: p for conv, p in found.items() if p}


async def membership_states(store: ClickHouse, user_id: str) -> dict[str, tuple[bool, int]]:
    """Per large group the user has been in: (a member now?, the event_no this is exact
    as of). The heads are read first: every event up to a head is stored, so the
    membership rows read after them are complete at least up to it."""
    large = await store.execute(queries.USER_LARGE_GROUPS, {"user_id": user_id})
    if not large:
        return {}
    convs = {"conversation_ids": tuple(conv for conv, _, _ in large)}
    heads = {c: int(e) for c, _, e in await store.execute(queries.LARGE_GROUP_HEADS, convs)}
    rows = await store.execute(queries.USER_MEMBERSHIP_IN, {"user_id": user_id, **convs})
    last = {conv: (action == "join", int(event_no)) for conv, event_no, action, _ in rows}
    return {
        conv: (member, max(event_no, heads.get(conv, 0)))
        for conv, (member, event_no) in last.items()
    }


async def pages(
    store: ClickHouse,
    user_id: str,
    device_id: str,
    given: Mapping[str, int],
    limit: int,
    *,
    before_join: bool = False,
) -> list[GroupPage]:
    """A page of each large group the device has something to read in, or is a member
    of. ``given`` are cursors the device sent; for the others its acked cursor counts."""
    member = await memberships(store, user_id, before_join=before_join)
    if not member:
        return []
    acked = {} if set(member) <= set(given) else await device_cursors(store, user_id)
    stored = acked.get(device_id, {})
    windows = {}
    for conv, found in sorted(member.items()):
        at = window(found, given.get(conv, stored.get(conv)))
        if at is not None:
            windows[conv] = at
    if not windows:
        return []
    rows = await store.execute(queries.LARGE_GROUP_HEADS, {"conversation_ids": tuple(windows)})
    heads = {conv: int(seq) for conv, seq, _ in rows}
    return list(
        await asyncio.gather(
            *(_page(store, conv, at, heads.get(conv, 0), limit) for conv, at in windows.items())
        )
    )


async def _page(
    store: ClickHouse, conv: str, at: tuple[int, int | None], head: int, limit: int
) -> GroupPage:
    after, until = at
    high = after + limit if until is None else min(after + limit, until)
    head = max(head, after) if until is None else min(max(head, after), until)
    messages: list[StoredMessage] = []
    if after < head:
        rows = await store.execute(
            queries.HISTORY_RANGE, {"conversation_id": conv, "low": after + 1, "high": high}
        )  # newest first
        messages = contiguous(after, (StoredMessage.from_row(conv, r) for r in reversed(rows)))
    return GroupPage(conv, after, head, messages, until)


async def device_cursors(store: ClickHouse, user_id: str) -> dict[str, dict[str, int]]:
    """device → large group → the last seq it acked."""
    rows = await store.execute(queries.USER_GROUP_CURSORS, {"user_id": user_id})
    found: dict[str, dict[str, int]] = defaultdict(dict)
    for device, conv, seq in rows:
        found[device][conv] = int(seq)
    return dict(found)


def checked_cursors(raw: Any) -> dict[str, int]:
    """A ``{"<conversation>": seq}`` object as a device sends it, or ValidationError."""
    if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
        raise ValidationError("field 'groups' must be an object of conversation id -> seq")
    for conv, seq in raw.items():
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 2**63:
            raise ValidationError(f"groups[{conv!r}] must be an integer seq >= 0")
    return dict(raw)


async def check_cursors(store: ClickHouse, user_id: str, cursors: Mapping[str, int]) -> None:
    """AccessDeniedError names a group of ``cursors`` the user has never been a member
    of while it was large."""
    if not cursors:
        return
    strangers = sorted(set(cursors) - set(await memberships(store, user_id)))
    if strangers:
        raise AccessDeniedError(f"{user_id} is not a member of large group(s) {strangers}")


async def ack(store: ClickHouse, user_id: str, device_id: str, cursors: Mapping[str, int]) -> None:
    """Store a device's cursors in large groups; AccessDeniedError names a group the
    user has never been a member of while it was large (nothing is stored then)."""
    if not cursors:
        return
    await check_cursors(store, user_id, cursors)
    now = int(time.time() * 1000)
    await store.insert(
        queries.INSERT_DEVICE_GROUP_CURSOR.sql,
        [(user_id, device_id, conv, seq, now) for conv, seq in sorted(cursors.items())],
    )
