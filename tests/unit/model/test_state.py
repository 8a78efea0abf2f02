"""The state store's savepoints: one input record's changes can be undone."""

from __future__ import annotations

from pipeline.model.state import StateStore


def test_rollback_undoes_puts_and_deletes_since_the_savepoint_only() -> None:
    state = StateStore()
    state.put("a", [1])
    state.put("b", 2)
    state.commit()
    state.put("c", 3)  # dirty before the savepoint: stays dirty
    state.savepoint()
    state.put("a", [1, 2])
    state.delete("b")
    state.put("d", 4)
    state.put("c", 30)
    assert sorted(state.since_savepoint()) == ["a", "b", "c", "d"]
    state.rollback()
    assert dict(state.items()) == {"a": [1], "b": 2, "c": 3}
    assert dict(state.changelog()) == {b"c": b"3"}


def test_release_keeps_the_changes() -> None:
    state = StateStore()
    state.savepoint()
    state.put("a", "x" * 3_000)
    assert state.maybe_larger_than("a", 2_048)
    assert not state.maybe_larger_than("a", 4_000_000)
    assert state.encoded_size("a") == 1 + 3_002
    state.release()
    state.rollback()  # nothing to undo once released
    assert state.get("a") == "x" * 3_000
