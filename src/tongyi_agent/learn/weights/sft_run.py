"""One SFT run end to end: data from the store, LoRA training, GGUF conversion, held-out gate, promotion.

The adapter is promoted only when the embedded model *with* it beats the same model *without* it
on the held-out test tasks (adapter_gate, shared with GRPO). Promotion writes a profile
``<base>-sft`` (base weights + ``lora = adapter``) into the user's models.ini, so the adapter is
used by choosing that profile and undone by not choosing it.

Shared by ``tongyi-cli --optimize --training-mode sft`` and ``benchmarks/sft_small_model.py``.
"""

from __future__ import annotations

import gc
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
from tongyi_agent.learn.weights.sft_data import build_sft_dataset, write_jsonl
from tongyi_agent.learn.weights.sft_train import (
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
from tongyi_agent.learn.workspace import TrainingWorkspace
from tongyi_agent.llm.weights import WEIGHT_SETS, ensure_weights

RUN_META = "sft.run"  # {"id", "status", ...} of the latest SFT run, for --resume and stats
MIN_EXAMPLES = 4
SftError = AdapterRunError  # an SFT run cannot start or continue (one-line message)


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
class SftReport(Verdict):
    run_id: str
    profile: str
    runs_used: int
    examples: int
    skipped: dict[str, int]
    tokens: int
    estimated_seconds: float
    train: TrainOutcome | None


def run_sft(workspace: TrainingWorkspace, settings: Settings, request: SftRequest,
            events: SftEvents | None = None) -> SftReport:
    """Raises SftError, NotEnoughTasksError, TaskFileError, StoreError or TrainingUnavailableError."""
    require_open_weights(settings, "SFT")
    require_training_modules()
    with exclusive(workspace):
        return _run(workspace, settings, request, events or SftEvents())


def _run(workspace: TrainingWorkspace, settings: Settings, request: SftRequest, events: SftEvents) -> SftReport:
    profile = settings.profile
    test = split_tasks(gather_tasks(workspace, request.tasks_file), request.seed).test
    if not test:
        raise NotEnoughTasksError("no held-out test tasks to judge the adapter on; give a task file with --tasks "
                                  "or record more runs with --train")
    with workspace.open_store() as store:
        dataset = build_sft_dataset(store, min_reward=request.min_reward, reward_name=workspace.target,
                                    exclude_questions=[t.question for t in test])
    if len(dataset.examples) < MIN_EXAMPLES:
        reasons = ", ".join(f"{n} {why}" for why, n in dataset.skipped.most_common()) or "no recorded runs"
        raise SftError(f"need at least {MIN_EXAMPLES} model calls from good runs to imitate, found "
                       f"{len(dataset.examples)} ({dataset.runs_used} runs used; skipped: {reasons}); record more "
                       f"runs with --train or lower --min-reward")
    run_id = start(workspace, RUN_META, "sft", resume=request.resume, profile=profile.name)
    work_dir = workspace.training.data_dir(workspace.root) / "sft" / run_id

    base_gguf = ensure_weights(WEIGHT_SETS[profile.weights or ""], user_cache_dir(settings.env))
    events.on_stage(f"loading {base_gguf.name} for training")
    model, tokenizer = load_base(base_gguf)
    all_rows = [ex.to_trl() for ex in dataset.examples]
    # A longer example would lose its reply to truncation (the end is cut), leaving nothing to learn.
    fitting = [(ex, row, n) for ex, row, n in zip(dataset.examples, all_rows, count_tokens(tokenizer, all_rows),
                                                  strict=True) if n <= request.lora.max_length]
    examples, rows, tokens = [f[0] for f in fitting], [f[1] for f in fitting], [f[2] for f in fitting]
    skipped = dict(dataset.skipped)
    if len(examples) < len(dataset.examples):
        skipped[f"model calls over max_length {request.lora.max_length} tokens"] = len(dataset.examples) - len(examples)
    if not examples:
        raise SftError(f"every example is longer than max_length = {request.lora.max_length} tokens "
                       "(training_config.ini [sft])")
    write_jsonl(examples, work_dir / "train.jsonl")
    model = with_lora(model, request.lora)
    estimated = estimate_seconds(tokens, request.lora.epochs, seconds_per_token(model))
    events.on_estimate(estimated, total_steps(len(rows), request.lora.epochs))
    outcome = train_lora(model, tokenizer, rows, work_dir, request.lora, resume=request.resume,
                         on_progress=events.on_step)
    del model, tokenizer
    gc.collect()  # the training copy of the weights (GBs) is not needed to serve the adapter

    verdict = judge(settings, workspace, adapter_dir=outcome.adapter_dir, base_gguf=base_gguf, work_dir=work_dir,
                   test=test, suffix="sft", run_id=run_id, how=f"SFT run {run_id}",
                   command="tongyi-cli --optimize --training-mode sft", on_stage=events.on_stage,
                   on_eval=events.on_eval)
    report = SftReport(run_id, profile.name, dataset.runs_used, len(rows), skipped, sum(tokens), estimated,
                       outcome, **verdict.fields())
    finish(workspace, RUN_META, run_id, profile.name, report)
    return report
