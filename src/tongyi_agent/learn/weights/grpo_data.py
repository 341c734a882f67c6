"""GRPO prompts from recorded runs of tasks with a known answer.

GRPO needs prompts whose completions can be scored. A task with an ``answer`` or ``answer_regex``
gives the score; a recorded run of the same question gives the prompt: the input of its *last*
model call, which is exactly what the model saw when it answered (system prompt in the agent's
dialect, the question, its own earlier tool calls and the observations they returned). GRPO then
samples several answers to that same evidence and shifts the model towards the ones the task
reward scores higher, so it learns to read the evidence it gathered, not to guess without it.

Held-out (test split) questions never become prompts, runs recorded in another dialect are skipped
(their protocol is not the one the trained model will be asked to speak), and so are runs that
looked nothing up (there is no evidence to answer from) or spoke native tool calls (not a text
conversation the chat template can render).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tongyi_agent.learn.evaluation.tasks import Task
from tongyi_agent.learn.weights.sft_data import ROLES
from tongyi_agent.store import TrajectoryStore
from tongyi_agent.store.records import RunRecord, SpanRecord
from tongyi_agent.store.redact import redact


@dataclass(frozen=True)
class GrpoRow:
    """One prompt to sample answers for, and what a correct answer looks like."""

    prompt: list[dict[str, str]]
    question: str
    answer: str | None
    answer_regex: str | None
    run_id: str

    def to_trl(self) -> dict[str, Any]:
        """A row of TRL's conversational prompt-only format; extra columns reach the reward functions."""
        return {"prompt": self.prompt, "question": self.question, "answer": self.answer,
                "answer_regex": self.answer_regex, "run_id": self.run_id}


@dataclass
class GrpoDataset:
    rows: list[GrpoRow] = field(default_factory=list)
    tasks_with_reference: int = 0
    tasks_used: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> runs


def build_grpo_dataset(store: TrajectoryStore, tasks: Iterable[Task], *, dialect: str | None = None,
                       exclude_questions: Iterable[str] = ()) -> GrpoDataset:
    """One row per distinct final-step prompt of a recorded run of a checkable task.

    ``dialect`` keeps only runs recorded in that protocol (runs that did not record one are kept);
    ``exclude_questions`` keeps held-out evaluation questions out."""
    excluded = {q.strip() for q in exclude_questions}
    by_question: dict[str, list[Task]] = {}
    for task in tasks:
        if task.has_reference and task.question.strip() not in excluded:
            by_question.setdefault(task.question.strip(), []).append(task)
    dataset = GrpoDataset(tasks_with_reference=sum(len(ts) for ts in by_question.values()))
    seen: set[str] = set()
    used: set[str] = set()
    for run in store.iter_runs():
        question = run.question.strip()
        if question in excluded:
            dataset.skipped["held-out question"] += 1
        if question not in by_question:
            continue
        task = _task_for(run, by_question[question])
        if task is None:
            dataset.skipped["recorded in another folder than its task"] += 1
            continue
        found = _prompt_or_reason(store, run, dialect)
        if isinstance(found, str):
            dataset.skipped[found] += 1
            continue
        prompt = redact(found, store.secrets)
        key = repr(prompt)
        if key in seen:
            dataset.skipped["same evidence as another run"] += 1
            continue
        seen.add(key)
        used.add(task.key)
        dataset.rows.append(GrpoRow(prompt, task.question, task.answer, task.answer_regex, run.id))
    dataset.tasks_used = len(used)
    return dataset


def _task_for(run: RunRecord, candidates: list[Task]) -> Task | None:
    """The task a run answered: same question, and the same folder when the run recorded one."""
    if not run.root:
        return candidates[0]
    root = Path(run.root).resolve()
    return next((t for t in candidates if t.root.resolve() == root), None)


def _prompt_or_reason(store: TrajectoryStore, run: RunRecord, dialect: str | None) -> list[dict[str, str]] | str:
    """The run's final-step prompt, or why the run gives none."""
    if run.status == "failed":
        return "failed run"
    if dialect and run.dialect and run.dialect != dialect:
        return f"recorded in the {run.dialect} dialect"
    if run.tool_calls == 0:
        return "answered without looking anything up"
    return last_prompt(store.iter_spans(run.id)) or "no text-protocol model call"


def last_prompt(spans: Iterable[SpanRecord]) -> list[dict[str, str]] | None:
    """The messages of the run's last model call, as plain text turns; None when it had native turns."""
    last = None
    for span in spans:
        if span.kind == "llm" and isinstance(span.input, list):
            last = span.input
    if not last:
        return None
    prompt = []
    for message in last:
        role = message.get("role") if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if role not in ROLES or not isinstance(content, str) or message.get("tool_calls"):
            return None
        prompt.append({"role": str(role), "content": content})
    return prompt if prompt[-1]["role"] == "user" else None
