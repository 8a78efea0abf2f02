"""The event loop the long-running processes (worker, gateway) run on.

The standard asyncio loop, or uvloop (a dependency, except on Windows) with
``IMSTREAM_PROCESS_EVENT_LOOP=uvloop``. Measured back to back on the 2-core
machine (latency scenario, one worker and one gateway, 20 s per rate): send ->
push p50 at 2,000 msg/s through the SDK 1,102 ms with asyncio, 792 ms with
uvloop; at 200 msg/s 176 / 167 ms (SDK) and 220 / 192 ms (HTTP); HTTP sends
taken at 2,000 offered 1,321 / 1,408 per second. It is not the default: in two
fresh-clone runs of the fault suite under uvloop a worker did not exit within
30 s of SIGTERM after a broker restart (its sync-store sink stuck stopping);
under asyncio that test has not failed.
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
