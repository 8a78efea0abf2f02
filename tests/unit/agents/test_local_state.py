"""The local store: a compacted copy of a changelog partition with its checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.runtime.local_state import LocalState, LocalStateBusy
from pipeline.model.state import StateStore


def test_it_holds_the_latest_value_of_each_key_and_where_it_stands(tmp_path: Path) -> None:
    store = LocalState(tmp_path / "p0")
    assert store.open() is None
    store.save([(b"c/a", b"1"), (b"m/a\x00x", b"1"), (b"c/b", b"2")], next_offset=3)
    store.save([(b"c/a", b"5"), (b"m/a\x00x", None)], next_offset=7)
    store.close()
    checkpoint = store.open()
    assert checkpoint is not None
    assert checkpoint.offset == 7
    assert checkpoint.names(b"m/a\x00x", None)
    assert not checkpoint.names(b"c/a", b"5")
    assert checkpoint.fresh
    assert list(store.records()) == [(b"c/a", b"5"), (b"c/b", b"2")]
    state = StateStore(("m/",))
    for key, value in store.records():
        state.restore(key, value)
    assert dict(state.items()) == {"c/a": 5, "c/b": 2}
    store.wipe()
    assert list(store.records()) == []
    store.close()


def test_a_store_open_elsewhere_is_busy(tmp_path: Path) -> None:
    first = LocalState(tmp_path / "p0")
    first.open()
    with pytest.raises(LocalStateBusy):
        LocalState(tmp_path / "p0").open()
    first.close()
    second = LocalState(tmp_path / "p0")
    assert second.open() is None
    second.close()
