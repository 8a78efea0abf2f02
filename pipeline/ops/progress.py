"""A progress bar for long commands, on stderr so that stdout stays data.

On a terminal it redraws one line in place; elsewhere (a log, a pipe) it
writes a line at each tenth of the way, so logs stay short.
"""

from __future__ import annotations

import time
from typing import TextIO

WIDTH = 30
REDRAW_S = 0.1


class Progress:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self.label = ""
        self.total = 0
        self.done = 0
        self._drawn_at = 0.0
        self._tenths = -1

    def start(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self._drawn_at, self._tenths = 0.0, -1
        self._draw()

    def update(self, done: int) -> None:
        self.done = min(done, self.total)
        now = time.monotonic()
        if self.live and now - self._drawn_at < REDRAW_S and self.done < self.total:
            return
        self._drawn_at = now
        self._draw()

    def finish(self) -> None:
        self.done = self.total
        self._draw()
        if self.live:
            self.stream.write("\n")
            self.stream.flush()

    def line(self) -> str:
        share = self.done / self.total if self.total else 1.0
        filled = int(WIDTH * share)
        bar = "#" * filled + "." * (WIDTH - filled)
        return f"{self.label} [{bar}] {share:4.0%} {self.done}/{self.total}"

    def _draw(self) -> None:
        if self.live:
            self.stream.write("\r" + self.line())
        else:
            tenths = int(10 * self.done / self.total) if self.total else 10
            if tenths == self._tenths:
                return
            self._tenths = tenths
            self.stream.write(self.line() + "\n")
        self.stream.flush()
