"""The persisted prompt cache on the real embedded model: a second process loads the system prompt's
KV state instead of prefilling it, and answers exactly as the first did."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.embedded

REPO = Path(__file__).resolve().parents[2]
QUESTION = "Which port does the billing service listen on?"


def _ask(cache: Path, cwd: Path, enabled: str = "1") -> tuple[dict, str]:
    env = {**os.environ, "TONGYI_PROMPT_CACHE_DIR": str(cache), "TONGYI_PROMPT_CACHE": enabled}
    done = subprocess.run([sys.executable, "-m", "tongyi_agent", "--root", str(REPO / "examples" / "demo"),
                           "--json", "--verbose", QUESTION], capture_output=True, text=True, timeout=600,
                          cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def test_second_process_loads_the_prefix_and_answers_the_same(tmp_path: Path) -> None:
    cache = tmp_path / "prompt-cache"
    first, first_log = _ask(cache, tmp_path)
    assert "prompt cache: saved the KV state" in first_log
    assert len(list(cache.glob("*.kv"))) == 1

    second, second_log = _ask(cache, tmp_path)
    assert "prompt cache: loaded the KV state" in second_log
    assert "prompt cache: saved" not in second_log
    assert second["answer"] == first["answer"] and "8443" in second["answer"]
    assert [s["type"] for s in second["steps"]] == [s["type"] for s in first["steps"]]
    assert second["usage"] == first["usage"]  # the same prompts, token for token


def test_a_damaged_entry_is_noted_and_replaced_and_off_means_off(tmp_path: Path) -> None:
    cache = tmp_path / "prompt-cache"
    _ask(cache, tmp_path)
    (entry,) = cache.glob("*.kv")
    entry.write_bytes(entry.read_bytes()[:-4096])  # cut short, as by a full disk

    answer, log = _ask(cache, tmp_path)
    assert "prompt cache: discarded entry" in log and "truncated" in log
    assert "prompt cache: saved the KV state" in log
    assert "8443" in answer["answer"]

    off, off_log = _ask(tmp_path / "unused", tmp_path, enabled="0")
    assert "prompt cache" not in off_log and not (tmp_path / "unused").exists()
    assert "8443" in off["answer"]
