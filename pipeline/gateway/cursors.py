"""Cursor acks, coalesced: at most one write per device per interval, the latest wins.

A device acks its cursor (the last ``sync_seq`` it applied) as often as it likes:
on every push, if that is how it is written. Each ack as its own ClickHouse
INSERT made one part per ack, and a few busy devices could drive the table to
TOO_MANY_PARTS. Here an ack is checked at once (a bad cursor, a group the user
was never in: answered as before) and kept in memory; every ``interval_s`` the
gateway writes the highest cursor of every device that acked, in one INSERT per
table. Cursors only move forward, so keeping the highest is keeping the latest.

What is not written yet is not lost to the device that acked it: this gateway's
``GET /v1/devices`` and pulls merge it in. A gateway that crashes loses at most
one interval of acks: the devices concerned pull again entries they already
have (they skip them by ``sync_seq``), and nothing else changes. A stopping
gateway writes what it holds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from pipeline.errors import ImstreamError
from pipeline.store import queries
from pipeline.store.clickhouse import ClickHouse

log = logging.getLogger(__name__)


class CursorBuffer:
    def __init__(self, store: ClickHouse, interval_s: float) -> None:
        self.store = store
        self.interval_s = interval_s
        self.cursors: dict[tuple[str, str], int] = {}
        self.groups: dict[tuple[str, str, str], int] = {}
        self.acks = 0
        self.writes = 0

    def add(self, user: str, device: str, cursor: int, groups: Mapping[str, int]) -> None:
        """A device's ack, already checked."""
        self.acks += 1
        key = (user, device)
        self.cursors[key] = max(cursor, self.cursors.get(key, 0))
        for conversation, seq in groups.items():
            group_key = (user, device, conversation)
            self.groups[group_key] = max(seq, self.groups.get(group_key, 0))

    def pending(self, user: str) -> dict[str, int]:
        """The cursors of ``user``'s devices acked here and not yet written."""
        return {device: c for (u, device), c in self.cursors.items() if u == user}

    def pending_groups(self, user: str) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}
        for (u, device, conversation), seq in self.groups.items():
            if u == user:
                found.setdefault(device, {})[conversation] = seq
        return found

    async def ack(self, user: str, device: str, cursor: int, groups: Mapping[str, int]) -> None:
        """Keep a checked ack for the next write; with no interval, write it now."""
        self.add(user, device, cursor, groups)
        if not self.interval_s:
            await self.flush()

    async def run(self) -> None:
        """Write every interval, until cancelled (then write what is left)."""
        try:
            while True:
                await asyncio.sleep(self.interval_s)
                await self._flush_or_keep()
        finally:
            await asyncio.shield(self._flush_or_keep())

    async def _flush_or_keep(self) -> None:
        try:
            await self.flush()
        except ImstreamError as exc:  # kept for the next interval
            log.warning("cursor acks of %d device(s) not written yet: %r", len(self.cursors), exc)

    async def flush(self) -> None:
        """Write what is pending; on failure keep it (merged with newer acks) for the
        next interval and raise."""
        cursors, groups = self.cursors, self.groups
        if not cursors and not groups:
            return
        self.cursors, self.groups = {}, {}
        now = int(time.time() * 1000)
        try:
            await self.store.insert(
                queries.INSERT_DEVICE_CURSOR.sql,
                [(user, device, c, now) for (user, device), c in sorted(cursors.items())],
            )
            await self.store.insert(
                queries.INSERT_DEVICE_GROUP_CURSOR.sql,
                [(u, d, conv, seq, now) for (u, d, conv), seq in sorted(groups.items())],
            )
        except BaseException:
            for key, c in cursors.items():
                self.cursors[key] = max(c, self.cursors.get(key, 0))
            for group_key, seq in groups.items():
                self.groups[group_key] = max(seq, self.groups.get(group_key, 0))
            raise
        self.writes += 1
