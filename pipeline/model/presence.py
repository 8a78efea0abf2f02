"""Presence: which gateway holds which users' devices, for routing pushes.

Gateways publish to ``im.presence`` (compacted, one partition, so a gateway's
records stay in order):

    key "<gateway>/<user>"  {"v", "gateway", "user", "devices", "ts_ms"}  (a tombstone at 0)
    key "<gateway>/"        {"v", "gateway", "started_ms", "ts_ms"}       (heartbeat)

The push agent folds them into a :class:`PresenceTable`. A heartbeat with a
newer ``started_ms`` means the gateway restarted: every user record it wrote
before that is void. A gateway silent for ``stale_ms`` counts as gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from pipeline.model.events import SCHEMA_VERSION

HEARTBEAT_S = 5.0
STALE_MS = 20_000


def user_key(gateway: str, user: str) -> bytes:
    return f"{gateway}/{user}".encode()


def heartbeat_key(gateway: str) -> bytes:
    return f"{gateway}/".encode()


def user_record(gateway: str, user: str, devices: int, ts_ms: int) -> bytes | None:
    if devices <= 0:
        return None
    return orjson.dumps(
        {"v": SCHEMA_VERSION, "gateway": gateway, "user": user, "devices": devices, "ts_ms": ts_ms}
    )


def heartbeat_record(gateway: str, started_ms: int, ts_ms: int) -> bytes:
    return orjson.dumps(
        {"v": SCHEMA_VERSION, "gateway": gateway, "started_ms": started_ms, "ts_ms": ts_ms}
    )


@dataclass
class _Gateway:
    started_ms: int = 0
    seen_ms: int = 0
    users: dict[str, int] = field(default_factory=dict)  # user -> record ts_ms


@dataclass
class PresenceTable:
    stale_ms: int = STALE_MS
    gateways: dict[str, _Gateway] = field(default_factory=dict)

    def apply(self, key: bytes, value: bytes | None) -> None:
        """Fold one im.presence record; records that do not parse are ignored."""
        gateway, _, user = key.decode("utf-8", "replace").partition("/")
        entry = self.gateways.setdefault(gateway, _Gateway())
        if value is None:
            if user:
                entry.users.pop(user, None)
            return
        try:
            data: dict[str, Any] = orjson.loads(value)
            ts_ms = int(data["ts_ms"])
        except (ValueError, KeyError, TypeError):
            return
        entry.seen_ms = max(entry.seen_ms, ts_ms)
        if not user:
            started = int(data.get("started_ms", 0))
            if started > entry.started_ms:
                entry.started_ms = started
                entry.users = {u: t for u, t in entry.users.items() if t >= started}
        elif ts_ms >= entry.started_ms and int(data.get("devices", 0)) > 0:
            entry.users[user] = ts_ms
        else:
            entry.users.pop(user, None)

    def live(self, now_ms: int) -> list[str]:
        return sorted(n for n, g in self.gateways.items() if now_ms - g.seen_ms <= self.stale_ms)

    def any_live(self, now_ms: int) -> bool:
        return any(now_ms - g.seen_ms <= self.stale_ms for g in self.gateways.values())

    def gateways_of(self, user: str, now_ms: int) -> list[str]:
        return [
            name
            for name, g in self.gateways.items()
            if user in g.users and now_ms - g.seen_ms <= self.stale_ms
        ]
