"""One prompt-optimization run end to end: tasks, splits, the active prompt as seed, the search,
the held-out decision, and the new prompt version stored (and activated only if it won).

Shared by `tongyi-cli --optimize`, the Python API and the scheduler.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from tongyi_agent.agent.loop import Agent
from tongyi_agent.agent.prompts import default_components
from tongyi_agent.agent.runtime import LoopRunner
from tongyi_agent.learn.evaluation.experiments import ExperimentManager
from tongyi_agent.learn.evaluation.tasks import Task, load_tasks, split_tasks, tasks_from_runs
from tongyi_agent.learn.prompt.demos import DEMOS_COMPONENT, demo_from_experience, demos_from_text, demos_to_text
from tongyi_agent.learn.prompt.optimizer import (
    AgentRunner,
    Budget,
    OptimizationReport,
    Scorer,
    optimize_prompt,
    reflection_callable,
)
from tongyi_agent.learn.schedule import OptimizationLock
from tongyi_agent.learn.workspace import TrainingWorkspace
from tongyi_agent.llm.base import ChatModel
from tongyi_agent.store import ExperienceStore, StoreError
from tongyi_agent.store.prompts import PromptStore, PromptVersion

RUN_META = "optimizer.run"  # {"id", "status", "started_at", ...} of the latest run, for --resume and stats


@dataclass
class OptimizeRequest:
    iterations: int
    budget_rollouts: int
    tasks_file: Path | None = None
    seed: int = 0
    resume: bool = False
    # "rewrite": GEPA with a strong reflection model; "rule": one rule per proposal (small models, see
    # optimizer.rule_proposer); "none": no instruction proposals, demonstrations only.
    proposer: str = "rewrite"
    demos: bool = True  # search demonstration sets too


@dataclass
class OptimizeOutcome:
    report: OptimizationReport
    run_id: str
    candidate: PromptVersion | None  # the stored new version (None when the search found nothing new)
    seed_version: PromptVersion


def gather_tasks(workspace: TrainingWorkspace, tasks_file: Path | None) -> list[Task]:
    if tasks_file is not None:
        return load_tasks(tasks_file, workspace.root)
    with workspace.open_store() as store:
        return tasks_from_runs(store, workspace.root)


def run_prompt_optimization(workspace: TrainingWorkspace, agent: Agent, request: OptimizeRequest, *,
                            reflection_model: ChatModel | None = None,
                            reflection: Callable[[str], str] | None = None,
                            on_rollout: Callable[[Budget], None] | None = None,
                            on_best: Callable[[float], None] | None = None,
                            on_log: Callable[[str], None] | None = None) -> OptimizeOutcome:
    """Raises NotEnoughTasksError, TaskFileError or StoreError (one-line messages).

    Only one optimization runs per project at a time (a lock file beside the store)."""
    lock = OptimizationLock(workspace.training.data_dir(workspace.root) / "optimizer.lock")
    if not lock.acquire():
        raise StoreError(f"another prompt optimization is running in this project (pid {lock.holder_pid()})")
    try:
        return _optimize(workspace, agent, request, reflection_model, reflection, on_rollout, on_best, on_log)
    finally:
        lock.release()


def _optimize(workspace: TrainingWorkspace, agent: Agent, request: OptimizeRequest, reflection_model: ChatModel | None,
              reflection: Callable[[str], str] | None, on_rollout: Callable[[Budget], None] | None,
              on_best: Callable[[float], None] | None, on_log: Callable[[str], None] | None) -> OptimizeOutcome:
    tasks = gather_tasks(workspace, request.tasks_file)
    splits = split_tasks(tasks, request.seed)
    with workspace.open_store() as store:
        prompts = PromptStore(store)
        seed_version = prompts.ensure_default(default_components())
        run_id = _run_id(store, request.resume)
        roots = {str(t.root) for t in tasks}
        pool = [demo_from_experience(e) for e in ExperienceStore(store).list(status="active") if e.root in roots]
        store.set_meta(RUN_META, json.dumps({"id": run_id, "status": "running", "started_at": time.time(),
                                             "seed_version": seed_version.id}))
    training = workspace.training
    scorer = Scorer(training.prompt_optimization.optimization_target, training.performance_metrics.max_response_time)
    loop = LoopRunner()
    # examples=[]: the runner shows each candidate's own demonstrations, nothing else.
    runner = AgentRunner(agent.variant(forced_answer=seed_version.components.get("forced_answer"), examples=[]),
                         scorer, Budget(request.budget_rollouts), on_rollout, loop,
                         demo_share=training.memory.budget_share)
    try:
        report = optimize_prompt(
            runner, seed_version.components["system"], splits,
            reflection=None if request.proposer == "none" else
            reflection or reflection_callable(reflection_model or agent.model, loop),
            iterations=request.iterations, run_dir=workspace.training.data_dir(workspace.root) / "optimizer" / run_id,
            seed=request.seed, population=workspace.training.prompt_optimization.population_size,
            proposer=request.proposer, seed_demos=demos_from_text(seed_version.components.get(DEMOS_COMPONENT)),
            demo_pool=pool, demo_size=training.memory.examples or 2, demos=request.demos,
            on_best=on_best, on_log=on_log)
    finally:
        loop.close()

    with workspace.open_store() as store:
        prompts = PromptStore(store)
        candidate = None
        components = {**seed_version.components, "system": report.best_prompt}
        components.pop(DEMOS_COMPONENT, None)
        if report.best_demos:
            components[DEMOS_COMPONENT] = demos_to_text(report.best_demos)
        if components != seed_version.components:
            scores = {"validation": report.best_validation, "test": report.best_test,
                      "seed_validation": report.seed_validation, "seed_test": report.seed_test}
            candidate = prompts.add(components,
                                    parent=seed_version.id, author=f"optimizer:{run_id}", scores=scores,
                                    note=report.decision)
            if report.promoted and workspace.training.experiments.enable_ab_testing:
                # The held-out win is confirmed on live traffic before the candidate replaces the prompt.
                experiment = ExperimentManager(store, workspace.training.experiments, workspace.target)
                experiment.start(candidate.id)
                report.decision += "; started an A/B experiment against the active prompt"
            elif report.promoted:
                candidate = prompts.activate(candidate.id, reason=f"optimizer {run_id}: {report.decision}")
        store.set_meta(RUN_META, json.dumps({"id": run_id, "status": "done", "finished_at": time.time(),
                                             "seed_version": seed_version.id,
                                             "candidate": candidate.id if candidate else None,
                                             "report": asdict(report)}))
    return OptimizeOutcome(report, run_id, candidate, seed_version)


def _run_id(store: object, resume: bool) -> str:
    """A new run id, or with `resume` the id of the interrupted run (gepa resumes from its run_dir)."""
    previous = json.loads(store.get_meta(RUN_META) or "null")  # type: ignore[attr-defined]
    if resume:
        if not previous or previous.get("status") != "running":
            raise StoreError("nothing to resume: no interrupted optimization run in this project")
        return str(previous["id"])
    return f"opt-{uuid.uuid4().hex[:8]}"
