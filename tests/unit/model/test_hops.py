"""The per-hop stamps a message carries: chained by each stage, read back as hops."""

from __future__ import annotations

import pytest

from pipeline.model import hops


def test_each_stage_extends_the_chain_and_the_hops_add_up() -> None:
    chain = hops.first(1000, 1003, 1010)
    chain = hops.extend(chain, hops.SYNCED, 1031)
    chain = hops.extend(chain, hops.PUSHED, 1033)
    assert chain == b"1000,1003,1010,1031,1033"
    found = hops.hops(hops.parse(chain), end_ms=1040)
    assert found == [
        ("log", 0.003),
        ("sequenced", 0.007),
        ("synced", 0.021),
        ("pushed", 0.002),
        ("socket", 0.007),
    ]
    assert sum(seconds for _, seconds in found) == pytest.approx(0.040)


def test_a_skipped_hop_stays_empty_and_the_next_one_spans_it() -> None:
    # a large group's event goes from the sequencer straight to the push agent
    chain = hops.extend(hops.first(1000, 1001, 1005), hops.PUSHED, 1009)
    assert chain == b"1000,1001,1005,,1009"
    stamps = hops.parse(chain)
    assert stamps == [1000, 1001, 1005, None, 1009]
    assert hops.hops(stamps) == [("log", 0.001), ("sequenced", 0.004), ("pushed", 0.004)]


def test_a_replayed_record_keeps_its_stamp() -> None:
    chain = b"1000,1001,1005,1007"
    assert hops.extend(chain, hops.SYNCED, 2000) == chain


def test_records_without_stamps_are_not_measured() -> None:
    assert hops.restamp(None, hops.SYNCED, 5) is None
    assert hops.restamp([("other", b"x")], hops.SYNCED, 5) is None
    assert hops.parse(b"") == []
    assert hops.hops([], end_ms=10) == []
    assert hops.sent_ms([]) is None


def test_restamp_finds_the_header_among_others() -> None:
    headers = [("imstream.kind", b"timeline"), (hops.HEADER, b"1,2,3")]
    assert hops.restamp(headers, hops.SYNCED, 9) == [(hops.HEADER, b"1,2,3,9")]


def test_junk_reads_as_missing_and_clocks_going_back_read_as_zero() -> None:
    assert hops.parse(b"1,x,3") == [1, None, 3]
    assert hops.hops([1000, 990]) == [("log", 0.0)]


def test_a_large_groups_broadcast_gets_its_origin_from_the_event() -> None:
    # the push agent knows when it was sequenced (the record's timestamp) and pushed;
    # the gateway, having decoded the event, fills in the send and log times
    pushed = hops.extend(b",,1005", hops.PUSHED, 1009)
    assert pushed == b",,1005,,1009"
    full = hops.with_origin(pushed, 1000, 1001)
    assert full == b"1000,1001,1005,,1009"
    assert hops.with_origin(b"", 1, 2) == b"1,2"
    assert hops.with_origin(full, 7, 8) == full  # stamped already: kept
