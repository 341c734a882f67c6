from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.store.factories import DAY0, make_rewards, make_run, make_spans
from tongyi_agent.store import RunRecord, TrajectoryStore, export_dpo, export_json, export_jsonl, export_sft

TOOLS = [{"name": "read_file", "description": "Read a file", "parameters": {"type": "object", "properties": {}}}]
INTERACTION_KEYS = {
    "timestamp", "query", "response", "response_time", "success", "tools_used", "query_length", "response_length",
    "reward", "rewards", "model", "run_id", "status", "prompt_version", "training_mode", "sources", "input_tokens",
    "output_tokens", "cost", "grounded",
}  # fmt: skip


def _fill(store: TrajectoryStore, n: int) -> None:
    for i in range(n):
        status = "failed" if i % 5 == 4 else "success"
        run = make_run(f"question {i}", answer=f"answer {i}", status=status, started_at=DAY0 + i,
                       tools_used=["read_file"])  # fmt: skip
        store.record_run(run, make_spans(f"question {i}", f"answer {i}"), make_rewards(i / (n - 1)))


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_export_json_guide_format(store: TrajectoryStore, tmp_path: Path) -> None:
    _fill(store, 25)
    path = tmp_path / "new" / "dir" / "export.json"
    assert export_json(store, path, {"training": {"mode": "sft"}}, {"average_response_time": 1.0}) == 25
    doc = json.loads(path.read_text())
    assert doc["version"] == "1.0" and doc["config"] == {"training": {"mode": "sft"}}
    assert doc["metrics"] == {"average_response_time": 1.0}
    assert doc["export_timestamp"].endswith("+00:00")
    items = doc["interactions"]
    assert len(items) == 25 and set(items[0]) == INTERACTION_KEYS
    assert items[3]["query"] == "question 3" and items[3]["response_length"] == len("answer 3")
    assert items[3]["reward"] == pytest.approx(3 / 24) and items[3]["rewards"] == {"task_success": items[3]["reward"]}
    assert items[4]["success"] is False and items[4]["status"] == "failed"
    assert items[0]["timestamp"] == "2023-11-14T22:13:20+00:00"
    assert list(tmp_path.glob("new/dir/.*")) == []  # no temporary files left behind


def test_export_json_empty_store_is_valid(store: TrajectoryStore, tmp_path: Path) -> None:
    assert export_json(store, tmp_path / "e.json", {}, {}) == 0
    assert json.loads((tmp_path / "e.json").read_text())["interactions"] == []


def test_min_reward_filter(store: TrajectoryStore, tmp_path: Path) -> None:
    _fill(store, 25)
    assert export_jsonl(store, tmp_path / "good.jsonl", min_reward=0.5) == 13
    assert all(item["reward"] >= 0.5 for item in _lines(tmp_path / "good.jsonl"))
    assert export_json(store, tmp_path / "none.json", {}, {}, min_reward=0.5, reward_name="missing") == 0


def test_jsonl(store: TrajectoryStore, tmp_path: Path) -> None:
    _fill(store, 7)
    assert export_jsonl(store, tmp_path / "i.jsonl") == 7
    lines = _lines(tmp_path / "i.jsonl")
    assert [line["query"] for line in lines] == [f"question {i}" for i in range(7)]
    assert set(lines[0]) == INTERACTION_KEYS


def test_chunking(store: TrajectoryStore, tmp_path: Path) -> None:
    _fill(store, 25)
    assert export_json(store, tmp_path / "out.json", {}, {}, chunk_size=10) == 25
    assert not (tmp_path / "out.json").exists()
    sizes = [len(json.loads((tmp_path / f"out-0000{i}.json").read_text())["interactions"]) for i in (1, 2, 3)]
    assert sizes == [10, 10, 5] and not (tmp_path / "out-00004.json").exists()
    assert export_jsonl(store, tmp_path / "out.jsonl", chunk_size=25) == 25
    assert len(_lines(tmp_path / "out-00001.jsonl")) == 25 and not (tmp_path / "out-00002.jsonl").exists()


def test_failed_export_leaves_no_file(store: TrajectoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(store, 5)
    original = store.iter_runs

    def broken(*args: Any, **kwargs: Any) -> Iterator[RunRecord]:
        yield from list(original(*args, **kwargs))[:3]
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store, "iter_runs", broken)
    for target, kwargs in ((tmp_path / "x.json", {}), (tmp_path / "c.json", {"chunk_size": 2})):
        with pytest.raises(RuntimeError, match="disk on fire"):
            export_json(store, target, {}, {}, **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["training"]  # only the store's own directory


def test_sft_messages_with_tool_calls(store: TrajectoryStore, tmp_path: Path) -> None:
    _fill(store, 10)  # runs 4 and 9 failed: left out by default
    store.record_run(make_run("no spans"))  # nothing to train on: left out
    assert export_sft(store, tmp_path / "sft.jsonl", TOOLS) == 8
    first = _lines(tmp_path / "sft.jsonl")[0]
    assert first["tools"] == [{"type": "function", "function": TOOLS[0]}]
    roles = [m["role"] for m in first["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    call = first["messages"][2]["tool_calls"][0]
    assert call == {"id": "call_1", "type": "function",
                    "function": {"name": "read_file", "arguments": json.dumps({"path": "src/core.py"})}}  # fmt: skip
    assert first["messages"][3]["tool_call_id"] == "call_1"
    assert first["messages"][-1] == {"role": "assistant", "content": "answer 0"}
    assert export_sft(store, tmp_path / "all.jsonl", TOOLS, statuses=("success", "failed")) == 10
    assert export_sft(store, tmp_path / "best.jsonl", TOOLS, min_reward=0.5) == 4  # runs 5..8 (9 failed)


def test_dpo_pairs_same_question_different_rewards(store: TrajectoryStore, tmp_path: Path) -> None:
    def add(question: str, answer: str, reward: float | None, t: float) -> None:
        rewards = [] if reward is None else make_rewards(reward)
        store.record_run(make_run(question, answer=answer, started_at=DAY0 + t), make_spans(question, answer), rewards)

    add("A", "best A", 1.0, 0)
    add("A", "bad A1", 0.2, 1)
    add("A", "bad A2", 0.1, 2)
    add("A", "unrated A", None, 3)
    add("B", "tie 1", 0.5, 4)
    add("B", "tie 2", 0.5, 5)
    add("C", "alone", 0.9, 6)
    add("D", "good D", 0.9, 7)
    add("D", "close D", 0.85, 8)

    assert export_dpo(store, tmp_path / "dpo.jsonl") == 3
    pairs = _lines(tmp_path / "dpo.jsonl")
    assert [(p["preferred_output"][0]["content"], p["non_preferred_output"][0]["content"]) for p in pairs] == [
        ("best A", "bad A2"), ("best A", "bad A1"), ("good D", "close D"),
    ]  # fmt: skip
    assert pairs[0]["input"]["messages"] == [
        {"role": "system", "content": "You are a research assistant."}, {"role": "user", "content": "A"},
    ]  # fmt: skip
    assert export_dpo(store, tmp_path / "gap.jsonl", min_gap=0.1) == 2
    assert export_dpo(store, tmp_path / "one.jsonl", max_pairs_per_question=1) == 2
