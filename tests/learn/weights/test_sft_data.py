"""SFT examples from a real SQLite store: which runs are imitated, and the rows TRL reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tongyi_agent.learn.weights.sft_data import build_sft_dataset, write_jsonl
from tongyi_agent.store import RewardRecord, RunRecord, SpanRecord, TrajectoryStore

SYSTEM = {"role": "system", "content": "You are a careful research assistant.\nUse exactly this format: ..."}
QUESTION = {"role": "user", "content": "Which port does billing use?"}
CALL = "Thought: search\nAction: search_files\nAction Input: {\"query\": \"billing port\"}"
OBSERVATION = {"role": "user", "content": "Observation: conf/billing.ini:3: port = 9090"}
ANSWER = "Thought: I know the answer\nFinal Answer: 9090 (conf/billing.ini:3)"
VERIFIED = {"verification_rate": 1.0, "evidence": [{"claim": "9090", "source": "conf/billing.ini:3",
                                                   "snippet": "port = 9090", "verified": True}]}


def _record(store: TrajectoryStore, *, question: str = QUESTION["content"], reward: float = 1.0,
            status: str = "success", tool_calls: int = 1, metadata: dict | None = None,
            task: float | None = None, native: bool = False) -> str:
    asked = {**QUESTION, "content": question}
    first_out = ({"content": "", "tool_calls": [{"id": "c1", "name": "search_files", "arguments": {}}]}
                 if native else {"content": CALL, "tool_calls": []})
    spans = [
        SpanRecord(0, "llm", "m", input=[SYSTEM, asked], output=first_out),
        SpanRecord(1, "tool", "search_files", input={"query": "billing port"}, output="port = 9090"),
        SpanRecord(2, "llm", "m", input=[SYSTEM, asked, {"role": "assistant", "content": CALL}, OBSERVATION],
                   output={"content": ANSWER, "tool_calls": []}),
    ]
    rewards = [RewardRecord("response_quality", reward)]
    if task is not None:
        rewards.append(RewardRecord("task", task, "task"))
    run = RunRecord(question=question, answer="9090", status=status, tool_calls=tool_calls,  # type: ignore[arg-type]
                    metadata=VERIFIED if metadata is None else metadata)
    return store.record_run(run, spans, rewards)


@pytest.fixture
def store(tmp_path: Path) -> TrajectoryStore:
    with TrajectoryStore(tmp_path / "t.sqlite", secrets=["sk-secret-123456"]) as s:
        yield s


def test_one_example_per_model_call_of_a_good_run(store: TrajectoryStore, tmp_path: Path) -> None:
    run_id = _record(store)
    dataset = build_sft_dataset(store, min_reward=0.8, reward_name="response_quality")
    assert dataset.runs_used == 1 and len(dataset.examples) == 2
    first, second = dataset.examples
    assert first.prompt == [SYSTEM, QUESTION] and first.completion == CALL
    assert second.prompt[-1] == OBSERVATION and second.completion == ANSWER
    assert write_jsonl(dataset.examples, tmp_path / "out" / "train.jsonl") == 2
    rows = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert rows[1] == {"prompt": second.prompt, "completion": [{"role": "assistant", "content": ANSWER}],
                       "run_id": run_id}


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"reward": 0.5}, "reward below 0.8"),
    ({"status": "forced"}, "not successful"),
    ({"tool_calls": 0}, "answered without looking anything up"),
    ({"metadata": {"verification_rate": 0.5, "evidence": VERIFIED["evidence"]}}, "citations not all verified"),
    ({"metadata": {"verification_rate": 1.0, "evidence": []}}, "citations not all verified"),
    ({"task": 0.0}, "wrong answer to its task"),
])
def test_runs_not_worth_imitating_are_skipped_with_a_reason(store: TrajectoryStore, kwargs: dict,
                                                            reason: str) -> None:
    _record(store, **kwargs)
    dataset = build_sft_dataset(store, min_reward=0.8, reward_name="response_quality")
    assert dataset.examples == [] and dataset.skipped == {reason: 1}


def test_held_out_questions_never_become_training_data(store: TrajectoryStore) -> None:
    _record(store, question="Held-out question?")
    _record(store)
    dataset = build_sft_dataset(store, min_reward=0.8, exclude_questions=["Held-out question?"])
    assert dataset.runs_used == 1 and dataset.skipped == {"held-out question": 1}
    assert all(ex.prompt[1]["content"] != "Held-out question?" for ex in dataset.examples)


def test_native_tool_call_turns_are_left_out(store: TrajectoryStore) -> None:
    _record(store, native=True)
    dataset = build_sft_dataset(store, min_reward=0.8)
    # The first call answered with a native tool call; the second call's history holds text turns only.
    assert [ex.completion for ex in dataset.examples] == [ANSWER]


def test_secrets_are_redacted_from_examples(store: TrajectoryStore) -> None:
    _record(store, question="Is sk-secret-123456 valid?")
    dataset = build_sft_dataset(store, min_reward=0.8)
    assert dataset.examples and "sk-secret-123456" not in json.dumps([ex.to_trl() for ex in dataset.examples])
