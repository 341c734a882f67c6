"""The prompt cache's files: keys, LRU eviction within a size bound, and entries that cannot be trusted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tongyi_agent.llm.base import ModelError
from tongyi_agent.llm.prompt_cache import CachedPrefix, PromptCache, prefix_key
from tongyi_agent.llm.registry import prompt_cache_for

BASE = {"weights": "w" * 64, "adapter": "", "n_ctx": 4096, "runtime": "llama-cpp-python 0.3.36", "tokens": [1, 2, 3]}


def key(**changes: object) -> str:
    values = {**BASE, **changes}
    return prefix_key(weights_id=values["weights"], adapter_id=values["adapter"], n_ctx=values["n_ctx"],  # type: ignore[arg-type]
                      runtime=values["runtime"], tokens=values["tokens"])  # type: ignore[arg-type]


def entry(size: int = 1000, tokens: tuple[int, ...] = (1, 2, 3)) -> CachedPrefix:
    return CachedPrefix(tokens, bytes(range(256)) * (size // 256) + b"x" * (size % 256))


def test_key_changes_with_everything_the_state_depends_on() -> None:
    keys = {key(), key(weights="v" * 64), key(adapter="a" * 64), key(n_ctx=8192),
            key(runtime="llama-cpp-python 0.3.37"), key(tokens=[1, 2, 4]), key(tokens=[1, 2, 3, 4])}
    assert len(keys) == 7
    assert key() == key()  # and only with those


def test_round_trip(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path)
    stored = entry(5000)
    cache.put(key(), stored)
    assert cache.get(key()) == stored
    assert cache.get(key(tokens=[9])) is None


def test_least_recently_used_entries_go_first(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path)
    keys = [key(tokens=[i]) for i in range(3)]
    for age, k in enumerate(keys):
        cache.put(k, entry(1000, (age,)))
        cache.max_bytes = 3 * cache.path(k).stat().st_size  # room for exactly three entries
        os.utime(cache.path(k), ns=(age * 10**9, age * 10**9))  # distinct ages whatever the clock's tick
    assert cache.get(keys[0]) is not None  # a read makes the oldest the most recently used
    cache.put(key(tokens=[3]), entry(1000, (3,)))
    assert cache.total_bytes() <= cache.max_bytes
    assert cache.get(keys[1]) is None  # the least recently used one went
    assert cache.get(keys[0]) is not None and cache.get(keys[2]) is not None
    assert cache.get(key(tokens=[3])) is not None


def test_an_entry_larger_than_the_bound_is_not_stored(tmp_path: Path) -> None:
    notes: list[str] = []
    cache = PromptCache(tmp_path, max_bytes=500, on_note=notes.append)
    cache.put(key(), entry(1000))
    assert cache.get(key()) is None
    assert notes and "exceeds the cache size" in notes[0]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped", "other key", "empty"])
def test_a_damaged_entry_is_discarded_with_a_note(tmp_path: Path, damage: str) -> None:
    notes: list[str] = []
    cache = PromptCache(tmp_path, on_note=notes.append)
    cache.put(key(), entry(4000))
    file = cache.path(key())
    data = file.read_bytes()
    if damage == "garbage":
        file.write_bytes(b"not a cache file at all")
    elif damage == "truncated":
        file.write_bytes(data[:-100])
    elif damage == "flipped":
        file.write_bytes(data[:-50] + bytes([data[-50] ^ 0xFF]) + data[-49:])
    elif damage == "other key":  # a valid entry stored under the wrong name
        cache.put(key(tokens=[7]), entry(4000, (7,)))
        file.write_bytes(cache.path(key(tokens=[7])).read_bytes())
    else:
        file.write_bytes(b"")
    assert cache.get(key()) is None
    assert not file.exists()
    assert len(notes) == 1 and notes[0].startswith("prompt cache: discarded entry")


def test_an_unwritable_folder_is_a_note_not_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    notes: list[str] = []
    cache = PromptCache(blocker / "cache", on_note=notes.append)
    cache.put(key(), entry())
    assert cache.get(key()) is None
    assert notes and "cannot write" in notes[0]


def test_environment_turns_it_off_moves_and_bounds_it(tmp_path: Path) -> None:
    assert prompt_cache_for({"TONGYI_PROMPT_CACHE": "0"}, tmp_path) is None
    default = prompt_cache_for({}, tmp_path)
    assert default is not None and default.directory == tmp_path / "prompt-cache"
    moved = prompt_cache_for({"TONGYI_PROMPT_CACHE_DIR": str(tmp_path / "kv"), "TONGYI_PROMPT_CACHE_MB": "64"},
                             tmp_path)
    assert moved is not None and moved.directory == tmp_path / "kv" and moved.max_bytes == 64 * 1024 * 1024
    with pytest.raises(ModelError, match="TONGYI_PROMPT_CACHE_MB"):
        prompt_cache_for({"TONGYI_PROMPT_CACHE_MB": "lots"}, tmp_path)
