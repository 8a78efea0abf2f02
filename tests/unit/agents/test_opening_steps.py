"""A step of opening a partition that waits without end (a producer's start
against a transaction coordinator still loading) is cut short as soon as the
opening is called off, so it never holds up a stop or a rebalance."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka.errors import KafkaTimeoutError

from agents.runtime.transactional import ABANDON_POLL_S, Abandoned, abandonable


async def _forever(started: asyncio.Event, ended: list[str]) -> None:
    started.set()
    try:
        await asyncio.Event().wait()
    finally:
        ended.append("cancelled")


async def test_a_step_is_cut_short_when_its_opening_is_called_off() -> None:
    started, ended, called_off = asyncio.Event(), [], False
    step = asyncio.ensure_future(abandonable(_forever(started, ended), lambda: called_off))
    await started.wait()
    began = time.monotonic()
    called_off = True
    with pytest.raises(Abandoned):
        await step
    assert time.monotonic() - began < 10 * ABANDON_POLL_S
    assert ended == ["cancelled"]  # the step itself was cancelled, not left running


async def test_a_step_that_ends_gives_its_result_or_its_error() -> None:
    async def answer() -> int:
        await asyncio.sleep(0.25)
        return 42

    async def broken() -> None:
        raise KafkaTimeoutError("from Kafka")

    assert await abandonable(answer(), lambda: False) == 42
    with pytest.raises(KafkaTimeoutError, match="from Kafka"):
        await abandonable(broken(), lambda: False)


async def test_cancelling_the_opening_cancels_its_step() -> None:
    started, ended = asyncio.Event(), []
    opening = asyncio.ensure_future(abandonable(_forever(started, ended), lambda: False))
    await started.wait()
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    assert ended == ["cancelled"]
