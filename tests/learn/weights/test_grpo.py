"""GRPO: prompts from a real SQLite store, the reward functions, and a real TRL GRPOTrainer toy run.

The toy run trains LoRA on the tiny random Qwen2 of tests/learn/weights/tiny_lm.py (a vocabulary that
includes the ReAct answer words, so some sampled completions do answer) and converts the adapter
to GGUF, as `--optimize --training-mode rl --grpo` does with the embedded model.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from tongyi_agent.learn.evaluation.tasks import Task
from tongyi_agent.learn.weights.grpo_data import build_grpo_dataset
from tongyi_agent.learn.weights.grpo_train import answer_format, reward_functions, task
from tongyi_agent.store import RewardRecord, RunRecord, SpanRecord, TrajectoryStore

SYSTEM = {"role": "system", "content": "You are a careful research assistant.\nUse exactly this format: ..."}
QUESTION = "Which port does billing use?"
CALL = "Thought: search\nAction: search_files\nAction Input: {\"query\": \"billing port\"}"
OBSERVATION = {"role": "user", "content": "Observation: conf/billing.ini:3: port = 9090"}


def _record(store: TrajectoryStore, *, question: str = QUESTION, observation: dict = OBSERVATION,
            tool_calls: int = 1, dialect: str = "react", root: str = "", status: str = "success",
            native: bool = False) -> str:
    asked = {"role": "user", "content": question}
    call = ({"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "name": "search_files",
                                                                  "arguments": {}}]}
            if native else {"role": "assistant", "content": CALL})
    spans = [
        SpanRecord(0, "llm", "m", input=[SYSTEM, asked], output={"content": CALL, "tool_calls": []}),
        SpanRecord(1, "tool", "search_files", input={"query": "billing port"}, output="port = 9090"),
        SpanRecord(2, "llm", "m", input=[SYSTEM, asked, call, observation],
                   output={"content": "Final Answer: 9090", "tool_calls": []}),
    ]
    run = RunRecord(question=question, answer="9090", status=status, tool_calls=tool_calls,  # type: ignore[arg-type]
                    dialect=dialect, root=root)
    return store.record_run(run, spans, [RewardRecord("response_quality", 1.0)])


@pytest.fixture
def store(tmp_path: Path) -> TrajectoryStore:
    with TrajectoryStore(tmp_path / "t.sqlite", secrets=["sk-secret-123456"]) as s:
        yield s


def _task(question: str = QUESTION, root: Path = Path("."), **kwargs: Any) -> Task:
    return Task(question=question, root=root, **{"answer": "9090", **kwargs})


# ----------------------------------------------------------------------------------------------------
# Data


def test_the_last_model_call_of_a_recorded_run_becomes_the_prompt(store: TrajectoryStore) -> None:
    run_id = _record(store)
    dataset = build_grpo_dataset(store, [_task(answer_regex=r"\b9090\b")], dialect="react")
    assert (dataset.tasks_with_reference, dataset.tasks_used, len(dataset.rows)) == (1, 1, 1)
    row = dataset.rows[0].to_trl()
    assert row == {"prompt": [SYSTEM, {"role": "user", "content": QUESTION}, {"role": "assistant", "content": CALL},
                              OBSERVATION],
                   "question": QUESTION, "answer": "9090", "answer_regex": r"\b9090\b", "run_id": run_id}


def test_held_out_and_unusable_runs_are_left_out_with_a_reason(store: TrajectoryStore, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _record(store, question="Held out?")
    _record(store, tool_calls=0)
    _record(store, dialect="tongyi")
    _record(store, status="failed")
    _record(store, native=True)
    _record(store, root=str(elsewhere))
    _record(store, question="No reference?")
    tasks = [_task(), _task("Held out?"), Task(question="No reference?", root=Path("."))]
    dataset = build_grpo_dataset(store, tasks, dialect="react", exclude_questions=["Held out?"])
    assert dataset.rows == [] and dataset.tasks_with_reference == 1
    assert dataset.skipped == {"held-out question": 1, "answered without looking anything up": 1,
                               "recorded in the tongyi dialect": 1, "failed run": 1,
                               "no text-protocol model call": 1, "recorded in another folder than its task": 1}


def test_runs_with_the_same_evidence_give_one_prompt_and_secrets_are_redacted(store: TrajectoryStore) -> None:
    secret = {"role": "user", "content": "Observation: token sk-secret-123456, port = 9090"}
    _record(store, observation=secret)
    _record(store, observation=secret)
    _record(store)
    dataset = build_grpo_dataset(store, [_task()])
    assert len(dataset.rows) == 2 and dataset.skipped == {"same evidence as another run": 1}
    assert "sk-secret-123456" not in json.dumps([r.to_trl() for r in dataset.rows])


# ----------------------------------------------------------------------------------------------------
# Rewards


def _score(dialect: str, texts: list[str], answer: str | None = "9090",
           regex: str | None = None) -> tuple[list[float], list[float]]:
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    columns = {"answer": [answer] * len(texts), "answer_regex": [regex] * len(texts)}
    return (task([None] * len(texts), completions, dialect=dialect, **columns),
            answer_format([None] * len(texts), completions, dialect=dialect, **columns))


def test_react_completions_are_scored_as_the_agent_loop_reads_them() -> None:
    task_scores, format_scores = _score("react", [
        "Thought: I know the answer\nFinal Answer: 9090 (conf/billing.ini:3)",  # right, in form
        "The billing service uses port 9090.",                                  # right, in prose
        "Thought: I know the answer\nFinal Answer: 8080",                       # wrong, in form
        CALL,                                                                   # no answer: a tool call
        "Thought: hmm",                                                         # unparsable
        "Final Answer:",                                                        # an empty answer
    ])
    assert task_scores == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert format_scores == [1.0, 0.0, 1.0, 0.0, 0.0, 0.0]


def test_tongyi_completions_and_answer_regex() -> None:
    task_scores, format_scores = _score("tongyi", [
        "<think>the file says so</think><answer>Port 9090.</answer>",
        "<tool_call>{\"name\": \"search_files\", \"arguments\": {}}</tool_call>",
        "<answer>9091</answer>",
    ], answer=None, regex=r"\b9090\b")
    assert task_scores == [1.0, 0.0, 0.0] and format_scores == [1.0, 0.0, 1.0]


def test_partial_answers_get_token_f1_and_trl_sees_our_names() -> None:
    task_scores, _ = _score("react", ["Final Answer: Maria Smith"], answer="Maria Okafor")
    assert task_scores == [pytest.approx(0.5)]
    assert [f.func.__name__ for f in reward_functions("react")] == ["task", "answer_format"]  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="unknown dialect"):
        reward_functions("klingon")


# ----------------------------------------------------------------------------------------------------
# Training


def test_grpo_toy_run_rewards_with_our_functions_and_converts_to_gguf(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("trl")
    np = pytest.importorskip("numpy")
    from tests.learn.weights.tiny_lm import WORDS, base_info, tiny_model, tiny_tokenizer
    from tongyi_agent.learn.weights import grpo_train
    from tongyi_agent.learn.weights.gguf_lora import convert_peft_adapter, read_gguf_lora
    from tongyi_agent.learn.weights.sft_train import with_lora

    calls: list[dict[str, Any]] = []

    @functools.wraps(task)  # keeps the name TRL logs the reward under
    def spy(prompts: Any, completions: Any, **kwargs: Any) -> list[float]:
        scores = task(prompts, completions, **kwargs)
        calls.append({"completions": completions, "answer": kwargs["answer"], "scores": scores})
        return scores

    monkeypatch.setattr(grpo_train, "task", spy)
    tokenizer = tiny_tokenizer((*WORDS, "Thought:", "Final", "Answer:", "8080"))
    model = tiny_model(len(tokenizer))
    info = base_info(model)
    settings = grpo_train.GrpoTrainSettings(steps=3, num_generations=4, max_completion_length=8,
                                            learning_rate=5e-2, rank=4, alpha=8)
    prompt = [{"role": "system", "content": "you are careful"},
              {"role": "user", "content": "which port does billing use ?"}]
    # A random model rarely writes 9090; a regex that about half its samples match makes groups mix right
    # and wrong answers, so advantages are non-zero and the adapter has something to learn.
    rows = [{"prompt": prompt, "question": "q", "answer": "9090", "answer_regex": r"\bfirst\b", "run_id": "r"}] * 2
    progress: list[tuple[int, int, float | None]] = []

    outcome = grpo_train.train_grpo(with_lora(model, settings.lora()), tokenizer, rows, tmp_path / "work", settings,
                                    dialect="react", on_progress=lambda *p: progress.append(p))

    assert outcome.steps == 3 and [p[:2] for p in progress] == [(1, 3), (2, 3), (3, 3)]
    assert outcome.device == "cpu" and outcome.peak_memory_bytes > 0
    # Every step scored its 4 sampled completions with our task reward, against the row's answer.
    assert len(calls) == 3 and all(len(c["completions"]) == 4 and c["answer"] == ["9090"] * 4 for c in calls)
    assert [h["task"] for h in outcome.history] == [sum(c["scores"]) / 4 for c in calls]
    assert all("answer_format" in h for h in outcome.history)
    assert any(0 < sum(c["scores"]) < 4 for c in calls)  # some group mixed right and wrong answers
    lora = convert_peft_adapter(outcome.adapter_dir, tmp_path / "adapter.gguf", info)
    back = read_gguf_lora(tmp_path / "adapter.gguf")
    assert set(back.tensors) == set(lora.tensors) and len(back.tensors) == 2 * 4 * 2  # 2 blocks, q/k/v/o, A+B
    assert np.abs(back.tensors["blk.1.attn_v.weight.lora_b"]).sum() > 0  # B starts at zero: it was trained
