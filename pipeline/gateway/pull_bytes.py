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


def within_budget(
    page: SyncPage, groups: list[GroupPage], budget: int
) -> tuple[SyncPage, list[GroupPage]]:
    """A pull's pages cut to ``budget``: the sync page first, then the groups'."""
    if budget <= 0:
        return page, groups
    page, spent = _sync_page(page, budget)
    return page, groups_within_bytes(groups, budget, spent)


def within_bytes(page: SyncPage, budget: int) -> SyncPage:
    """The first entries of ``page`` whose bodies fit in ``budget`` bytes (at least
    one), the cursor moved to the last of them."""
    return page if budget <= 0 else _sync_page(page, budget)[0]


def _sync_page(page: SyncPage, budget: int) -> tuple[SyncPage, int]:
    kept, spent = _fitting(page.entries, budget)
    if len(kept) == len(page.entries):
        return page, spent
    return SyncPage(kept, kept[-1].sync_seq, page.head), spent


def groups_within_bytes(groups: list[GroupPage], budget: int, spent: int = 0) -> list[GroupPage]:
    """Each group page cut to what is left of ``budget`` once ``spent`` (the sync
    page's bodies) and the pages before it are counted (at least one message each)."""
    if budget <= 0:
        return groups
    left = max(0, budget - spent)
    cut = []
    for group in groups:
        kept, spent = _fitting(group.messages, left)
        left = max(0, left - spent)
        cut.append(group if len(kept) == len(group.messages) else replace(group, messages=kept))
    return cut


def _fitting(items: list[B], left: int) -> tuple[list[B], int]:
    """The first of ``items`` whose bodies fit in ``left`` bytes (at least one), and
    their bytes: each body is encoded once."""
    kept: list[B] = []
    used = 0
    for item in items:
        size = len(item.body.encode())
        if kept and used + size > left:
            break
        kept.append(item)
        used += size
    return kept, used
