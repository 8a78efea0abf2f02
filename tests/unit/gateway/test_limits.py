"""A user's token bucket: a burst at once, then the rate; the wait is exact, users
are independent, and a user who went quiet is forgotten when the table is full."""

from __future__ import annotations

import pytest

from pipeline.errors import RateLimitedError
from pipeline.gateway import limits
from pipeline.gateway.limits import RateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate() -> None:
    clock = Clock()
    sends = RateLimit("sends", rate_per_s=2.0, burst=3, clock=clock)
    for _ in range(3):
        sends.take("alice")
    with pytest.raises(RateLimitedError, match="too many sends: at most 3 at once") as over:
        sends.take("alice")
    assert over.value.retry_after_s == pytest.approx(0.5)
    sends.take("bob")  # another user's bucket is their own
    clock.now += 0.5
    sends.take("alice")  # one token back after 1/rate
    with pytest.raises(RateLimitedError):
        sends.take("alice")
    clock.now += 60
    for _ in range(3):  # refilled to the burst, never past it
        sends.take("alice")
    with pytest.raises(RateLimitedError):
        sends.take("alice")


def test_a_costly_action_takes_its_cost_and_waits_for_all_of_it() -> None:
    clock = Clock()
    fanout = RateLimit("sync entries", rate_per_s=100.0, burst=1_000, clock=clock)
    fanout.take("alice", 600)  # a send into a 600-member group
    with pytest.raises(RateLimitedError) as over:
        fanout.take("alice", 600)
    assert over.value.retry_after_s == pytest.approx(2.0)  # 200 more tokens at 100/s
    fanout.take("alice", 1)  # a 1:1 message still fits
    clock.now += 2.01
    fanout.take("alice", 600)
    clock.now += 1_000
    fanout.take("alice", 5_000)  # more than the burst costs the burst: never refused forever
    with pytest.raises(RateLimitedError):
        fanout.take("alice", 1)


def test_per_minute_limits_say_so_and_zero_is_no_limit() -> None:
    clock = Clock()
    creates = RateLimit("creates", rate_per_s=30 / 60, burst=1, clock=clock)
    creates.take("alice")
    with pytest.raises(RateLimitedError, match=r"then 30 per minute; retry in 2\.0s"):
        creates.take("alice")
    unlimited = RateLimit("sends", rate_per_s=0, burst=1, clock=clock)
    for _ in range(1000):
        unlimited.take("alice")


def test_quiet_users_are_forgotten_when_the_table_is_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_TRACKED", 3)
    clock = Clock()
    sends = RateLimit("sends", rate_per_s=1.0, burst=2, clock=clock)
    for user in ("a", "b", "c"):
        sends.take(user)
    sends.take("c")  # c's bucket is empty
    clock.now += 1.0  # a and b are full again, c is not
    sends.take("d")
    assert set(sends._buckets) == {"c", "d"}
    sends.take("c")  # c is still limited (one token back), not forgotten (two)
    with pytest.raises(RateLimitedError):
        sends.take("c")
