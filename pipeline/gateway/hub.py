"""Online devices of one gateway, and pushing to them without ever blocking.

Each WebSocket connection is a small state machine::

    OPEN ──queue full──► BEHIND ──"pull" frame sent──► OPEN
      └────────────── socket error / close ──────────► CLOSED

Pushed frames go into the connection's bounded queue (``offer`` never
waits); a writer task drains it into the socket. When a slow device lets its
queue fill, the queued entries are dropped and the device is told to pull
from its cursor instead: one slow or dead socket costs its own entries, never
the pipeline's or other users' time.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from aiohttp import web

from pipeline.observe.sensor import Sensor

log = logging.getLogger(__name__)

PULL_FRAME = orjson.dumps({"type": "pull", "reason": "behind"}).decode()
# pushes may overtake the sync store: entries a device could not pull yet when it
# connected are in the store a moment later, so it is told to pull once more
RESYNC_FRAME = orjson.dumps({"type": "pull", "reason": "connected"}).decode()
RESYNC_AFTER_S = 1.0


class State(enum.Enum):
    OPEN = "open"
    BEHIND = "behind"
    CLOSED = "closed"


@dataclass(eq=False)
class Connection:
    user_id: str
    device_id: str
    ws: web.WebSocketResponse
    queue_size: int
    sensor: Sensor = field(default_factory=Sensor)
    state: State = State.OPEN
    sent: int = 0
    dropped: int = 0
    queue: asyncio.Queue[tuple[str, bytes | None]] = field(init=False)

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(maxsize=self.queue_size)

    def offer(self, frame: str, stamps: bytes | None = None) -> None:
        """Queue a frame for the device; never waits. A frame that carries an entry
        comes with the entry's hop stamps (``b""`` if it has none), so the sensor
        counts it and measures when it reaches the socket."""
        if self.state is State.CLOSED:
            return
        if self.state is State.BEHIND:
            self.dropped += 1  # the pull it was told to do covers this entry
            self.sensor.on_push_dropped(1)
            return
        try:
            self.queue.put_nowait((frame, stamps))
        except asyncio.QueueFull:
            self._fall_behind()

    def _fall_behind(self) -> None:
        dropped = 1
        while not self.queue.empty():
            self.queue.get_nowait()
            dropped += 1
        self.dropped += dropped
        self.sensor.on_push_dropped(dropped)
        self.state = State.BEHIND
        self.queue.put_nowait((PULL_FRAME, None))

    async def write(self) -> None:
        """Drain the queue into the socket until the connection closes."""
        try:
            while self.state is not State.CLOSED:
                frame, stamps = await self.queue.get()
                if self.closed:
                    break
                if frame is PULL_FRAME:
                    self.state = State.OPEN
                await self.ws.send_str(frame)
                self.sent += 1
                if stamps is not None:
                    self.sensor.on_socket_write(stamps, int(time.time() * 1000))
        except (ConnectionError, RuntimeError) as exc:
            log.debug("push to %s/%s stopped: %r", self.user_id, self.device_id, exc)
        finally:
            self.state = State.CLOSED

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    def close(self) -> None:
        self.state = State.CLOSED
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(("", None))  # wake the writer


@dataclass
class Hub:
    """user → their connections on this gateway; tells presence when that set changes."""

    on_presence: Callable[[str, int], None]
    users: dict[str, set[Connection]] = field(default_factory=dict)

    def add(self, connection: Connection) -> None:
        devices = self.users.setdefault(connection.user_id, set())
        devices.add(connection)
        self.on_presence(connection.user_id, len(devices))

    def remove(self, connection: Connection) -> None:
        connection.close()
        devices = self.users.get(connection.user_id, set())
        devices.discard(connection)
        if not devices:
            self.users.pop(connection.user_id, None)
        self.on_presence(connection.user_id, len(devices))

    def push(self, user_id: str, frame: str, stamps: bytes | None = b"") -> int:
        """Offer a frame to every connection of the user; return how many. ``stamps``:
        see :meth:`Connection.offer` (None for a frame that carries no entry)."""
        devices = self.users.get(user_id, ())
        for connection in devices:
            connection.offer(frame, stamps)
        return len(devices)

    def connections(self) -> int:
        return sum(len(d) for d in self.users.values())
