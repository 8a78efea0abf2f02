"""The event loop the long-running processes (worker, gateway) run on.

uvloop when it is installed and ``IMSTREAM_EVENT_LOOP`` is ``uvloop`` (the
default): measured in the benchmark (BENCHMARKS.md) on the HTTP send path and
the worker's stages. ``asyncio`` chooses the standard loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from pipeline.settings import Settings

T = TypeVar("T")


def run(settings: Settings, main: Coroutine[Any, Any, T]) -> T:
    if settings.process.event_loop == "uvloop":
        try:
            import uvloop  # noqa: PLC0415 (optional: not every platform has it)
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)
