"""A pull's byte budget (GATEWAY_MAX_PULL_BYTES): the message bodies one pull returns.

The sync page spends it first, then each large group's page in turn. A page is
cut after whole entries only and never comes back empty when it had something
(one entry larger than the budget still comes whole), so every pull moves every
cursor: a device whose sync timeline alone fills the budget still reads its
groups, a message at a time. A cut page says so (``caught_up`` false) and the
device pulls on from where it stopped. A budget of 0 bounds nothing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol, TypeVar

from pipeline.read.large_groups import GroupPage
from pipeline.read.sync_timeline import SyncPage


class _Body(Protocol):
    @property
    def body(self) -> str: ...


B = TypeVar("B", bound=_Body)


def within_bytes(page: SyncPage, budget: int) -> SyncPage:
    """The first entries of ``page`` whose bodies fit in ``budget`` bytes (at least
    one), the cursor moved to the last of them."""
    if budget <= 0:
        return page
    kept = _fitting(page.entries, budget)
    if len(kept) == len(page.entries):
        return page
    return SyncPage(kept, kept[-1].sync_seq, page.head)


def groups_within_bytes(groups: list[GroupPage], budget: int, spent: int = 0) -> list[GroupPage]:
    """Each group page cut to what is left of ``budget`` once ``spent`` (the sync
    page's bodies) and the pages before it are counted (at least one message each)."""
    if budget <= 0:
        return groups
    left = max(0, budget - spent)
    cut = []
    for group in groups:
        kept = _fitting(group.messages, left)
        left = max(0, left - body_bytes(kept))
        cut.append(group if len(kept) == len(group.messages) else replace(group, messages=kept))
    return cut


def body_bytes(items: list[B]) -> int:
    return sum(len(item.body.encode()) for item in items)


def _fitting(items: list[B], left: int) -> list[B]:
    """The first of ``items`` whose bodies fit in ``left`` bytes, at least one."""
    kept: list[B] = []
    used = 0
    for item in items:
        used += len(item.body.encode())
        if kept and used > left:
            break
        kept.append(item)
    return kept
