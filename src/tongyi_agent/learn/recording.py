"""Running a question as a recorded trajectory: spans, rewards and the run in one store transaction.

The agent's model and tools are wrapped by the trace recorder for the duration of one run, so
neither knows it is recorded. A backend failure is recorded as a failed run (with the spans up to
the failure) and re-raised; a crash of the process loses only the run in flight.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from tongyi_agent.agent.loop import Agent
from tongyi_agent.agent.routing import run_with_fallback
from tongyi_agent.agent.steps import RunResult
from tongyi_agent.config.profiles import ModelProfile
from tongyi_agent.config.training import TrainingConfig
from tongyi_agent.learn.corrections import Reference
from tongyi_agent.learn.evaluation.rewards import Reward, compute_rewards
from tongyi_agent.llm.base import ChatMessage, ModelError
from tongyi_agent.store import RewardRecord, RunRecord, SpanRecord, TrajectoryStore
from tongyi_agent.trace.recorder import Recorder, RecordingModel, RecordingRegistry

SpanSink = Callable[[RunRecord, list[SpanRecord], list[RewardRecord]], None]


@dataclass
class RecordedRun:
    result: RunResult
    run_id: str
    rewards: list[Reward]
    reward: float | None  # the configured optimization target
    reference: Reference | None = None  # the known answer it was asked with, if any


def rewards_for(result: RunResult, training: TrainingConfig, *, task_answer: str | None = None,
                task_answer_regex: str | None = None) -> tuple[list[Reward], float | None]:
    """Every reward of a finished run as the training config defines them, and the target's value."""
    return compute_rewards(
        result, max_response_time=training.performance_metrics.max_response_time,
        target=training.prompt_optimization.optimization_target, custom=training.training.reward_function,
        task_answer=task_answer, task_answer_regex=task_answer_regex, citation_rate=result.verification_rate)


def _status(result: RunResult) -> str:
    return "success" if result.stop_reason == "answer" else "forced"


class RunRecorder:
    """Records every run of a session into `store`, with the rewards `training` configures."""

    def __init__(self, store: TrajectoryStore, training: TrainingConfig, *, backend: str, dialect: str,
                 prompt_version: str | None = None, sinks: Iterable[SpanSink] = (),
                 cost: Callable[[int, int], float] | None = None) -> None:
        """`cost(input_tokens, output_tokens)` prices a run in USD (the profile's prices)."""
        self.cost = cost
        self.store = store
        self.training = training
        self.backend = backend
        self.dialect = dialect
        self.prompt_version = prompt_version
        self.sinks = list(sinks)

    @classmethod
    def for_profile(cls, store: TrajectoryStore, training: TrainingConfig, profile: ModelProfile,
                    sinks: Iterable[SpanSink] = (), prompt_version: str | None = None) -> RunRecorder:
        """A recorder for runs of `profile`: its provider, dialect and prices."""
        return cls(store, training, backend=profile.provider, dialect=profile.dialect, sinks=sinks,
                   cost=profile.cost, prompt_version=prompt_version)

    async def run(self, agent: Agent, question: str, history: list[ChatMessage] | None = None, *,
                  fallback: Callable[[], Agent] | None = None, task_answer: str | None = None,
                  task_answer_regex: str | None = None, run_id: str | None = None,
                  ab_arm: str | None = None, prompt_version: str | None = None,
                  metadata: dict[str, Any] | None = None) -> RecordedRun:
        """Run and record one question; with `fallback`, a failed primary is retried there and both
        attempts' spans are kept in the one trajectory."""
        recorder = Recorder()

        def recorded(target: Agent) -> Agent:
            return target.with_components(RecordingModel(target.model, recorder),
                                          RecordingRegistry(target.tools, recorder))

        started_at = time.time()
        try:
            result = await run_with_fallback(agent, question, history, fallback=fallback, wrap=recorded)
        except ModelError as exc:
            common = self._common(agent, started_at, run_id, ab_arm, prompt_version)
            run = RunRecord(question=question, answer="", status="failed", model=agent.model.name,
                            error=str(exc), seconds=time.time() - started_at, **common)
            self._write(run, recorder.spans, [])
            raise
        result.experiences = [int(i) for i in (metadata or {}).get("experiences") or []]
        target = self.training.prompt_optimization.optimization_target
        rewards, value = rewards_for(result, self.training, task_answer=task_answer,
                                     task_answer_regex=task_answer_regex)
        run = RunRecord(
            question=question, answer=result.answer, status=_status(result), model=result.model,
            seconds=result.seconds, input_tokens=result.usage.input_tokens,
            output_tokens=result.usage.output_tokens, model_calls=result.model_calls,
            tool_calls=len(result.tool_calls),
            tools_used=[s.call.name for s in result.tool_calls if not s.skipped],
            sources=[{"path": s.path, "line": s.line, "text": s.text} for s in result.sources],
            stop_reason=result.stop_reason, grounded=result.grounded,
            **self._common(agent, started_at, run_id, ab_arm, prompt_version),
        )
        run.cost = self.cost(result.usage.input_tokens, result.usage.output_tokens) if self.cost else None
        if result.routing:
            run.metadata["fallback"] = result.routing
        run.metadata.update(metadata or {})
        run.metadata["target"] = target
        run.metadata["verification_rate"] = result.verification_rate
        run.metadata["evidence"] = [asdict(e) for e in result.evidence]
        records = [RewardRecord(r.name, r.value, r.source, r.detail, time.time()) for r in rewards]  # type: ignore[arg-type]
        self._write(run, recorder.spans, records)
        known = Reference(task_answer, task_answer_regex) if task_answer or task_answer_regex else None
        return RecordedRun(result, run.id, rewards, value, known)

    def _common(self, agent: Agent, started_at: float, run_id: str | None, ab_arm: str | None,
                prompt_version: str | None) -> dict[str, object]:
        common: dict[str, object] = {
            "backend": self.backend, "dialect": self.dialect, "prompt_version": prompt_version or self.prompt_version,
            "training_mode": self.training.mode, "root": str(agent.root), "started_at": started_at, "ab_arm": ab_arm}
        if run_id:
            common["id"] = run_id
        return common

    def _write(self, run: RunRecord, spans: list[SpanRecord], rewards: list[RewardRecord]) -> None:
        self.store.record_run(run, spans, rewards)
        for sink in self.sinks:
            sink(run, spans, rewards)
