"""The local store: a compacted copy of a changelog partition with its checkpoint,
and the state read through it (a cache over the disk) behaving as in memory."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from agents.runtime import local_state
from agents.runtime.local_state import DiskValues, LocalState, LocalStateBusy
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
    assert list(store.scan(b"c/")) == [(b"c/a", b"5"), (b"c/b", b"2")]
    assert list(store.scan(b"m/")) == []
    store.wipe()
    assert list(store.scan(b"c/")) == []
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


def _disk_store(path: Path) -> tuple[StateStore, LocalState]:
    local = LocalState(path)
    local.open()
    return StateStore(("m/",), DiskValues(local, ("m/",))), local


def _commit(state: StateStore, local: LocalState, offset: int) -> int:
    """As the runtime does after a transaction commits: save, then commit."""
    changes = state.changelog()
    offset += len(changes)
    local.save(changes, offset)
    state.commit()
    return offset


KEYS = ["m/a", "m/b", "c/a", "c/b", "d/a/x/1"]


def _view(store: StateStore) -> list[object]:
    """Every key's value; an empty set reads as absent (members are got with [])."""
    return [store.get(k) or None for k in KEYS]


@pytest.mark.parametrize("cache", [1, 3, 50_000])
def test_state_on_disk_behaves_as_in_memory_for_any_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: int
) -> None:
    """Seeded random histories run on both; whatever is read is the same, however
    small the cache; reopening the disk gives the committed state."""
    monkeypatch.setattr(local_state, "CACHE_ENTRIES", cache)
    people = [f"p{n}" for n in range(6)]
    for seed in range(30):
        rng = random.Random(seed)
        memory = StateStore(("m/",))
        disk, local = _disk_store(tmp_path / f"{cache}-{seed}")
        offset = 0
        for _ in range(rng.randint(1, 30)):
            for store in (memory, disk):
                store.savepoint()
            for _ in range(rng.randint(1, 4)):
                key, op, who = rng.choice(KEYS), rng.random(), rng.choice(people)
                members = rng.sample(people, rng.randint(0, 4))
                for store in (memory, disk):
                    if not key.startswith("m/"):
                        store.put(key, [who, 1]) if op < 0.7 else store.delete(key)
                    elif op < 0.4:
                        store.set_add(key, who)
                    elif op < 0.7:
                        store.set_discard(key, who)
                    elif op < 0.9:
                        store.set_replace(key, members)
                    else:
                        store.delete(key)
                assert _view(memory) == _view(disk), seed
            undo = rng.random() < 0.3
            for store in (memory, disk):
                store.rollback() if undo else store.release()
            assert _view(memory) == _view(disk), seed
            if rng.random() < 0.5:
                memory.commit()
                offset = _commit(disk, local, offset)
        # what a reopening sees: the committed state only
        committed = memory if not memory.changelog() else None
        local.close()
        again, reopened = _disk_store(tmp_path / f"{cache}-{seed}")
        if committed is not None:
            assert _view(committed) == _view(again), seed
            assert dict(again.items("c/")) == dict(committed.items("c/")), seed
        reopened.close()


def test_a_whole_list_on_disk_is_rewritten_by_element_at_its_first_change(tmp_path: Path) -> None:
    local = LocalState(tmp_path / "p0")
    local.open()
    local.save([(b"m/g", b'["a","b"]')], next_offset=1)  # as stages wrote sets before
    state = StateStore(("m/",), DiskValues(local, ("m/",)))
    assert state.get("m/g") == ["a", "b"]
    state.set_add("m/g", "c")
    changes = state.changelog()
    assert changes[0] == (b"m/g", None)
    local.save(changes, next_offset=5)
    state.commit()
    local.close()
    again, reopened = _disk_store(tmp_path / "p0")
    assert again.get("m/g") == ["a", "b", "c"]
    assert list(reopened.scan(b"m/g\x00")) == [
        (b"m/g\x00a", b"1"),
        (b"m/g\x00b", b"1"),
        (b"m/g\x00c", b"1"),
    ]
    reopened.close()
