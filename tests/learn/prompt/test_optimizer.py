"""Prompt optimization with fake models: it must find and promote a prompt that helps, and promote
nothing when no prompt helps."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tongyi_agent.agent.dialects import NativeDialect
from tongyi_agent.agent.loop import Agent
from tongyi_agent.learn.evaluation.tasks import Task, split_tasks
from tongyi_agent.learn.prompt.optimizer import (
    AgentRunner,
    Budget,
    NotEnoughTasksError,
    Scorer,
    optimize_prompt,
)
from tongyi_agent.llm.base import ChatMessage, ChatRequest, ChatResponse, Usage
from tongyi_agent.tools import FILE_TOOLS, default_registry

SEED_PROMPT = "You are a research assistant. Answer questions about the files."
INSTRUCTION = "Always state the item code."


class CodeModel:
    """Answers correctly only when the system prompt carries the instruction (or never, if hopeless)."""

    supports_grammar = False

    def __init__(self, hopeless: bool = False) -> None:
        self.name = "code-model"
        self.hopeless = hopeless

    async def chat(self, messages: list[ChatMessage], request: ChatRequest | None = None) -> ChatResponse:
        number = re.search(r"item (\d+)", messages[-1].content).group(1)  # type: ignore[union-attr]
        knows = INSTRUCTION in messages[0].content and not self.hopeless
        return ChatResponse(f"CODE-{number}" if knows else "I am not sure.", usage=Usage(100, 5), model=self.name)


def reflection(prompt: str) -> str:
    """A reflection model that reads the feedback and proposes the missing instruction."""
    if "wrong: expected CODE-" in prompt:
        return f"```\n{SEED_PROMPT}\n{INSTRUCTION}\n```"
    return f"```\n{SEED_PROMPT}\n```"


def _tasks(root: Path, n: int = 72) -> list[Task]:
    """Enough tasks that the held-out split has the gate's minimum of 12."""
    return [Task(question=f"What is the code of item {i}?", root=root, answer=f"CODE-{i}", id=f"t{i}")
            for i in range(n)]


def _runner(tmp_path: Path, hopeless: bool = False, rollouts: int = 200) -> AgentRunner:
    agent = Agent(CodeModel(hopeless), default_registry(FILE_TOOLS), NativeDialect(), tmp_path)
    return AgentRunner(agent, Scorer("response_quality", 60.0), Budget(rollouts))


def test_finds_and_promotes_the_helpful_instruction(tmp_path: Path) -> None:
    runner = _runner(tmp_path)
    best: list[float] = []
    report = optimize_prompt(runner, SEED_PROMPT, split_tasks(_tasks(tmp_path), seed=1), reflection=reflection,
                             iterations=3, run_dir=tmp_path / "run", seed=1, on_best=best.append)
    assert report.promoted, report.decision
    assert INSTRUCTION in report.best_prompt
    assert report.seed_test == 0.0 and report.best_test == 1.0
    assert report.best_validation == 1.0 and report.seed_validation == 0.0
    assert report.test_wins == report.splits["test"] and report.test_losses == 0
    assert 0 < report.rollouts <= 200 and report.tokens == 105 * report.rollouts
    assert best[-1] == 1.0


def test_promotes_nothing_when_no_prompt_helps(tmp_path: Path) -> None:
    runner = _runner(tmp_path, hopeless=True)
    report = optimize_prompt(runner, SEED_PROMPT, split_tasks(_tasks(tmp_path), seed=1), reflection=reflection,
                             iterations=3, run_dir=tmp_path / "run", seed=1)
    assert not report.promoted
    assert report.best_test == report.seed_test == 0.0


def test_rollout_budget_is_respected(tmp_path: Path) -> None:
    runner = _runner(tmp_path, rollouts=30)
    report = optimize_prompt(runner, SEED_PROMPT, split_tasks(_tasks(tmp_path, 24), seed=1), reflection=reflection,
                             iterations=10, run_dir=tmp_path / "run", seed=1)
    # The search stops at its share; the held-out comparison (2 x test split) comes on top.
    assert report.rollouts <= 30 + 2 * report.splits["test"]


def test_too_few_tasks_is_an_error_not_a_success(tmp_path: Path) -> None:
    with pytest.raises(NotEnoughTasksError, match="at least 10 usable tasks"):
        optimize_prompt(_runner(tmp_path), SEED_PROMPT, split_tasks(_tasks(tmp_path, 6)), reflection=reflection,
                        iterations=1, run_dir=tmp_path / "run")


def test_a_winning_prompt_on_too_few_held_out_tasks_is_not_promoted(tmp_path: Path) -> None:
    report = optimize_prompt(_runner(tmp_path), SEED_PROMPT, split_tasks(_tasks(tmp_path, 24), seed=1),
                             reflection=reflection, iterations=3, run_dir=tmp_path / "run", seed=1)
    assert report.best_test == 1.0 and report.seed_test == 0.0
    assert not report.promoted and "usable held-out tasks" in report.decision
    assert report.gate is not None and report.gate["n"] == report.splits["test"] < 12


def test_rule_proposer_appends_one_rule_and_is_promoted(tmp_path: Path) -> None:
    asked: list[str] = []

    def small_model(prompt: str) -> str:
        asked.append(prompt)
        return f"{INSTRUCTION} This helps."  # only the first sentence becomes the rule

    report = optimize_prompt(_runner(tmp_path), SEED_PROMPT, split_tasks(_tasks(tmp_path), seed=1),
                             reflection=small_model, iterations=2, run_dir=tmp_path / "run", seed=1, proposer="rule")
    assert report.promoted and report.best_prompt == f"{SEED_PROMPT}\n{INSTRUCTION}"
    assert "wrong: expected CODE-" in asked[0] and "ONE new rule" in asked[0]
