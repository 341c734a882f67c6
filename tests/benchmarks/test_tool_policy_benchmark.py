"""The tool-policy benchmark, driven by a scripted model: tasks, splits, training through the product's
rl-mode path, the side-by-side evaluation and the report. The real embedded-model run is the benchmark
itself (benchmarks/tool_policy.py); these tests only need to be fast and exact."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from tongyi_agent.agent.dialects import NativeDialect
from tongyi_agent.agent.loop import Agent, AgentSpec
from tongyi_agent.learn.policy.tool_policy import ARM_KEY, FEATURES_KEY, default_arms
from tongyi_agent.llm.base import ChatMessage, ChatRequest, ChatResponse, ToolCall
from tongyi_agent.llm.scripted import ScriptedModel
from tongyi_agent.store import TrajectoryStore
from tongyi_agent.tools import default_registry

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
HIT = re.compile(r"^\S+:\d+: .*$", re.MULTILINE)  # a search_files hit line (context lines use "-")
TOOLS = ["list_files", "read_file", "search_files", "run_python"]  # the `local` profile's tools


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tool_policy_benchmark", BENCHMARKS / "tool_policy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tool_policy_benchmark"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


tp = _load()


def researcher(answers: dict[str, str]):
    """A scripted model that searches for the reference answer and answers with the first hit.

    Offered run_python, it first lists the files (a model distracted by more tools), so arms differ in
    cost; aggregation answers are not in any file, so some questions are answered wrongly."""

    def reply(messages: list[ChatMessage], request: ChatRequest) -> ChatResponse | str:
        question = next(m.content for m in messages if m.role == "user")
        observations = [m for m in messages if m.role == "tool"]
        offered = {t["function"]["name"] for t in request.tools or []}
        if request.tools is None or len(observations) >= 2 or (observations and "run_python" not in offered):
            hits = HIT.findall(observations[-1].content) if observations else []
            return f"The answer is in this line: {hits[0] if hits else 'nothing found'}"
        if not observations and "run_python" in offered:
            return ChatResponse(content="", tool_calls=[ToolCall("c0", "list_files", {})])
        return ChatResponse(content="", tool_calls=[ToolCall("c1", "search_files", {"query": answers[question]})])

    return reply


@pytest.fixture(scope="module")
def tasks(tmp_path_factory: pytest.TempPathFactory) -> list:
    return tp.make_tasks(tmp_path_factory.mktemp("bench"), seed=3, per_kind=3)


def test_tasks_mix_every_kind_and_split_by_kind(tasks: list) -> None:
    assert Counter(t.kind for t in tasks) == dict.fromkeys(tp.KINDS, 3)
    assert len({t.root for t in tasks}) == 2  # the file-lookup corpus and the research world
    for task in tasks:
        assert task.files and all((task.root / f).is_file() for f in task.files)
    train, test = tp.split_tasks(tasks, seed=3, test_share=1 / 3)
    assert Counter(t.kind for t in test) == dict.fromkeys(tp.KINDS, 1)
    assert Counter(t.kind for t in train) == dict.fromkeys(tp.KINDS, 2)
    assert not set(map(id, train)) & set(map(id, test))
    assert tp.split_tasks(tasks, seed=3, test_share=1 / 3) == (train, test)  # seeded


def test_verdict_names_a_win_only_when_accuracy_holds_and_every_cost_falls() -> None:
    fixed = tp.Summary(0.6, 0.7, 3.0, 4000.0, 20.0, 0)
    assert tp.verdict(fixed, tp.Summary(0.6, 0.7, 2.5, 3000.0, 15.0, 0)).startswith("lower cost at equal or better")
    worse = tp.verdict(fixed, tp.Summary(0.5, 0.7, 2.5, 3000.0, 25.0, 0))
    assert worse.startswith("did not lower cost") and "accuracy fell" in worse and "seconds did not fall" in worse


def test_benchmark_trains_from_real_runs_and_reports_side_by_side(tasks: list, tmp_path: Path) -> None:
    train, test = tp.split_tasks(tasks, seed=3, test_share=1 / 3)
    answers = {t.question: t.answer for t in tasks}
    model = ScriptedModel([researcher(answers)] * 1000)
    agent = Agent(model, default_registry(TOOLS), NativeDialect(), tmp_path, AgentSpec(max_steps=8))
    options = tp.Options(train_runs=24, seed=5)
    data_dir = tmp_path / "data"

    report = tp.run_benchmark(agent, train, test, options, data_dir, model="scripted", backend="scripted",
                              dialect="native")

    arms = {a.name for a in default_arms(TOOLS, profile_tools=TOOLS, max_steps=8)}
    # Training: every run chose an arm, ran it and fed its reward back into the stored policy.
    assert len(report.training) == 24 and {o.arm for o in report.training} <= arms
    assert all(o.error is None and o.reward is not None for o in report.training)
    assert {o.arm for o in report.training} == arms  # every arm was tried (warm-up before trusting rewards)
    assert sum(a["pulls"] for a in report.arms) == 24
    with TrajectoryStore(data_dir / "trajectories.sqlite") as store:
        runs = list(store.iter_runs())
    learned = [r for r in runs if r.metadata.get(ARM_KEY) and r.training_mode == "rl"]
    assert len(learned) == 24 + len(test)  # the training runs, then the greedy evaluation runs
    assert all(len(r.metadata[FEATURES_KEY]) == 11 and r.reward("task") is not None for r in learned)
    # Evaluation: both set-ups on every held-out question, the default without any policy choice.
    assert {label: len(runs) for label, runs in report.evaluation.items()} == {tp.FIXED: len(test),
                                                                               tp.LEARNED: len(test)}
    assert {o.arm for o in report.evaluation[tp.FIXED]} == {tp.FIXED}
    assert {o.arm for o in report.evaluation[tp.LEARNED]} <= arms
    fixed = report.summaries[tp.FIXED]
    assert fixed.model_calls == 3 and fixed.tokens > 0 and 0 < fixed.accuracy < 1  # lists, searches, answers

    text = "\n".join(tp.format_report(report))
    for expected in ("24 training runs", f"{len(test)} held-out questions", "accuracy", "cited", "calls/q",
                     "tokens/q", "s/q", "ratio policy/default", "verdict: ", "arms chosen on held-out questions",
                     "arms chosen in training", "arm pulls after training",
                     "reward = task correctness (known answers; else response_quality) − 0.2"):
        assert expected in text
    assert ("verdict: lower cost" in text) != ("verdict: did not" in text)
