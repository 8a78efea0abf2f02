"""Limits that keep one user from taking the service from everyone else.

Each is a token bucket per user: ``burst`` actions at once, then ``rate`` per
second. An action over the limit is refused with 429 and ``Retry-After`` (the
seconds until the bucket holds a token again), and costs nothing: it is refused
before anything is produced or queried. Buckets live in the gateway's memory:
with several gateways a user's limit is per gateway (a device sticks to one).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.errors import RateLimitedError

MAX_TRACKED = 100_000  # past this many users, buckets that are full again are dropped


@dataclass(slots=True)
class Bucket:
    tokens: float
    at: float


class RateLimit:
    def __init__(
        self,
        what: str,
        rate_per_s: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        refused: Callable[[], None] = lambda: None,
    ) -> None:
        self.what = what
        self.refused = refused
        """Called at each refusal (the gateway counts them by limit)."""
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, Bucket] = {}

    def take(self, user: str, cost: float = 1.0) -> None:
        """An action of ``user`` costing ``cost`` tokens (at most the burst), or
        RateLimitedError saying when to retry."""
        if self.rate_per_s <= 0:
            return  # 0: no limit
        cost = min(float(self.burst), cost)
        now = self._clock()
        bucket = self._buckets.get(user)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED:
                self._forget_idle(now)
            bucket = self._buckets[user] = Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate_per_s)
        bucket.at = now
        if bucket.tokens < cost:
            self.refused()
            wait = (cost - bucket.tokens) / self.rate_per_s
            raise RateLimitedError(
                f"too many {self.what}: at most {self.burst} at once, then "
                f"{_per(self.rate_per_s)}; retry in {wait:.1f}s",
                retry_after_s=wait,
            )
        bucket.tokens -= cost

    def _forget_idle(self, now: float) -> None:
        full = [
            user
            for user, bucket in self._buckets.items()
            if bucket.tokens + (now - bucket.at) * self.rate_per_s >= self.burst
        ]
        for user in full:
            del self._buckets[user]


def _per(rate_per_s: float) -> str:
    if rate_per_s >= 1:
        return f"{rate_per_s:g} per second"
    return f"{rate_per_s * 60:g} per minute"
