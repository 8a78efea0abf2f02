"""Sync timelines: a dense per-user ``sync_seq`` for every delivery.

Pure logic over a :class:`~pipeline.model.state.StateStore` holding, per user of one
``im.sync`` partition, ``u/<user>`` → [last_sync_seq, last_ts_ms]. An entry's
``ts_ms`` never goes backwards within a user's timeline, so a day's entries of
a user are one contiguous sync_seq range (what the analytics rollups rely on).
"""

from __future__ import annotations

from pipeline.model.events import Delivery, InboxEntry
from pipeline.model.state import StateStore


class SyncSequencer:
    def __init__(self, state: StateStore) -> None:
        self.state = state

    def assign(self, delivery: Delivery) -> InboxEntry:
        key = f"u/{delivery.user_id}"
        last_seq, last_ts = self.state.get(key, (0, 0))
        entry = InboxEntry(
            user_id=delivery.user_id,
            sync_seq=last_seq + 1,
            ts_ms=max(last_ts, delivery.event.ts_ms),
            event=delivery.event,
        )
        self.state.put(key, [entry.sync_seq, entry.ts_ms])
        return entry
