"""Demonstration sets for prompt versions: fixed worked examples that every run on a version sees.

A prompt candidate is its instructions plus a demonstration set. The set is chosen without any
reflection model, in the spirit of DSPy's BootstrapFewShotWithRandomSearch (our own code):

1. **Pool.** Confirmed experiences from the roots of the tasks (never a validation or test
   question), plus *bootstrapped* demonstrations: training-split tasks that the current
   instructions answered correctly during the search.
2. **Random search.** Seeded random sets of ``size`` demonstrations, each scored on the validation
   split, against the empty set.
3. **Greedy refinement.** From the best set, one position at a time, swap in other pool members
   and keep a swap only when the validation mean rises.

Everything is bounded by the runner's rollout budget, and a (task, instructions, demos) triple is
never run twice. A demonstration is stored in the prompt version's ``demos`` component as JSON, so
``prompts show`` and ``prompts diff`` show it like any other text.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from statistics import mean
from typing import Any

from tongyi_agent.agent.examples import WorkedExample, render_examples
from tongyi_agent.agent.loop import Agent
from tongyi_agent.agent.steps import ModelStep, RunResult, ToolStep
from tongyi_agent.store import Experience

DEMOS_COMPONENT = "demos"
OBSERVATION_CHARS = 2000
# {"question", "answer", "steps": [{"thought", "tool", "arguments", "observation"}], "cited", "source"}
Demo = dict[str, Any]


def demos_from_text(text: str | None) -> list[Demo]:
    """The demonstrations of a ``demos`` component (empty for none or unreadable text)."""
    if not text:
        return []
    try:
        data = json.loads(text)
    except ValueError:
        return []
    return [d for d in data if isinstance(d, dict) and d.get("question")] if isinstance(data, list) else []


def demos_to_text(demos: Sequence[Demo]) -> str:
    """Indented JSON, one field per line, so ``prompts diff`` shows what changed line by line."""
    return json.dumps(list(demos), ensure_ascii=False, indent=2)


def demo_from_experience(experience: Experience) -> Demo:
    return {"question": experience.question, "answer": experience.answer,
            "steps": experience.trajectory.get("steps", []), "cited": experience.trajectory.get("cited", []),
            "source": f"experience {experience.id}"}


def demo_from_result(result: RunResult, source: str) -> Demo | None:
    """A bootstrapped demonstration from a correct rollout; None when it looked nothing up."""
    steps: list[dict[str, Any]] = []
    thought = ""
    for step in result.steps:
        if isinstance(step, ModelStep):
            thought = step.parsed.thought.strip()[:300]
        elif isinstance(step, ToolStep) and step.result.ok and not step.skipped:
            steps.append({"thought": thought, "tool": step.call.name, "arguments": step.call.arguments,
                          "observation": step.result.output[:OBSERVATION_CHARS]})
            thought = ""
    if not steps:
        return None
    cited = [{"path": s.path, "line": s.line, "text": s.text} for s in result.sources]
    return {"question": result.question, "answer": result.answer, "steps": steps, "cited": cited, "source": source}


def with_demos(agent: Agent, demos: Sequence[Demo], *, budget_share: float) -> Agent:
    """``agent`` with ``demos`` shown before every question, within ``budget_share`` of its context."""
    if not demos:
        return agent
    examples = [WorkedExample.from_trajectory(n, d["question"], str(d.get("answer", "")), d)
                for n, d in enumerate(demos)]
    messages, _ = render_examples(examples, agent.dialect,
                                  budget_tokens=int(agent.spec.context_tokens * budget_share))
    return agent.variant(examples=messages)


@dataclass
class DemoSearchResult:
    demos: list[Demo]
    validation: float  # mean validation score of the chosen set
    empty_validation: float  # ... of the instructions alone
    pool: int
    bootstrapped: int
    sets_tried: int
    log: list[str] = field(default_factory=list)


Evaluate = Callable[[list[Demo]], float | None]  # validation mean of a set; None when the budget is spent


def search_demos(pool: list[Demo], evaluate: Evaluate, *, size: int, rng: random.Random, random_sets: int = 6,
                 greedy_tries: int = 8, bootstrapped: int = 0) -> DemoSearchResult:
    """Random then greedy search over sets of ``size`` demonstrations from ``pool``.

    ``evaluate`` scores a set on the validation split (it returns None once the budget is spent,
    which ends the search with the best set so far)."""
    empty = evaluate([])
    if empty is None:
        return DemoSearchResult([], 0.0, 0.0, len(pool), bootstrapped, 0)
    best: list[Demo] = []
    best_score = empty
    tried = 1
    log = [f"no demonstrations: validation {empty:.3f}"]
    size = min(size, len(pool))
    if size == 0:
        return DemoSearchResult([], empty, empty, len(pool), bootstrapped, tried, log)
    seen: set[tuple[str, ...]] = set()

    def consider(candidate: list[Demo], how: str) -> bool | None:
        nonlocal best, best_score, tried
        key = tuple(sorted(d["question"] for d in candidate))
        if key in seen:
            return False
        seen.add(key)
        score = evaluate(candidate)
        if score is None:
            return None
        tried += 1
        log.append(f"{how}: validation {score:.3f} ({'; '.join(d['question'][:40] for d in candidate)})")
        if score > best_score:
            best, best_score = list(candidate), score
            return True
        return False

    for n in range(random_sets):
        if consider(rng.sample(pool, size), f"random set {n + 1}") is None:
            return DemoSearchResult(best, best_score, empty, len(pool), bootstrapped, tried, log)
    if best:
        # Coordinate ascent: one position at a time, try the others there and keep any improvement.
        others = [d for d in pool if d not in best]
        rng.shuffle(others)
        tries = 0
        for position in range(len(best)):
            for other in others:
                if tries >= greedy_tries:
                    break
                if other in best:
                    continue
                tries += 1
                candidate = [*best[:position], other, *best[position + 1:]]
                if consider(candidate, f"greedy swap {tries} at position {position + 1}") is None:
                    return DemoSearchResult(best, best_score, empty, len(pool), bootstrapped, tried, log)
    return DemoSearchResult(best, best_score, empty, len(pool), bootstrapped, tried, log)


def bootstrap(results: Sequence[tuple[str, RunResult | None, float, bool]]) -> list[Demo]:
    """Demonstrations from training rollouts ``(task key, result, score, has reference)`` that were
    correct on a known answer."""
    demos = []
    for key, result, score, has_reference in results:
        if result is not None and has_reference and score >= 1.0:
            demo = demo_from_result(result, f"bootstrapped from training task {key}")
            if demo is not None:
                demos.append(demo)
    return demos


def validation_mean(scores: Sequence[float]) -> float:
    return mean(scores) if scores else 0.0


def apply_prompt(agent: Agent, components: dict[str, str], *, budget_share: float) -> Agent:
    """``agent`` running a prompt version: its instructions, its forced-answer text and its
    demonstrations (shown before every question)."""
    # examples=[]: another version's demonstrations must not stay on the agent.
    prompted = agent.variant(instructions=components.get("system"), forced_answer=components.get("forced_answer"),
                             examples=[])
    return with_demos(prompted, demos_from_text(components.get(DEMOS_COMPONENT)), budget_share=budget_share)
