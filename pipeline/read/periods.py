"""Membership periods: which of a conversation's messages a member may read.

Each time a user was a member is a :class:`Period` of seqs, ``since`` (exclusive:
the seq of their join, the last message before it) to ``until`` (inclusive: the
seq of their leave; None while they are a member). A member who left and came
back reads nothing of the time between.

Whether a member also reads what was sent before they first joined is the
deployment's ``PIPELINE_HISTORY_BEFORE_JOIN``: ``hidden`` (the default: what
their sync timeline shows too) or ``visible`` (their first period starts at the
beginning). History pages (pipeline/read/history.py) and large groups' pages
(pipeline/read/large_groups.py) apply the same periods, so the two never disagree
about a message.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MembershipRow = tuple[int, str, int]  # (event_no, action, after_seq), in event order


@dataclass(frozen=True, slots=True)
class Period:
    since: int
    until: int | None

    def holds(self, seq: int) -> bool:
        return self.since < seq and (self.until is None or seq <= self.until)


def periods(
    rows: Iterable[MembershipRow], large_seq: int = 0, *, before_join: bool = False
) -> list[Period]:
    """A user's periods from their membership rows, none starting before
    ``large_seq`` (for a large group's pages: the seq where it became large, as what
    came before is in the sync timelines); ``before_join``: the first one starts
    there whatever the seq of the join."""
    found: list[Period] = []
    since: int | None = None
    for _, action, after_seq in rows:
        if action == "join" and since is None:
            since = large_seq if before_join and not found else max(after_seq, large_seq)
        elif action == "leave" and since is not None:
            if after_seq > since:
                found.append(Period(since, after_seq))
            since = None
    if since is not None:
        found.append(Period(since, None))
    return found
