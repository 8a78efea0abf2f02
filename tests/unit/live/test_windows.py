"""The live views' windows stay exact however often the app crashes and reads again.

A model of faust's at-least-once loop: events are processed in order; every
table update is a changelog write; a commit first flushes the changelog, then
stores the input position; a crash (kill -9) keeps the changelog up to some point
at or after the last commit and loses the rest, and processing starts again at
the committed position over the tables rebuilt from the changelog.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.live import windows

WINDOW = 60


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[str, int, float, str, float]]:
    """(conversation, seq, ts in s, sender, latency ms) in log order: per
    conversation, seqs dense from 1 and time never going back."""
    events = []
    clock = dict.fromkeys("abc", 0.0)
    seqs = dict.fromkeys("abc", 0)
    for _ in range(draw(st.integers(1, 60))):
        c = draw(st.sampled_from("abc"))
        clock[c] += draw(st.sampled_from([0.0, 1.0, 30.0, 61.0]))
        seqs[c] += 1
        sender = draw(st.sampled_from(["u1", "u2", "u3"]))
        latency = draw(st.sampled_from([0.5, 3.0, 12.0, 250.0]))
        events.append((c, seqs[c], clock[c], sender, latency))
    return events


class Tables:
    """The three tables as changelogged dicts."""

    def __init__(self) -> None:
        self.data: dict[Any, Any] = {}
        self.changelog: list[tuple[Any, Any]] = []

    def set(self, key: Any, value: Any) -> None:
        self.data[key] = value
        self.changelog.append((key, value))

    @classmethod
    def recovered(cls, changelog: list[tuple[Any, Any]]) -> Tables:
        tables = cls()
        for key, value in changelog:
            tables.set(key, value)
        return tables


def process(tables: Tables, event: tuple[str, int, float, str, float]) -> None:
    c, seq, ts, sender, latency = event
    window = (ts - ts % WINDOW, ts - ts % WINDOW + WINDOW - 0.1)
    key = ("conv", (c, window))
    folded = windows.fold_message(tables.data.get(key), seq, latency)
    if folded is not None:
        tables.set(key, folded)
    sender_key = ("sender", (windows.sender_key(c, sender), window))
    if sender_key not in tables.data:
        tables.set(sender_key, 1)


def figures(tables: Tables) -> list[windows.Minute]:
    conv = [(k, v) for (kind, k), v in tables.data.items() if kind == "conv"]
    senders = [k for (kind, k) in tables.data if kind == "sender"]
    return windows.minutes(conv, senders, [], top_n=3)


def brute_force(events: list[tuple[str, int, float, str, float]]) -> dict[float, Any]:
    out: dict[float, Any] = {}
    for c, _, ts, sender, latency in events:
        start = ts - ts % WINDOW
        m = out.setdefault(start, {"n": 0, "convs": set(), "senders": set(), "lat": Counter()})
        m["n"] += 1
        m["convs"].add(c)
        m["senders"].add(sender)
        m["lat"][windows.latency_bucket(latency)] += 1
    return out


@settings(max_examples=300, deadline=None)
@given(histories(), st.data())
def test_crashes_and_replays_change_no_figure(
    events: list[tuple[str, int, float, str, float]], data: st.DataObject
) -> None:
    tables, position, committed, flushed_at_commit = Tables(), 0, 0, 0
    crashes = data.draw(st.integers(0, 4))
    while position < len(events):
        process(tables, events[position])
        position += 1
        if data.draw(st.booleans()):  # a commit: flush, then store the position
            committed, flushed_at_commit = position, len(tables.changelog)
        if crashes and data.draw(st.integers(0, 5)) == 0:
            crashes -= 1
            kept = data.draw(st.integers(flushed_at_commit, len(tables.changelog)))
            tables = Tables.recovered(tables.changelog[:kept])
            position, flushed_at_commit = committed, len(tables.changelog)
    expected = brute_force(events)
    got = figures(tables)
    assert [m.start for m in got] == sorted(expected, reverse=True)
    for m in got:
        want = expected[m.start]
        assert (m.messages, m.conversations, m.senders) == (
            want["n"],
            len(want["convs"]),
            len(want["senders"]),
        )
        assert m.latency == want["lat"]


def test_a_dead_letter_offset_is_counted_once() -> None:
    value = None
    counted = []
    for offset in (0, 1, 2, 1, 2, 3):  # 1 and 2 read again after a crash
        folded = windows.fold_dead_letter(value, offset)
        if folded is not None:
            value = folded
        counted.append(folded is not None)
    assert value == {"count": 4, "offset": 3}
    assert counted == [True, True, True, False, False, True]


def test_seen_forgets_the_oldest_key() -> None:
    seen = windows.Seen(2)
    assert [seen.add(k) for k in ("a", "b", "a", "c", "b", "a")] == [
        True,
        True,
        False,
        True,  # b is now the oldest: forgotten
        True,
        True,
    ]


def test_percentiles_are_within_five_percent_above() -> None:
    minute = windows.Minute(0.0)
    samples = [1.0, 2.0, 5.0, 10.0, 10.0, 20.0, 50.0, 100.0, 400.0, 1000.0]
    for ms in samples:
        minute.latency[windows.latency_bucket(ms)] += 1
    for q, exact in ((0.5, 10.0), (0.9, 400.0), (1.0, 1000.0)):
        reported = minute.percentile(q)
        assert reported is not None
        assert exact <= reported <= exact * 1.05 + 0.1
    assert windows.Minute(0.0).percentile(0.5) is None


def test_windows_from_rocksdb_come_back_as_lists() -> None:
    value = {"first": 3, "last": 5, "lat": {"0": 3}}
    from_memory = windows.minutes([(("g", (60.0, 119.9)), value)], [], [], 3)
    from_disk = windows.minutes([(["g", [60.0, 119.9]], value)], [], [], 3)
    assert [m.as_dict(closed=True) for m in from_memory] == [
        m.as_dict(closed=True) for m in from_disk
    ]
    assert from_disk[0].messages == 3
    assert from_disk[0].top == [("g", 3)]
