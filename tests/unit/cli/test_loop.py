"""The worker's and gateway's event loop follows IMSTREAM_PROCESS_EVENT_LOOP."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from pipeline.cli import loop
from pipeline.errors import ConfigError
from pipeline.settings import Settings


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


@pytest.mark.parametrize(("choice", "module"), [("uvloop", "uvloop"), ("asyncio", "asyncio")])
def test_the_setting_chooses_the_loop(choice: str, module: str) -> None:
    pytest.importorskip("uvloop")
    settings = Settings()
    settings = settings.replace(process=replace(settings.process, event_loop=choice))
    assert loop.run(settings, loop_module()).startswith(module)


def test_an_unknown_loop_is_refused() -> None:
    with pytest.raises(ConfigError, match="PROCESS_EVENT_LOOP must be uvloop or asyncio"):
        Settings.from_env({"IMSTREAM_PROCESS_EVENT_LOOP": "trio"})
