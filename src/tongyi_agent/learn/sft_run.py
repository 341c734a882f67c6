"""One SFT run end to end: data from the store, LoRA training, GGUF conversion, held-out gate, promotion.

The adapter is promoted only when the embedded model *with* it beats the same model *without* it
on the held-out test tasks (adapter_gate, shared with GRPO). Promotion writes a profile
``<base>-sft`` (base weights + ``lora = adapter``) into the user's models.ini, so the adapter is
used by choosing that profile and undone by not choosing it.

Shared by ``tongyi-cli --optimize --training-mode sft`` and ``benchmarks/sft_small_model.py``.
"""

from __future__ import annotations

import gc
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import mean

from tongyi_agent.config import Settings, user_cache_dir
from tongyi_agent.learn.adapter_gate import gate_adapter, promote_adapter
from tongyi_agent.learn.gguf_lora import base_model_info, convert_peft_adapter
from tongyi_agent.learn.optimizer import NotEnoughTasksError
from tongyi_agent.learn.prompt_run import gather_tasks
from tongyi_agent.learn.schedule import OptimizationLock
from tongyi_agent.learn.sft_data import build_sft_dataset, write_jsonl
from tongyi_agent.learn.sft_train import (
    LoraSettings,
    TrainOutcome,
    count_tokens,
    estimate_seconds,
    load_base,
    require_training_modules,
    seconds_per_token,
    total_steps,
    train_lora,
    with_lora,
)
from tongyi_agent.learn.tasks import split_tasks
from tongyi_agent.learn.workspace import TrainingWorkspace
from tongyi_agent.llm.weights import WEIGHT_SETS, ensure_weights
from tongyi_agent.store import StoreError

RUN_META = "sft.run"  # {"id", "status", ...} of the latest SFT run, for --resume and stats
MIN_EXAMPLES = 4


class SftError(RuntimeError):
    """An SFT run cannot start or continue (one-line message)."""


@dataclass
class SftRequest:
    min_reward: float = 0.8
    tasks_file: Path | None = None
    seed: int = 0
    resume: bool = False
    lora: LoraSettings = field(default_factory=LoraSettings)


@dataclass
class SftEvents:
    """Callbacks for a front end: what the run is doing, the time estimate, training progress."""

    on_stage: Callable[[str], None] = lambda _message: None
    on_estimate: Callable[[float, int], None] = lambda _seconds, _steps: None
    on_step: Callable[[int, int, float | None], None] = lambda _step, _total, _loss: None
    on_eval: Callable[[str, int, int], None] = lambda _arm, _done, _total: None


@dataclass
class SftReport:
    run_id: str
    profile: str
    runs_used: int
    examples: int
    skipped: dict[str, int]
    tokens: int
    estimated_seconds: float
    train: TrainOutcome | None
    test_tasks: int
    base_scores: list[float]
    adapter_scores: list[float]
    promoted: bool
    decision: str
    adapter_path: str | None = None
    promoted_profile: str | None = None

    @property
    def base_accuracy(self) -> float:
        return mean(self.base_scores) if self.base_scores else 0.0

    @property
    def adapter_accuracy(self) -> float:
        return mean(self.adapter_scores) if self.adapter_scores else 0.0


def run_sft(workspace: TrainingWorkspace, settings: Settings, request: SftRequest,
            events: SftEvents | None = None) -> SftReport:
    """Raises SftError, NotEnoughTasksError, TaskFileError, StoreError or TrainingUnavailableError."""
    profile = settings.profile
    if profile.provider != "embedded":
        raise SftError(f"SFT trains open weights: profile {profile.name} is {profile.provider}; "
                       "choose an embedded profile such as --model local-small")
    require_training_modules()
    lock = OptimizationLock(workspace.training.data_dir(workspace.root) / "optimizer.lock")
    if not lock.acquire():
        raise StoreError(f"another optimization is running in this project (pid {lock.holder_pid()})")
    try:
        return _run(workspace, settings, request, events or SftEvents())
    finally:
        lock.release()


def _run(workspace: TrainingWorkspace, settings: Settings, request: SftRequest, events: SftEvents) -> SftReport:
    profile = settings.profile
    test = split_tasks(gather_tasks(workspace, request.tasks_file), request.seed).test
    if not test:
        raise NotEnoughTasksError("no held-out test tasks to judge the adapter on; give a task file with --tasks "
                                  "or record more runs with --train")
    with workspace.open_store() as store:
        run_id = _run_id(store.get_meta(RUN_META), request.resume)
        dataset = build_sft_dataset(store, min_reward=request.min_reward, reward_name=workspace.target,
                                    exclude_questions=[t.question for t in test])
        store.set_meta(RUN_META, json.dumps({"id": run_id, "status": "running", "started_at": time.time(),
                                             "profile": profile.name}))
    if len(dataset.examples) < MIN_EXAMPLES:
        reasons = ", ".join(f"{n} {why}" for why, n in dataset.skipped.most_common()) or "no recorded runs"
        raise SftError(f"need at least {MIN_EXAMPLES} model calls from good runs to imitate, found "
                       f"{len(dataset.examples)} ({dataset.runs_used} runs used; skipped: {reasons}); record more "
                       f"runs with --train or lower --min-reward")
    work_dir = workspace.training.data_dir(workspace.root) / "sft" / run_id
    rows = [ex.to_trl() for ex in dataset.examples]
    write_jsonl(dataset.examples, work_dir / "train.jsonl")

    base_gguf = ensure_weights(WEIGHT_SETS[profile.weights or ""], user_cache_dir(settings.env))
    events.on_stage(f"loading {base_gguf.name} for training")
    model, tokenizer = load_base(base_gguf)
    model = with_lora(model, request.lora)
    tokens = count_tokens(tokenizer, rows, request.lora.max_length)
    steps = total_steps(len(rows), request.lora.epochs)
    estimated = estimate_seconds(tokens, request.lora.epochs, seconds_per_token(model))
    events.on_estimate(estimated, steps)
    outcome = train_lora(model, tokenizer, rows, work_dir, request.lora, resume=request.resume,
                         on_progress=events.on_step)
    del model, tokenizer
    gc.collect()  # the training copy of the weights (GBs) is not needed to serve the adapter

    events.on_stage("converting the adapter to GGUF")
    adapter_gguf = work_dir / "adapter.gguf"
    convert_peft_adapter(outcome.adapter_dir, adapter_gguf, base_model_info(base_gguf))
    gate = gate_adapter(settings, profile, adapter_gguf, test, workspace, events.on_eval)
    report = SftReport(run_id, profile.name, dataset.runs_used, len(rows), dict(dataset.skipped), sum(tokens),
                       estimated, outcome, len(test), gate.base_scores, gate.adapter_scores, gate.promoted,
                       gate.decision, str(adapter_gguf))
    if gate.promoted:
        report.adapter_path, report.promoted_profile = promote_adapter(
            settings, profile, adapter_gguf, suffix="sft", run_id=run_id, decision=gate.decision,
            how=f"SFT run {run_id}", command="tongyi-cli --optimize --training-mode sft")
    with workspace.open_store() as store:
        store.set_meta(RUN_META, json.dumps({"id": run_id, "status": "done", "finished_at": time.time(),
                                             "profile": profile.name, "report": _jsonable(report)}))
    return report


def _run_id(previous_json: str | None, resume: bool) -> str:
    previous = json.loads(previous_json or "null")
    if resume:
        if not previous or previous.get("status") != "running":
            raise SftError("nothing to resume: no interrupted SFT run in this project")
        return str(previous["id"])
    return f"sft-{uuid.uuid4().hex[:8]}"


def _jsonable(report: SftReport) -> dict[str, object]:
    data = asdict(report)
    if report.train is not None:
        data["train"]["adapter_dir"] = str(report.train.adapter_dir)
    return data
