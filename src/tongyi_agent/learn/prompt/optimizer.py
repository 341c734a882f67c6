"""Reflective prompt evolution (GEPA) over our agent, with a held-out promotion gate.

The `gepa` package drives the search: it runs a candidate system prompt on a minibatch of training
tasks, shows a reflection model the trajectories with their scores and failures, takes the improved
prompt it proposes, and keeps a Pareto front over the validation tasks. We own everything around it:
the adapter that runs our agent, the rollout budget, and the decision. A candidate is activated only
if it passes the one promotion gate (learn/evaluation/gate.py) against the active prompt on the held-out test
tasks; otherwise it is kept as a candidate and the report says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

from tongyi_agent.agent.loop import Agent
from tongyi_agent.agent.runtime import LoopRunner
from tongyi_agent.agent.steps import RunResult, ToolStep
from tongyi_agent.learn.evaluation.gate import GateReport, paired_gate
from tongyi_agent.learn.evaluation.rewards import compute_rewards, task_reward
from tongyi_agent.learn.evaluation.tasks import Splits, Task
from tongyi_agent.learn.prompt.demos import (
    DEMOS_COMPONENT,
    Demo,
    DemoSearchResult,
    bootstrap,
    demos_from_text,
    demos_to_text,
    search_demos,
    with_demos,
)
from tongyi_agent.llm.base import ChatMessage, ChatModel, ChatRequest, ModelError

MIN_TASKS = 10
OPTIMIZED_COMPONENT = "system"


class NotEnoughTasksError(ValueError):
    pass


@dataclass
class Rollout:
    """One task run with one candidate: what the reflection model gets to see."""

    task: Task
    answer: str
    score: float
    feedback: str
    tokens: int
    result: RunResult | None = None  # None when the model failed


@dataclass
class Budget:
    max_rollouts: int
    rollouts: int = 0
    tokens: int = 0

    @property
    def left(self) -> int:
        return max(0, self.max_rollouts - self.rollouts)


class Scorer:
    """Scores one finished run: the task's reference answer when it has one, else the target reward."""

    def __init__(self, target: str, max_response_time: float) -> None:
        self.target = target
        self.max_response_time = max_response_time

    def __call__(self, task: Task, result: RunResult) -> tuple[float, str]:
        if task.has_reference:
            score = task_reward(result, task.answer, task.answer_regex) or 0.0
            expected = task.answer if task.answer is not None else f"a match for /{task.answer_regex}/"
            verdict = "correct" if score >= 1.0 else f"wrong: expected {expected}"
        else:
            _, value = compute_rewards(result, max_response_time=self.max_response_time, target=self.target)
            score, verdict = value or 0.0, f"{self.target} reward {value or 0.0:.2f}"
        return score, verdict


class AgentRunner:
    """Runs tasks with a candidate prompt; counts rollouts and tokens against the budget."""

    def __init__(self, agent: Agent, scorer: Scorer, budget: Budget,
                 on_rollout: Callable[[Budget], None] | None = None, loop: LoopRunner | None = None,
                 demo_share: float = 0.15) -> None:
        """``demo_share``: the share of the context window a candidate's demonstrations may use."""
        self.loop = loop or LoopRunner()
        self.demo_share = demo_share
        self._done: dict[tuple[str, str, str], Rollout] = {}
        self.agent = agent
        self.scorer = scorer
        self.budget = budget
        self.on_rollout = on_rollout

    def run(self, task: Task, candidate: Mapping[str, str]) -> Rollout:
        """One rollout; the same prompt (instructions and demos) on the same task is run once and then
        reused (free)."""
        key = self._key(task, candidate)
        if key not in self._done:
            self._done[key] = self._run(task, candidate)
        return self._done[key]

    def is_cached(self, task: Task, candidate: Mapping[str, str]) -> bool:
        return self._key(task, candidate) in self._done

    @staticmethod
    def _key(task: Task, candidate: Mapping[str, str]) -> tuple[str, str, str]:
        return task.key, candidate[OPTIMIZED_COMPONENT], candidate.get(DEMOS_COMPONENT, "")

    def _run(self, task: Task, candidate: Mapping[str, str]) -> Rollout:
        agent = self.agent.variant(instructions=candidate[OPTIMIZED_COMPONENT], root=task.root)
        agent = with_demos(agent, demos_from_text(candidate.get(DEMOS_COMPONENT)), budget_share=self.demo_share)
        try:
            result = self.loop.run(agent.run(task.question))
        except ModelError as exc:  # one failed rollout scores 0; it must not end the optimization
            self._count(0)
            return Rollout(task, "", 0.0, f"model error: {exc}", 0)
        score, verdict = self.scorer(task, result)
        self._count(result.usage.total_tokens)
        return Rollout(task, result.answer, score, _feedback(verdict, result), result.usage.total_tokens, result)

    def scores(self, tasks: Sequence[Task], candidate: Mapping[str, str]) -> list[float]:
        return [self.run(task, candidate).score for task in tasks]

    def outcomes(self, tasks: Sequence[Task], candidate: Mapping[str, str]) -> list[float | None]:
        """Scores for the gate: None where the model failed (the task is left out of both sides)."""
        return [None if (r := self.run(task, candidate)).result is None else r.score for task in tasks]

    def _count(self, tokens: int) -> None:
        self.budget.rollouts += 1
        self.budget.tokens += tokens
        if self.on_rollout:
            self.on_rollout(self.budget)


def _feedback(verdict: str, result: RunResult) -> str:
    tools = [s for s in result.steps if isinstance(s, ToolStep)]
    failed = [f"{s.call.name} failed: {s.result.output[:120]}" for s in tools if not s.result.ok]
    parts = [verdict, f"{result.model_calls} model calls, tools: {', '.join(s.call.name for s in tools) or 'none'}"]
    if result.stop_reason == "forced":
        parts.append("the budget ran out and the answer was forced")
    return "; ".join(parts + failed)


class GepaAdapter:
    """The two methods `gepa` needs: evaluate a batch with a candidate, and build the reflective data."""

    propose_new_texts = None  # gepa's own reflective proposer writes the new prompt

    def __init__(self, runner: AgentRunner) -> None:
        self.runner = runner

    def evaluate(self, batch: list[Task], candidate: dict[str, str], capture_traces: bool = False) -> Any:
        from gepa.core.adapter import EvaluationBatch

        rollouts = [self.runner.run(task, candidate) for task in batch]
        return EvaluationBatch(outputs=[r.answer for r in rollouts], scores=[r.score for r in rollouts],
                               trajectories=rollouts if capture_traces else None)

    def make_reflective_dataset(self, candidate: dict[str, str], eval_batch: Any,
                                components_to_update: list[str]) -> dict[str, list[dict[str, Any]]]:
        records = [{"Inputs": r.task.question, "Generated Outputs": r.answer or "(no answer)",
                    "Feedback": f"score {r.score:.2f}: {r.feedback}"} for r in eval_batch.trajectories or []]
        return {name: records for name in components_to_update}


def reflection_callable(model: ChatModel, loop: LoopRunner, max_tokens: int = 1024) -> Callable[[str], str]:
    """Wrap a ChatModel as the plain `prompt -> text` function gepa calls for reflection."""

    def call(prompt: str) -> str:
        response = loop.run(model.chat([ChatMessage("user", prompt)], ChatRequest(max_tokens=max_tokens)))
        return response.content

    return call


RULE_PROMPT = """An AI research assistant answers questions about a folder of files using tools.
Its current instructions are:
---
{prompt}
---
Here are questions it got wrong or only partly right, with what it answered and why it failed:
{failures}

Write ONE new rule, a single imperative sentence of at most 30 words, that would have helped it
answer these correctly. Make it specific (which tool to use, what to search for, what to check).
Do not repeat a rule it already has. Reply with the rule only."""


def rule_proposer(reflection: Callable[[str], str], max_failures: int = 5) -> Callable[..., dict[str, str]]:
    """Proposals for small reflection models: ask for one new rule and append it to the prompt.

    Rewriting a whole prompt is beyond a 1.5B model (it returns the prompt unchanged); naming one
    rule from a handful of failures is within reach, and the search keeps only rules that help."""

    def propose(candidate: dict[str, str], reflective_dataset: Mapping[str, Sequence[Mapping[str, Any]]],
                components_to_update: list[str]) -> dict[str, str]:
        proposals = {}
        for name in components_to_update:
            records = [r for r in reflective_dataset.get(name, []) if not str(r["Feedback"]).startswith("score 1.00")]
            failures = "\n".join(f"- Question: {r['Inputs']}\n  Answer: {str(r['Generated Outputs'])[:200]}\n"
                                  f"  Feedback: {str(r['Feedback'])[:300]}" for r in records[:max_failures])
            rule = _first_sentence(reflection(RULE_PROMPT.format(prompt=candidate[name],
                                                                 failures=failures or "- (none)")))
            proposals[name] = f"{candidate[name]}\n{rule}" if rule and rule not in candidate[name] else candidate[name]
        return proposals

    return propose


def _first_sentence(text: str) -> str:
    text = _clean(text).replace("\n", " ").strip().lstrip("-*0123456789. ").strip()
    match = re.match(r"(.+?[.!])(\s|$)", text)
    rule = (match.group(1) if match else text)[:300].strip()
    return rule if len(rule.split()) >= 3 else ""


@dataclass
class OptimizationReport:
    seed_validation: float
    best_validation: float
    seed_test: float
    best_test: float
    test_wins: int
    test_losses: int
    rollouts: int
    tokens: int
    promoted: bool
    decision: str
    best_prompt: str
    iterations: int
    splits: dict[str, int] = field(default_factory=dict)
    gate: dict[str, Any] | None = None  # the held-out GateReport (learn/evaluation/gate.py); None if nothing was judged
    best_demos: list[Demo] = field(default_factory=list)  # the best candidate's demonstration set
    demo_search: dict[str, Any] | None = None  # pool, bootstrapped, sets_tried, validation scores


def optimize_prompt(runner: AgentRunner, seed_prompt: str, splits: Splits, *, reflection: Callable[[str], str] | None,
                    iterations: int, run_dir: Path, seed: int = 0, minibatch: int = 3, population: int = 4,
                    on_best: Callable[[float], None] | None = None,
                    on_log: Callable[[str], None] | None = None, proposer: str = "rewrite",
                    seed_demos: Sequence[Demo] = (), demo_pool: Sequence[Demo] = (),
                    demo_size: int = 2, demos: bool = True) -> OptimizationReport:
    """Search on train/validation, then judge seed vs best on the test split. Resumable via `run_dir`.

    A candidate is the instructions plus a demonstration set. `proposer`: "rewrite" lets gepa's
    reflection rewrite the whole prompt (strong reflection models); "rule" asks for one new rule
    per proposal (see rule_proposer); "none" keeps the instructions and searches demonstrations
    only (no reflection model needed). With `demos`, the demonstration search (learn/prompt/demos.py)
    follows, over `demo_pool` plus demonstrations bootstrapped from correct training rollouts."""
    import random

    sizes = splits.sizes()
    if min(sizes.values()) == 0 or sum(sizes.values()) < MIN_TASKS:
        raise NotEnoughTasksError(
            f"need at least {MIN_TASKS} usable tasks with some in each split, got {sizes}; "
            "give a task file with --tasks or record more runs with --train")
    reserve = 2 * sizes["test"]  # the held-out comparison always gets its rollouts
    seed_candidate = _candidate(seed_prompt, seed_demos)
    best_prompt, iterations_done = seed_prompt, 0
    if proposer != "none":
        if reflection is None:
            raise ValueError(f"proposer {proposer!r} needs a reflection model")
        # Evaluations cost a full agent run each: gepa stops before its share of the budget is spent.
        share = runner.budget.left - reserve
        share = share * 2 // 3 if demos else share
        best_prompt, iterations_done = _gepa_search(
            runner, seed_prompt, splits, reflection=reflection, iterations=iterations, run_dir=run_dir, seed=seed,
            minibatch=minibatch, population=population, budget=max(share, sizes["validation"] + minibatch),
            on_best=on_best, on_log=on_log, proposer=proposer)
    best_demos: list[Demo] = list(seed_demos)
    demo_report: dict[str, Any] | None = None
    if demos:
        searched = _demo_search(runner, best_prompt, splits, demo_pool, size=demo_size, reserve=reserve,
                                rng=random.Random(seed))
        demo_report = {k: v for k, v in asdict(searched).items() if k != "demos"}
        if on_log is not None:
            for line in searched.log:
                on_log(f"demonstrations: {line}")
        if searched.sets_tried > 1 or not seed_demos:
            best_demos = searched.demos
    best_candidate = _candidate(best_prompt, best_demos)
    seed_val = _mean(runner.scores(splits.validation, seed_candidate))
    best_val = _mean(runner.scores(splits.validation, best_candidate))
    if on_best is not None:
        on_best(max(seed_val, best_val))
    seed_scores = runner.outcomes(splits.test, seed_candidate)
    gate: GateReport | None = None
    if best_candidate == seed_candidate or best_val <= seed_val:
        best_prompt, best_demos = seed_prompt, list(seed_demos)
        best_scores, promoted, wins, losses = seed_scores, False, 0, 0
        decision = "no candidate beat the seed prompt on validation"
    else:
        best_scores = runner.outcomes(splits.test, best_candidate)
        gate = paired_gate(seed_scores, best_scores, has_reference=[t.has_reference for t in splits.test],
                           target=runner.scorer.target)
        promoted, wins, losses, decision = gate.promoted, gate.wins, gate.losses, gate.summary()
    return OptimizationReport(
        seed_validation=seed_val, best_validation=best_val, seed_test=_mean(seed_scores),
        best_test=_mean(best_scores), test_wins=wins, test_losses=losses, rollouts=runner.budget.rollouts,
        tokens=runner.budget.tokens, promoted=promoted, decision=decision, best_prompt=best_prompt,
        iterations=iterations_done, splits=sizes, gate=asdict(gate) if gate else None, best_demos=best_demos,
        demo_search=demo_report)


def _candidate(prompt: str, demos: Sequence[Demo]) -> dict[str, str]:
    return {OPTIMIZED_COMPONENT: prompt, **({DEMOS_COMPONENT: demos_to_text(demos)} if demos else {})}


def _gepa_search(runner: AgentRunner, seed_prompt: str, splits: Splits, *, reflection: Callable[[str], str],
                 iterations: int, run_dir: Path, seed: int, minibatch: int, population: int, budget: int,
                 on_best: Callable[[float], None] | None, on_log: Callable[[str], None] | None,
                 proposer: str) -> tuple[str, int]:
    """GEPA over the instructions alone; returns the best instructions and the candidates proposed."""
    import random

    import gepa
    from gepa.strategies.candidate_selector import TopKParetoCandidateSelector
    from gepa.utils import MaxCandidateProposalsStopper

    class _Log:  # gepa narrates every step on stdout; pass it to --verbose instead
        def log(self, message: str) -> None:
            if on_log is not None:
                on_log(message)

    class _Progress:  # gepa callback: the best validation score so far, for the progress bar
        def on_valset_evaluated(self, event: dict[str, Any]) -> None:
            if on_best is not None and event.get("is_best_program"):
                on_best(float(event["average_score"]))

    result = gepa.optimize(
        seed_candidate={OPTIMIZED_COMPONENT: seed_prompt}, trainset=splits.train, valset=splits.validation,
        adapter=GepaAdapter(runner), max_metric_calls=budget,
        reflection_lm=reflection if proposer == "rewrite" else None,
        custom_candidate_proposer=rule_proposer(reflection) if proposer == "rule" else None,
        stop_callbacks=[MaxCandidateProposalsStopper(iterations)], reflection_minibatch_size=minibatch,
        run_dir=str(run_dir), seed=seed, callbacks=[_Progress()], display_progress_bar=False, logger=_Log(),
        raise_on_exception=False, skip_perfect_score=False,
        # Parents come from the Pareto front of the `population` best candidates ([prompt_optimization]).
        candidate_selection_strategy=TopKParetoCandidateSelector(k=population, rng=random.Random(seed)),
    )
    best = _clean(result.best_candidate[OPTIMIZED_COMPONENT]) if isinstance(result.best_candidate, dict) \
        else seed_prompt
    return best, len(result.candidates) - 1


def _demo_search(runner: AgentRunner, prompt: str, splits: Splits, pool: Sequence[Demo], *, size: int,
                 reserve: int, rng: Any) -> DemoSearchResult:
    """Bootstrap demonstrations from training rollouts of ``prompt``, then search sets of ``size``.

    The bootstrap takes at most a third of the rollouts left for the search; a validation or test
    question never enters the pool."""
    held_out = {t.question for t in [*splits.validation, *splits.test]}
    spare = max(0, runner.budget.left - reserve - len(splits.validation))
    train = [t for t in splits.train if t.has_reference][:spare // 3]
    candidate = _candidate(prompt, [])
    booted = bootstrap([(t.key, (r := runner.run(t, candidate)).result, r.score, t.has_reference) for t in train])
    merged: dict[str, Demo] = {}
    for demo in [*pool, *booted]:
        if demo["question"] not in held_out:
            merged.setdefault(demo["question"], demo)

    def evaluate(demos: list[Demo]) -> float | None:
        cached = all(runner.is_cached(t, _candidate(prompt, demos)) for t in splits.validation)
        if not cached and runner.budget.left - reserve < len(splits.validation):
            return None
        return _mean(runner.scores(splits.validation, _candidate(prompt, demos)))

    return search_demos(list(merged.values()), evaluate, size=size, rng=rng, bootstrapped=len(booted))


def _mean(scores: Sequence[float | None]) -> float:
    """Mean over the runs that did not error (0.0 when every run errored)."""
    usable = [s for s in scores if s is not None]
    return mean(usable) if usable else 0.0


def _clean(text: str) -> str:
    """Reflection models sometimes wrap the prompt in fences or quotes; keep the prompt itself."""
    fenced = re.fullmatch(r"\s*```[\w-]*\n(.*?)\n?```\s*", text, re.S)
    return (fenced.group(1) if fenced else text).strip().strip('"').strip()
