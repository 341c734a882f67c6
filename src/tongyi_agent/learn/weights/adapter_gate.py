"""The held-out gate every trained LoRA adapter passes, and the promotion that follows a win.

SFT and GRPO train differently but must be judged alike: the embedded model *with* the adapter
against the same model *without* it, on the same held-out test tasks, through the one promotion gate
that prompt optimization uses too (learn/evaluation/gate.py). Promotion writes a profile
``<base>-<suffix>`` (base weights + ``lora = adapter``) into the user's models.ini, so the adapter is
used by choosing that profile and undone by not choosing it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tongyi_agent.agent.factory import build_agent
from tongyi_agent.agent.runtime import LoopRunner
from tongyi_agent.config import Settings
from tongyi_agent.config.profile_writer import upsert_profile
from tongyi_agent.config.profiles import ModelProfile
from tongyi_agent.learn.evaluation.gate import GateReport, paired_gate
from tongyi_agent.learn.evaluation.tasks import Task
from tongyi_agent.learn.prompt.demos import DEMOS_COMPONENT
from tongyi_agent.learn.prompt.optimizer import AgentRunner, Budget, Scorer
from tongyi_agent.learn.workspace import TrainingWorkspace

EvalProgress = Callable[[str, int, int], None]  # (arm "base" | "adapter", tasks done, tasks)


@dataclass
class GateResult:
    base_scores: list[float | None]  # None: the run errored
    adapter_scores: list[float | None]
    promoted: bool
    decision: str
    report: GateReport


def gate_adapter(settings: Settings, profile: ModelProfile, adapter: Path, tasks: list[Task],
                 workspace: TrainingWorkspace, on_eval: EvalProgress) -> GateResult:
    """Score ``profile`` without and with ``adapter`` on ``tasks``; decide with the promotion gate."""
    tuned = profile.model_copy(update={"lora": adapter})
    base = evaluate_profile(settings, profile, tasks, workspace, lambda d, n: on_eval("base", d, n))
    adapted = evaluate_profile(settings, tuned, tasks, workspace, lambda d, n: on_eval("adapter", d, n))
    report = paired_gate(base, adapted, has_reference=[t.has_reference for t in tasks], target=workspace.target)
    return GateResult(base, adapted, report.promoted, report.summary(), report)


def evaluate_profile(settings: Settings, profile: ModelProfile, tasks: list[Task], workspace: TrainingWorkspace,
                     on_done: Callable[[int, int], None]) -> list[float | None]:
    """One agent run per task with ``profile``, scored like prompt optimization scores (task reward first);
    None where the model failed."""
    agent = build_agent(settings.model_copy(update={"profile": profile}))
    active = workspace.active_prompt()  # both arms answer with the prompt users get today
    candidate = {"system": active.components["system"] if active else agent.spec.instructions}
    if active is not None and DEMOS_COMPONENT in active.components:
        candidate[DEMOS_COMPONENT] = active.components[DEMOS_COMPONENT]
    scorer = Scorer(workspace.target, workspace.training.performance_metrics.max_response_time)
    loop = LoopRunner()
    runner = AgentRunner(agent, scorer, Budget(len(tasks)), loop=loop,
                         demo_share=workspace.training.memory.budget_share)
    try:
        scores = []
        for done, task in enumerate(tasks, 1):
            scores.extend(runner.outcomes([task], candidate))
            on_done(done, len(tasks))
        return scores
    finally:
        loop.close()


def promote_adapter(settings: Settings, profile: ModelProfile, adapter: Path, *, suffix: str, run_id: str,
                    decision: str, how: str, command: str) -> tuple[str, str]:
    """Copy the adapter beside the user's config and point a ``<base>-<suffix>`` profile at it.

    ``how`` names the training in the profile's description ("SFT run sft-1a2b"), ``command`` the
    command that wrote it in the comment above the section. Returns (kept adapter path, profile name)."""
    name = f"{profile.name}-{suffix}"
    kept = settings.config_dir / "adapters" / f"{name}-{run_id}.gguf"
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(adapter, kept)
    values = {key: str(value) for key, value in profile.model_dump(exclude_defaults=True).items()
              if key not in ("name", "lora", "description")}
    values.update(model_id=f"{profile.model_id}+{suffix}", lora=str(kept),
                  description=f"{profile.name} with the LoRA adapter of {how}")
    upsert_profile(settings.config_dir / "models.ini", name, values,
                   comment=f"Written by {command} ({decision}).")
    return str(kept), name
