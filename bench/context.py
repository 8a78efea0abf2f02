"""What every scenario gets: the base settings, the profile, where things go."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bench.machine import Servers
from bench.procs import Proc
from bench.profiles import Profile
from pipeline.settings import Settings


@dataclass(frozen=True, slots=True)
class Context:
    settings: Settings
    profile: Profile
    results: Path
    logs: Path
    servers: Servers
    keep: bool = False
    profile_process: str | None = None
    """``worker`` or ``gateway``: record that process with py-spy during the measured phase."""
    profile_rate: int = 100

    def driver(self) -> Proc:
        return Proc("bench driver", os.getpid())

    def base_procs(self) -> list[Proc]:
        """The bench driver (this process), the broker and ClickHouse."""
        return [self.driver(), *self.servers.procs()]
