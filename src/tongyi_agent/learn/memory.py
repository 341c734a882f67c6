"""Experience memory: confirmed runs become worked examples for similar later questions.

A run is *confirmed* when
- the user rated it 0.5 or more (``--feedback``, ``/good``, ``/rate``);
- or its ``task`` reward is 1 on a known answer (task files, rollouts, benchmarks);
- or, with ``[memory] trust_rewards = true``, its target reward is at least ``[memory] min_reward``,
  every checked citation is verified and the answer was not forced.

A run rated below 0.5, or wrong on a known answer, is never an example; rating a kept run down
removes its experience. A run wrong on a known answer is followed by a *correction* instead when the
folder shows the answer (learn/corrections.py): one tool call that finds it, kept in the run's place.
An experience keeps what a later run can copy: the question, each tool call with its arguments and
(shortened) result, the lines the answer cited, and the answer.

At question time (``[prompt_optimization] use_history``) the ``[memory] examples`` experiences most
like the question, from the same root and among the ``history_size`` newest, are shown before the
question in the model's own dialect. Only an experience whose question is asked the same way counts
(``[memory] min_form_overlap`` of the words that remain without names, numbers and paths): a look-up
about the same project shown before a question that needs two hops or a computation taught the small
model to stop after one search (learning-curve benchmark). A nested question gets no examples at all
(see :meth:`ExperienceMemory.retrieve`).

Each later recorded run that was shown examples counts as one use of each (see :func:`use_succeeded`
for what makes a use fail): a failed use extends an experience's failure streak (which lowers its
rank), and ``retire_after`` failures in a row retire it.
A rating given after the run was recorded judges its uses again (:meth:`ExperienceMemory.after_feedback`);
the experiences' counters and status follow, so a retirement resting on a use now judged a success is
undone.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tongyi_agent.agent.bridges import chain_of
from tongyi_agent.agent.context import CHARS_PER_TOKEN
from tongyi_agent.agent.dialects import DIALECTS, get_dialect
from tongyi_agent.agent.examples import INTRO, WorkedExample, message_chars, render_examples
from tongyi_agent.agent.loop import Agent
from tongyi_agent.config.training import TrainingConfig
from tongyi_agent.learn.corrections import Reference, find_correction
from tongyi_agent.learn.evaluation.rewards import answer_score
from tongyi_agent.learn.evaluation.tasks import CONFIRMED as CONFIRMED_FEEDBACK
from tongyi_agent.llm.base import ChatResponse, ToolCall
from tongyi_agent.store import (
    USER_FEEDBACK,
    Experience,
    ExperienceStore,
    RewardRecord,
    RunRecord,
    SpanRecord,
    TrajectoryStore,
    UseChanges,
)

CORRECTION = "correction"  # how a correction (learn/corrections.py) is marked as confirmed
OBSERVATION_CHARS = 2000  # what an experience keeps of each tool result; rendering shortens further
_FORM_STOP = frozenset("a an the of in on at to for by with and or is are was were be does did do".split())


def confirmation(run: RunRecord, training: TrainingConfig) -> str | None:
    """Why ``run`` counts as confirmed (``feedback``, ``task`` or ``reward``), or None."""
    if run.status == "failed":
        return None
    ratings = _ratings(run)
    if any(value < CONFIRMED_FEEDBACK for value in ratings):
        return None  # rated down once: never an example, whatever else it has
    task = run.reward("task")
    if task is not None and task < 1.0:
        return None  # wrong (or only partly right) on a known answer
    if ratings:
        return "feedback"
    if task is not None:
        return "task"
    memory = training.memory
    target = run.reward(training.prompt_optimization.optimization_target)
    if (memory.trust_rewards and target is not None and target >= memory.min_reward and run.status == "success"
            and run.metadata.get("verification_rate") == 1.0):
        return "reward"
    return None


def compact_trajectory(run: RunRecord, spans: Iterable[SpanRecord]) -> dict[str, Any]:
    """The moves a later run can copy: each successful tool call with the thought before it, its
    arguments and its result (capped), plus the lines the answer cited."""
    dialect = get_dialect(run.dialect) if run.dialect in DIALECTS else None
    steps: list[dict[str, Any]] = []
    thought = ""
    for span in spans:
        if span.kind == "llm":
            thought = _thought(dialect, span.output)
            continue
        if span.error is not None:
            continue
        output = span.output if isinstance(span.output, str) else str(span.output)
        steps.append({"thought": thought, "tool": span.name,
                      "arguments": span.input if isinstance(span.input, dict) else {},
                      "observation": output[:OBSERVATION_CHARS]})
        thought = ""  # a second call of the same turn has no thought of its own
    cited = [{"path": s.get("path"), "line": s.get("line"), "text": s.get("text", "")}
             for s in run.sources if isinstance(s, dict)]
    return {"steps": steps, "cited": cited}


def _thought(dialect: Any, output: Any) -> str:
    if not isinstance(output, dict):
        return ""
    content = output.get("content") or ""
    if dialect is None:
        return ""
    calls = [ToolCall(str(c.get("id", "")), str(c.get("name", "")), c.get("arguments") or {})
             for c in output.get("tool_calls") or [] if isinstance(c, dict) and isinstance(c.get("arguments"), dict)]
    names = {c.name for c in calls} or {"_"}
    parsed = dialect.parse(ChatResponse(content=content, tool_calls=calls), names)
    return parsed.thought.strip()[:300]


def question_form(question: str) -> set[str]:
    """How a question is asked, without what it is about: its words in lower case, leaving out names
    (capitalised words after the first), numbers, paths, identifiers and articles; plurals folded.
    "Who leads project Curlew?" and "Who leads project Avocet?" have the same form."""
    words = re.findall(r"[\w'’./-]+", question)
    form = set()
    for index, word in enumerate(words):
        word = word.strip(".'’-/")
        if (not word or (index and word[:1].isupper()) or re.search(r"[\d_/.]", word)
                or word.lower() in _FORM_STOP):
            continue
        form.add(word.lower().removesuffix("'s").removesuffix("’s").removesuffix("s") or word.lower())
    return form


def form_overlap(a: set[str], b: set[str]) -> float:
    """Jaccard overlap of two question forms (1.0: asked the same way; two empty forms count as 1)."""
    return len(a & b) / len(a | b) if a | b else 1.0


def latest_rating(run: RunRecord) -> float | None:
    """The user's latest rating of ``run`` (normalised to [0, 1] by the store), or None."""
    ratings = _ratings(run)
    return ratings[-1] if ratings else None


def _ratings(run: RunRecord) -> list[float]:
    """The user's ratings of ``run``, oldest first."""
    return [r.value for r in run.rewards if r.name == USER_FEEDBACK and r.value is not None]


def use_succeeded(run: RunRecord, training: TrainingConfig) -> bool:
    """Whether a run that was shown examples went well.

    The user's rating comes first: the latest rating at least 0.5 (``CONFIRMED``, the threshold that
    confirms an experience; a thumbs-down -1 is stored as 0) is a success, below it a failure. The
    latest rating, not the lowest: a use measures how the run went, and a user who rates ``/bad`` and
    then ``/good`` has changed their mind. (Becoming an example is stricter: one rating below 0.5 is
    enough to keep a run from ever being copied, see :func:`confirmation`.) Without a rating: correct
    on a known answer (``task`` reward 1), else answered by itself with a target reward of at least
    ``[memory] min_reward``. ``ExperienceStore.usage_outcomes`` applies the same rule in SQL."""
    rating = latest_rating(run)
    if rating is not None:
        return rating >= CONFIRMED_FEEDBACK
    task = run.reward("task")
    if task is not None:
        return task >= 1.0
    target = run.reward(training.prompt_optimization.optimization_target)
    return run.status == "success" and target is not None and target >= training.memory.min_reward


class ExperienceMemory:
    """The experience memory of one project's store, with the project's training settings."""

    def __init__(self, store: TrajectoryStore, training: TrainingConfig) -> None:
        self.store = store
        self.training = training
        self.experiences = ExperienceStore(store)

    @property
    def enabled(self) -> bool:
        return self.training.prompt_optimization.use_history and self.training.memory.examples > 0

    def retrieve(self, question: str, root: str) -> list[Experience]:
        """The experiences to show for ``question``: most similar first, each asked the same way. None
        for a nested question: the grounding check's look-ups take it step by step (agent/bridges.py),
        and an example only showed where another question's chain ended, which the small model
        copied ("Brightmoor Research", the organisation of another project's lead)."""
        if not self.enabled or chain_of(question) is not None:
            return []
        recent = self.training.prompt_optimization.history_size
        form = question_form(question)
        minimum = self.training.memory.min_form_overlap
        found = [e for e in self.experiences.similar(question, root, limit=recent, recent=recent)
                 if form_overlap(form, question_form(e.question)) >= minimum]
        return found[:self.training.memory.examples]

    def prepare(self, agent: Agent, question: str) -> tuple[Agent, list[int]]:
        """``agent`` with the worked examples for ``question`` added to those it already shows (a prompt
        version's demonstrations), all within the token budget; and the ids of the experiences added."""
        existing = agent.spec.examples
        shown_questions = {m.content for m in existing if m.content.startswith(INTRO)}
        found = [e for e in self.retrieve(question, str(agent.root)) if INTRO + e.question not in shown_questions]
        if not found:
            return agent, []
        examples = [WorkedExample.from_trajectory(e.id, e.question, e.answer, e.trajectory) for e in found]
        budget_chars = agent.spec.context_tokens * self.training.memory.budget_share * CHARS_PER_TOKEN
        left = int((budget_chars - message_chars(existing)) / CHARS_PER_TOKEN)
        messages, shown = render_examples(examples, agent.dialect, budget_tokens=left)
        return (agent.variant(examples=[*existing, *messages]), shown) if shown else (agent, [])

    def after_run(self, run_id: str, reference: Reference | None = None) -> list[str]:
        """Count the run as a use of the examples it was shown, and keep it if it is confirmed; a run
        wrong on its known answer ``reference`` leaves a correction. Returns notes for the user
        (retirements)."""
        run = self.store.get_run(run_id)
        changes = UseChanges()
        used = [int(i) for i in run.metadata.get("experiences") or []]
        if used:
            changes = self.experiences.record_use(run.id, used, success=use_succeeded(run, self.training),
                                                  retire_after=self.training.memory.retire_after)
        if self.review(run) is None and reference is not None:
            self.correct(run, reference)
        return self._notes(changes)

    def after_feedback(self, run_id: str) -> list[str]:
        """The user rated ``run_id``: judge its uses of examples again, then keep or drop its own
        experience. Returns notes for the user (retirements, and experiences active again)."""
        run = self.store.get_run(run_id)
        changes = self.experiences.rejudge_uses(run.id, success=use_succeeded(run, self.training),
                                                retire_after=self.training.memory.retire_after)
        self.review(run)
        return self._notes(changes)

    def _notes(self, changes: UseChanges) -> list[str]:
        retire_after = self.training.memory.retire_after
        return ([f"experience {i} retired after {retire_after} failed uses in a row" for i in changes.retired]
                + [f"experience {i} is active again: a use that failed is now judged a success"
                   for i in changes.reactivated])

    def review(self, run: RunRecord) -> Experience | None:
        """Keep ``run`` as an experience when it is confirmed; drop its experience when it no longer is
        (rated down). Returns the experience kept, if any."""
        reason = confirmation(run, self.training)
        if reason is None:
            kept = self.experiences.by_run(run.id)
            if kept is not None and kept.confirmed_by != CORRECTION:  # a correction rests on the known answer
                self.experiences.forget(kept.id)
            return None
        trajectory = compact_trajectory(run, self.store.iter_spans(run.id))
        if not trajectory["steps"]:
            return None  # nothing was looked up: nothing to show how it was done
        return self.experiences.add(run_id=run.id, question=run.question, root=run.root, trajectory=trajectory,
                                    answer=run.answer, model=run.model, dialect=run.dialect,
                                    prompt_version=run.prompt_version, confirmed_by=reason)

    def correct(self, run: RunRecord, reference: Reference) -> Experience | None:
        """Keep a correction for ``run`` when it was wrong on its known answer ``reference`` and a tool
        call in its root shows that answer (learn/corrections.py); returns it, if any."""
        task = run.reward("task")
        if run.status == "failed" or task is None or task >= 1.0 or not Path(run.root).is_dir():
            return None
        found = find_correction(run.question, Path(run.root), reference)
        if found is None:
            return None
        return self.experiences.add(run_id=run.id, question=run.question, root=run.root,
                                    trajectory=found.trajectory(OBSERVATION_CHARS), answer=found.answer,
                                    model=run.model, dialect=run.dialect, prompt_version=run.prompt_version,
                                    confirmed_by=CORRECTION)

    def correct_run(self, run_id: str, answer: str) -> Experience | None:
        """The user says ``answer`` is the right answer to run ``run_id``: score the run on it (a
        ``task`` reward, source ``user``), then keep the run if it had it right, else a correction.
        A correction and a score kept from an earlier answer are replaced. Returns the experience kept, if any."""
        run = self.store.get_run(run_id)
        reference = Reference(answer)
        earlier = self.experiences.by_run(run.id)
        if earlier is not None and earlier.confirmed_by == CORRECTION:  # the user's latest answer replaces it
            self.experiences.forget(earlier.id)
        score = answer_score(run.answer, answer)
        self.store.add_reward(run.id, RewardRecord("task", score, "user", f"user's answer: {answer}", time.time()),
                              replace=True)  # the user's latest answer is the reference, not an average
        run = self.store.get_run(run_id)
        return self.review(run) or self.correct(run, reference)

    def review_run(self, run_id: str) -> Experience | None:
        """:meth:`review` by id (after feedback was added)."""
        return self.review(self.store.get_run(run_id))
