"""Sync timelines: a dense per-user ``sync_seq`` for every delivery.

Pure logic over a :class:`~pipeline.model.state.StateStore` holding, per user of one
``im.sync`` partition:

    u/<user>                 [last_sync_seq, last_ts_ms]
    r/<user>/<conversation>  the user's read marker (a seq)
    m/<user>/<conversation>  [muted, pinned] (0 or 1 each)

An entry's ``ts_ms`` never goes backwards within a user's timeline, so a day's
entries of a user are one contiguous sync_seq range (what the analytics rollups
rely on). A user's own events (pipeline/model/events.py, ``UserEvent``) get an
entry only when they change something: a read marker that does not move
forward, or a mute or pin that is already so, is dropped here, exactly once
like everything else the stage does, so the markers in a sync timeline only
ever go up.
"""

from __future__ import annotations

from pipeline.model.events import Delivery, InboxEntry, UserEvent
from pipeline.model.state import StateStore


class SyncSequencer:
    def __init__(self, state: StateStore) -> None:
        self.state = state

    def assign(self, delivery: Delivery) -> InboxEntry | None:
        """The delivery's entry, or None for a user event that changes nothing."""
        event = delivery.event
        if isinstance(event, UserEvent) and not self._changes(event):
            return None
        key = f"u/{delivery.user_id}"
        last_seq, last_ts = self.state.get(key, (0, 0))
        entry = InboxEntry(
            user_id=delivery.user_id,
            sync_seq=last_seq + 1,
            ts_ms=max(last_ts, event.ts_ms),
            event=event,
        )
        self.state.put(key, [entry.sync_seq, entry.ts_ms])
        return entry

    def _changes(self, event: UserEvent) -> bool:
        """Whether ``event`` moves the user's state (and records that it did)."""
        where = f"{event.user_id}/{event.conversation_id}"
        if event.kind == "read":
            if event.seq <= self.state.get(f"r/{where}", 0):
                return False
            self.state.put(f"r/{where}", event.seq)
            return True
        muted, pinned = self.state.get(f"m/{where}", (0, 0))
        now = [int(event.on), pinned] if event.kind == "muted" else [muted, int(event.on)]
        if now == [muted, pinned]:
            return False
        self.state.put(f"m/{where}", now)
        return True

    def marker(self, user_id: str, conversation_id: str) -> int:
        return int(self.state.get(f"r/{user_id}/{conversation_id}", 0))
