"""What every weight-training run (SFT, GRPO) does around its training: one run per project at a time,
a run id that ``--resume`` can find again, the run's state in the store for ``--training-stats``,
and, after training, conversion to GGUF, the held-out gate and promotion.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from dataclasses import fields as dataclass_fields
from pathlib import Path
from statistics import mean
from typing import Any

from tongyi_agent.config import Settings
from tongyi_agent.learn.evaluation.tasks import Task
from tongyi_agent.learn.schedule import OptimizationLock
from tongyi_agent.learn.weights.adapter_gate import EvalProgress, gate_adapter, promote_adapter
from tongyi_agent.learn.weights.gguf_lora import base_model_info, convert_peft_adapter
from tongyi_agent.learn.workspace import TrainingWorkspace
from tongyi_agent.store import StoreError


class AdapterRunError(RuntimeError):
    """A weight-training run cannot start or continue (one-line message)."""


def require_open_weights(settings: Settings, what: str) -> None:
    """Only an embedded profile has weights here to change."""
    profile = settings.profile
    if profile.provider != "embedded":
        raise AdapterRunError(f"{what} trains open weights: profile {profile.name} is {profile.provider}; "
                              "choose an embedded profile such as --model local-small")


@contextmanager
def exclusive(workspace: TrainingWorkspace) -> Iterator[None]:
    """Hold the project's optimization lock: two trainings would fight for memory and the store."""
    lock = OptimizationLock(workspace.training.data_dir(workspace.root) / "optimizer.lock")
    if not lock.acquire():
        raise StoreError(f"another optimization is running in this project (pid {lock.holder_pid()})")
    try:
        yield
    finally:
        lock.release()


def start(workspace: TrainingWorkspace, meta_key: str, kind: str, *, resume: bool, profile: str) -> str:
    """A new run id (``<kind>-xxxxxxxx``), or with ``resume`` the interrupted run's; marks it running."""
    with workspace.open_store() as store:
        previous = json.loads(store.get_meta(meta_key) or "null")
        if resume and (not previous or previous.get("status") != "running"):
            raise AdapterRunError(f"nothing to resume: no interrupted {kind.upper()} run in this project")
        run_id = str(previous["id"]) if resume else f"{kind}-{uuid.uuid4().hex[:8]}"
        store.set_meta(meta_key, json.dumps({"id": run_id, "status": "running", "started_at": time.time(),
                                             "profile": profile}))
    return run_id


def finish(workspace: TrainingWorkspace, meta_key: str, run_id: str, profile: str, report: Any) -> None:
    """Store the finished run's report (a dataclass) where --training-stats and --resume look."""
    data = asdict(report)
    train = data.get("train")
    if isinstance(train, dict) and "adapter_dir" in train:
        train["adapter_dir"] = str(train["adapter_dir"])
    with workspace.open_store() as store:
        store.set_meta(meta_key, json.dumps({"id": run_id, "status": "done", "finished_at": time.time(),
                                             "profile": profile, "report": data}, default=str))


@dataclass(kw_only=True)
class Verdict:
    """The held-out verdict on an adapter; SFT and GRPO reports extend it with what they trained."""

    test_tasks: int
    base_scores: list[float | None]  # None: that run errored (left out of the gate)
    adapter_scores: list[float | None]
    promoted: bool
    decision: str
    adapter_path: str  # the promoted copy, or the converted adapter in the run's folder
    promoted_profile: str | None = None

    @property
    def base_accuracy(self) -> float:
        return _mean(self.base_scores)

    @property
    def adapter_accuracy(self) -> float:
        return _mean(self.adapter_scores)

    def fields(self) -> dict[str, Any]:
        """As keyword arguments for a report class that extends Verdict."""
        return {f.name: getattr(self, f.name) for f in dataclass_fields(Verdict)}


def _mean(scores: list[float | None]) -> float:
    usable = [s for s in scores if s is not None]
    return mean(usable) if usable else 0.0


def judge(settings: Settings, workspace: TrainingWorkspace, *, adapter_dir: Path, base_gguf: Path, work_dir: Path,
          test: list[Task], suffix: str, run_id: str, how: str, command: str,
          on_stage: Callable[[str], None], on_eval: EvalProgress) -> Verdict:
    """Convert the PEFT adapter to GGUF, gate it on ``test`` and promote it as ``<base>-<suffix>`` if it wins."""
    on_stage("converting the adapter to GGUF")
    adapter_gguf = work_dir / "adapter.gguf"
    convert_peft_adapter(adapter_dir, adapter_gguf, base_model_info(base_gguf))
    profile = settings.profile
    gate = gate_adapter(settings, profile, adapter_gguf, test, workspace, on_eval)
    verdict = Verdict(test_tasks=len(test), base_scores=gate.base_scores, adapter_scores=gate.adapter_scores,
                      promoted=gate.promoted, decision=gate.decision, adapter_path=str(adapter_gguf))
    if gate.promoted:
        verdict.adapter_path, verdict.promoted_profile = promote_adapter(
            settings, profile, adapter_gguf, suffix=suffix, run_id=run_id, decision=gate.decision,
            how=how, command=command)
    return verdict
