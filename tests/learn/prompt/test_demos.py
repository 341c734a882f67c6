"""Demonstration search in prompt mode: bootstrapped and pooled demos, random + greedy search, the gate."""

from __future__ import annotations

import random
import re
from pathlib import Path

from tongyi_agent.agent.dialects import NativeDialect
from tongyi_agent.agent.examples import INTRO
from tongyi_agent.agent.loop import Agent
from tongyi_agent.learn.evaluation.tasks import Task, split_tasks
from tongyi_agent.learn.prompt.demos import DEMOS_COMPONENT, apply_prompt, demos_from_text, demos_to_text, search_demos
from tongyi_agent.learn.prompt.optimizer import AgentRunner, Budget, Scorer, optimize_prompt
from tongyi_agent.llm.base import ChatMessage, ChatRequest, ChatResponse, ToolCall, Usage
from tongyi_agent.llm.scripted import ScriptedModel
from tongyi_agent.tools import default_registry

SEED_PROMPT = "You are a research assistant."


class ImitatingModel:
    """Looks the item up, then answers in the CODE-n form only when a worked example shows it (or,
    with ``knows_even``, for even items without help: those rollouts bootstrap the demos)."""

    supports_grammar = False
    name = "imitator"

    def __init__(self, knows_even: bool = False) -> None:
        self.knows_even = knows_even

    async def chat(self, messages: list[ChatMessage], request: ChatRequest | None = None) -> ChatResponse:
        number = int(re.search(r"item (\d+)", messages[-1].content if messages[-1].role == "user"
                               else next(m.content for m in reversed(messages) if m.role == "user"
                                         and "item" in m.content)).group(1))  # type: ignore[union-attr]
        if messages[-1].role == "user":
            return ChatResponse("", tool_calls=[ToolCall("c1", "list_files", {})], usage=Usage(100, 5))
        shown = any(m.role == "user" and m.content.startswith(INTRO) for m in messages)
        knows = shown or (self.knows_even and number % 2 == 0)
        return ChatResponse(f"CODE-{number}" if knows else "I am not sure.", usage=Usage(100, 5))


def _tasks(root: Path, n: int = 72) -> list[Task]:
    return [Task(question=f"What is the code of item {i}?", root=root, answer=f"CODE-{i}", id=f"t{i}")
            for i in range(n)]


def _runner(root: Path, model: object, rollouts: int = 400) -> AgentRunner:
    agent = Agent(model, default_registry(["list_files"]), NativeDialect(), root)  # type: ignore[arg-type]
    return AgentRunner(agent, Scorer("response_quality", 60.0), Budget(rollouts))


def _pool_demo(n: int) -> dict:
    return {"question": f"What is the code of item {1000 + n}?", "answer": f"CODE-{1000 + n}",
            "steps": [{"thought": "", "tool": "list_files", "arguments": {}, "observation": "a.md"}], "cited": [],
            "source": f"experience {n}"}


def test_bootstrapped_demonstrations_are_found_and_promoted_without_reflection(tmp_path: Path) -> None:
    runner = _runner(tmp_path, ImitatingModel(knows_even=True))
    splits = split_tasks(_tasks(tmp_path), seed=1)
    report = optimize_prompt(runner, SEED_PROMPT, splits, reflection=None, iterations=1, run_dir=tmp_path / "run",
                             seed=1, proposer="none")
    assert report.best_prompt == SEED_PROMPT  # no instruction proposals without a reflection model
    search = report.demo_search
    assert search is not None and search["bootstrapped"] > 0 and search["sets_tried"] >= 2
    assert len(report.best_demos) == 2
    assert all(d["source"].startswith("bootstrapped from training task") for d in report.best_demos)
    train_questions = {t.question for t in splits.train}
    assert all(d["question"] in train_questions for d in report.best_demos)
    assert report.best_validation == 1.0 and report.seed_validation < 1.0
    assert report.promoted, report.decision
    assert report.gate is not None and report.gate["n"] == len(splits.test) >= 12


def test_pool_demonstrations_never_include_held_out_questions(tmp_path: Path) -> None:
    runner = _runner(tmp_path, ImitatingModel())
    splits = split_tasks(_tasks(tmp_path), seed=1)
    leaked = {**_pool_demo(0), "question": splits.test[0].question}
    report = optimize_prompt(runner, SEED_PROMPT, splits, reflection=None, iterations=1, run_dir=tmp_path / "run",
                             seed=1, proposer="none", demo_pool=[leaked, _pool_demo(1), _pool_demo(2)])
    assert report.demo_search is not None and report.demo_search["pool"] == 2
    assert {d["question"] for d in report.best_demos} == {_pool_demo(1)["question"], _pool_demo(2)["question"]}
    assert report.promoted and report.best_test == 1.0 and report.seed_test == 0.0


def test_nothing_to_demonstrate_promotes_nothing(tmp_path: Path) -> None:
    runner = _runner(tmp_path, ImitatingModel())
    report = optimize_prompt(runner, SEED_PROMPT, split_tasks(_tasks(tmp_path), seed=1), reflection=None,
                             iterations=1, run_dir=tmp_path / "run", seed=1, proposer="none")
    assert report.best_demos == [] and not report.promoted
    assert report.decision == "no candidate beat the seed prompt on validation"


def test_search_is_random_then_greedy_and_stops_when_the_budget_ends() -> None:
    pool = [_pool_demo(n) for n in range(6)]
    good = {pool[4]["question"], pool[5]["question"]}
    calls: list[list[str]] = []

    def evaluate(demos: list[dict]) -> float | None:
        calls.append([d["question"] for d in demos])
        return len(good & {d["question"] for d in demos}) / 2

    result = search_demos(pool, evaluate, size=2, rng=random.Random(0), random_sets=2, greedy_tries=8)
    assert calls[0] == [] and result.sets_tried == len(calls)
    assert {d["question"] for d in result.demos} == good and result.validation == 1.0

    budget = iter([0.0, 0.5, None])
    stopped = search_demos(pool, lambda demos: next(budget), size=2, rng=random.Random(0))
    assert stopped.sets_tried == 2 and stopped.validation == 0.5 and len(stopped.demos) == 2


def test_a_version_with_demos_shows_them_before_every_question(tmp_path: Path) -> None:
    model = ScriptedModel(["done"])
    agent = Agent(model, default_registry(["list_files"]), NativeDialect(), tmp_path)
    components = {"system": "Be brief.", DEMOS_COMPONENT: demos_to_text([_pool_demo(1)])}
    assert demos_from_text(components[DEMOS_COMPONENT]) == [_pool_demo(1)]
    apply_prompt(agent, components, budget_share=0.15).run_sync("What is the code of item 5?")
    sent = model.calls[0].messages
    assert sent[0].content == "Be brief."
    assert sent[1].content == INTRO + "What is the code of item 1001?"
    assert sent[2].tool_calls[0].name == "list_files" and sent[3].role == "tool"
    assert sent[4].content == "CODE-1001" and sent[-1].content == "What is the code of item 5?"
    # Switching to a version without demos drops them.
    bare = apply_prompt(apply_prompt(agent, components, budget_share=0.15), {"system": "x"}, budget_share=0.15)
    assert bare.spec.examples == []
