"""The state store: savepoints (one input record's changes can be undone), and sets
changelogged by element."""

from __future__ import annotations

import random
from typing import Any

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


def _replayed(log: list[tuple[bytes, bytes | None]], sets: tuple[str, ...] = ("m/",)) -> StateStore:
    state = StateStore(sets)
    for key, value in log:
        state.restore(key, value)
    return state


def _compacted(log: list[tuple[bytes, bytes | None]]) -> list[tuple[bytes, bytes | None]]:
    """What log compaction may leave: the last record of each key, in log order."""
    last = {key: n for n, (key, _) in enumerate(log)}
    return [record for n, record in enumerate(log) if last[record[0]] == n]


def test_a_join_or_leave_writes_one_small_record_whatever_the_set_size() -> None:
    state = StateStore(("m/",))
    members = [f"user{n:05d}".ljust(128, "x") for n in range(10_000)]
    state.set_replace("m/g", members)
    created = state.changelog()
    assert len(created) == 10_000
    assert max(len(k) for k, _ in created) < 140
    state.commit()
    state.set_add("m/g", "newcomer")
    assert state.changelog() == [(b"m/g\x00newcomer", b"1")]
    state.commit()
    state.set_discard("m/g", members[0])
    assert state.changelog() == [(f"m/g\x00{members[0]}".encode(), None)]
    assert not state.maybe_larger_than("m/g", 1_000)
    assert len(state.get("m/g")) == 10_000
    assert state.get("m/g") == sorted([*members[1:], "newcomer"])


def test_a_set_from_a_whole_list_record_is_rewritten_by_element_at_its_first_change() -> None:
    old = [(b"m/g", b'["a","b"]'), (b"c/g", b'["group",1,1,5,false]')]
    state = _replayed(old)
    assert state.get("m/g") == ["a", "b"]
    state.set_add("m/g", "c")
    new = state.changelog()
    assert new[0] == (b"m/g", None)  # the old record goes before its elements
    assert sorted(new[1:]) == [(b"m/g\x00a", b"1"), (b"m/g\x00b", b"1"), (b"m/g\x00c", b"1")]
    state.commit()
    for log in (old + new, _compacted(old + new)):
        assert _replayed(log).get("m/g") == ["a", "b", "c"]


def test_rollback_undoes_set_changes_and_a_pending_rewrite() -> None:
    state = _replayed([(b"m/g", b'["a","b"]')])
    state.savepoint()
    state.set_add("m/g", "c")
    state.set_discard("m/g", "a")
    state.rollback()
    assert state.get("m/g") == ["a", "b"]
    assert state.changelog() == []
    state.set_discard("m/g", "a")  # the rewrite is still due after the rollback
    assert _replayed(state.changelog()).get("m/g") == ["b"]


def test_any_interleaving_of_changes_commits_and_rollbacks_replays_to_the_same_state() -> None:
    """Seeded random histories: replaying the committed changelog (whole, or as
    compaction leaves it) rebuilds exactly the committed state."""
    people = [f"p{n}" for n in range(8)]
    for seed in range(300):
        rng = random.Random(seed)
        log: list[tuple[bytes, bytes | None]] = [(b"m/old", b'["p1","p2"]')]
        state = _replayed(log)
        committed: dict[str, Any] = dict(state.items())
        for _ in range(rng.randint(1, 40)):
            state.savepoint()
            for _ in range(rng.randint(1, 4)):
                key = rng.choice(["m/a", "m/b", "m/old", "c/a", "c/b"])
                op = rng.random()
                if key.startswith("c/"):
                    state.put(key, rng.randint(0, 9)) if op < 0.8 else state.delete(key)
                elif op < 0.4:
                    state.set_add(key, rng.choice(people))
                elif op < 0.7:
                    state.set_discard(key, rng.choice(people))
                elif op < 0.9:
                    state.set_replace(key, rng.sample(people, rng.randint(0, 5)))
                else:
                    state.delete(key)
            state.rollback() if rng.random() < 0.3 else state.release()
            if rng.random() < 0.4:
                log += state.changelog()
                state.commit()
                committed = {k: v for k, v in state.items() if v != []}
        for replay in (log, _compacted(log)):
            rebuilt = {k: v for k, v in _replayed(replay).items() if v != []}
            assert rebuilt == committed, seed
