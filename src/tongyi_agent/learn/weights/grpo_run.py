"""One GRPO run end to end: prompts from recorded runs of checkable tasks, GRPO with LoRA, GGUF
conversion, the held-out gate, promotion as ``<base>-grpo``.

Tasks come from a task file (only tasks with an ``answer`` or ``answer_regex`` can reward a
sampled answer); their deterministic split keeps the test questions out of training and judges the
adapter on them, base vs adapter, with the same gate SFT uses (adapter_gate).

Shared by ``tongyi-cli --optimize --training-mode rl --grpo``.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tongyi_agent.config import Settings, user_cache_dir
from tongyi_agent.learn.evaluation.tasks import split_tasks
from tongyi_agent.learn.prompt.optimizer import NotEnoughTasksError
from tongyi_agent.learn.prompt.prompt_run import gather_tasks
from tongyi_agent.learn.weights.adapter_run import (
    AdapterRunError,
    Verdict,
    exclusive,
    finish,
    judge,
    require_open_weights,
    start,
)
from tongyi_agent.learn.weights.grpo_data import build_grpo_dataset
from tongyi_agent.learn.weights.grpo_train import GrpoOutcome, GrpoTrainSettings, prompt_tokens, train_grpo
from tongyi_agent.learn.weights.sft_train import load_base, require_training_modules, with_lora
from tongyi_agent.learn.workspace import TrainingWorkspace
from tongyi_agent.llm.weights import WEIGHT_SETS, ensure_weights

RUN_META = "grpo.run"  # {"id", "status", ...} of the latest GRPO run, for --resume
COMMAND = "tongyi-cli --optimize --training-mode rl --grpo"


GrpoError = AdapterRunError  # a GRPO run cannot start or continue (one-line message)


@dataclass
class GrpoRequest:
    tasks_file: Path | None = None
    seed: int = 0
    resume: bool = False
    train: GrpoTrainSettings = field(default_factory=GrpoTrainSettings)


@dataclass
class GrpoEvents:
    """Callbacks for a front end: what the run is doing, training progress, held-out evaluation."""

    on_stage: Callable[[str], None] = lambda _message: None
    on_step: Callable[[int, int, float | None], None] = lambda _step, _total, _reward: None
    on_eval: Callable[[str, int, int], None] = lambda _arm, _done, _total: None


@dataclass
class GrpoReport(Verdict):
    run_id: str
    profile: str
    tasks_with_reference: int
    tasks_used: int
    rows: int
    skipped: dict[str, int]
    train: GrpoOutcome | None


def check_profile(settings: Settings) -> None:
    """GRPO changes weights: only an embedded profile has weights here to change."""
    require_open_weights(settings, "GRPO")


def run_grpo(workspace: TrainingWorkspace, settings: Settings, request: GrpoRequest,
             events: GrpoEvents | None = None) -> GrpoReport:
    """Raises GrpoError, NotEnoughTasksError, TaskFileError, StoreError or TrainingUnavailableError."""
    check_profile(settings)
    require_training_modules()
    with exclusive(workspace):
        return _run(workspace, settings, request, events or GrpoEvents())


def _run(workspace: TrainingWorkspace, settings: Settings, request: GrpoRequest, events: GrpoEvents) -> GrpoReport:
    profile = settings.profile
    tasks = gather_tasks(workspace, request.tasks_file)
    if not any(t.has_reference for t in tasks):
        raise NotEnoughTasksError("GRPO needs tasks with a known answer to reward: give a task file with --tasks "
                                  "(JSONL with question and answer or answer_regex)")
    test = split_tasks(tasks, request.seed).test
    if not test:
        raise NotEnoughTasksError("no held-out test tasks to judge the adapter on; add tasks to the task file")
    with workspace.open_store() as store:
        dataset = build_grpo_dataset(store, tasks, dialect=profile.dialect,
                                     exclude_questions=[t.question for t in test])
    if not dataset.rows:
        reasons = ", ".join(f"{n} {why}" for why, n in dataset.skipped.most_common()) or "none recorded"
        raise GrpoError(f"no recorded run of the {dataset.tasks_with_reference} training tasks with a known answer "
                        f"to take prompts from (runs skipped: {reasons}); record some with tongyi-cli --train "
                        f"--model {profile.name} --root <the task's root> \"<question>\"")
    run_id = start(workspace, RUN_META, "grpo", resume=request.resume, profile=profile.name)
    work_dir = workspace.training.data_dir(workspace.root) / "grpo" / run_id
    rows = [row.to_trl() for row in dataset.rows]
    _write_rows(rows, work_dir / "prompts.jsonl")

    base_gguf = ensure_weights(WEIGHT_SETS[profile.weights or ""], user_cache_dir(settings.env))
    events.on_stage(f"loading {base_gguf.name} for training")
    model, tokenizer = load_base(base_gguf)
    lengths = prompt_tokens(tokenizer, rows)
    kept = [row for row, n in zip(rows, lengths, strict=True) if n <= request.train.max_prompt_length]
    skipped = dict(dataset.skipped)
    if len(kept) < len(rows):
        skipped[f"prompt over {request.train.max_prompt_length} tokens"] = len(rows) - len(kept)
    if not kept:
        raise GrpoError(f"every prompt is longer than max_prompt_length = {request.train.max_prompt_length} tokens "
                        "(training_config.ini [grpo])")
    model = with_lora(model, request.train.lora())
    events.on_stage(f"GRPO on {len(kept)} prompts: {request.train.steps} steps of "
                    f"{request.train.num_generations} sampled answers")
    outcome = train_grpo(model, tokenizer, kept, work_dir, request.train, dialect=profile.dialect,
                         resume=request.resume, on_progress=events.on_step)
    del model, tokenizer
    gc.collect()  # the training copy of the weights (GBs) is not needed to serve the adapter

    verdict = judge(settings, workspace, adapter_dir=outcome.adapter_dir, base_gguf=base_gguf, work_dir=work_dir,
                   test=test, suffix="grpo", run_id=run_id, how=f"GRPO run {run_id}", command=COMMAND,
                   on_stage=events.on_stage, on_eval=events.on_eval)
    report = GrpoReport(run_id, profile.name, dataset.tasks_with_reference, dataset.tasks_used, len(kept), skipped,
                        outcome, **verdict.fields())
    finish(workspace, RUN_META, run_id, profile.name, report)
    return report


def _write_rows(rows: list[dict[str, object]], path: Path) -> None:
    """The prompts trained on, beside the adapter, so a run can be inspected or repeated."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
