"""GRPO with TRL on an embedded model, rewarded by the project's own task reward (extra ``[train]``).

For each prompt (the evidence a recorded run had gathered when it answered, see grpo_data) the
trainer samples ``num_generations`` completions, scores each with the reward functions below, and
raises the likelihood of the completions that scored above their group's mean (GRPO's advantage is
the reward relative to the other samples of the same prompt, so no value model is needed). LoRA
keeps the trained parameters to a few MB, and the adapter converts to GGUF like the SFT one.

The rewards are the ones every recorded run gets: ``task`` (rewards.task_reward: regex, contained
answer or token F1 against the task's reference) on the answer that the profile's dialect parses
out of the completion, so a completion is judged as the agent loop would read it; plus a small
``answer_format`` reward for giving the answer in the protocol's own form ("Final Answer:" for
ReAct, ``<answer>`` for Tongyi), because the dialects accept bare prose as a fallback answer and a
model that drifts into prose also stops making tool calls.

Model loading, LoRA wrapping, quiet logs and peak memory come from sft_train; only what GRPO does
differently lives here. torch/transformers/trl are imported inside functions (see sft_train).
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tongyi_agent.agent.dialects import Dialect, get_dialect
from tongyi_agent.agent.steps import RunResult
from tongyi_agent.learn.evaluation.rewards import task_reward
from tongyi_agent.learn.weights.sft_train import (
    LoraSettings,
    ProgressFn,
    TrainOutcome,
    checkpoint_to_resume,
    device_name,
    peak_memory_bytes,
    quiet_libraries,
)
from tongyi_agent.llm.base import ChatResponse, Usage

# The format reward nudges; the task reward decides. A wrong answer in perfect form scores 0.2,
# a right one in prose 1.0.
FORMAT_WEIGHT = 0.2
# What a dialect writes before the answer when it follows its protocol. Native function calling
# has no marker: any text reply is its answer.
ANSWER_MARKERS: dict[str, re.Pattern[str]] = {
    "react": re.compile(r"Final Answer\s*:", re.I),
    "tongyi": re.compile(r"<answer>"),
}


@dataclass(frozen=True)
class GrpoTrainSettings:
    steps: int = 3
    num_generations: int = 4
    max_completion_length: int = 64
    max_prompt_length: int = 3072
    learning_rate: float = 1e-5
    rank: int = 16
    alpha: int = 32
    beta: float = 0.0
    temperature: float = 1.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    save_steps: int = 10
    seed: int = 0

    def lora(self) -> LoraSettings:
        """The LoRA shape for sft_train.with_lora (its training fields are unused by GRPO)."""
        return LoraSettings(rank=self.rank, alpha=self.alpha, learning_rate=self.learning_rate,
                            target_modules=self.target_modules, save_steps=self.save_steps, seed=self.seed)


@dataclass
class GrpoOutcome(TrainOutcome):
    """What training did, plus the mean rewards logged at each step (keys: reward, task, answer_format)."""

    history: list[dict[str, float]] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------------
# Rewards (TRL calls them with the batch's prompts, completions and the dataset's extra columns)


def parse_answer(dialect: Dialect, text: str) -> tuple[str | None, bool]:
    """(the answer the agent loop would take from ``text`` or None, whether it used the protocol's form)."""
    parsed = dialect.parse(ChatResponse(content=text), set())
    if parsed.answer is None or parsed.tool_calls or parsed.error:
        return None, False
    marker = ANSWER_MARKERS.get(dialect.name)
    return parsed.answer, bool(parsed.answer.strip()) and (marker is None or marker.search(text) is not None)


def answer_score(prediction: str, answer: str | None, answer_regex: str | None) -> float:
    """rewards.task_reward on a bare answer: the same score a recorded run of the task gets."""
    result = RunResult(question="", answer=prediction, sources=[], steps=[], model="", seconds=0.0, usage=Usage(),
                       stop_reason="answer")
    try:
        return task_reward(result, answer, answer_regex) or 0.0
    except re.error:
        return 0.0


def _text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    return "".join(str(m.get("content") or "") for m in completion if m.get("role") == "assistant")


def task(prompts: Sequence[Any], completions: Sequence[Any], *, dialect: str, answer: Sequence[str | None],
         answer_regex: Sequence[str | None], **_: Any) -> list[float]:
    """The task reward of each completion's parsed answer; 0 when it gives none (a tool call, garbage)."""
    speaker = get_dialect(dialect)
    scores = []
    for completion, gold, pattern in zip(completions, answer, answer_regex, strict=True):
        parsed, _ = parse_answer(speaker, _text(completion))
        scores.append(0.0 if parsed is None else answer_score(parsed, gold, pattern))
    return scores


def answer_format(prompts: Sequence[Any], completions: Sequence[Any], *, dialect: str, **_: Any) -> list[float]:
    """1 when the completion gives a non-empty answer in the dialect's own form, else 0."""
    speaker = get_dialect(dialect)
    return [float(parse_answer(speaker, _text(c))[1]) for c in completions]


def reward_functions(dialect: str) -> list[Callable[..., list[float]]]:
    """The reward functions for a profile's dialect; partials keep TRL's logged names (task, answer_format)."""
    get_dialect(dialect)  # an unknown dialect fails here, not in the middle of training
    return [functools.partial(task, dialect=dialect), functools.partial(answer_format, dialect=dialect)]


# ----------------------------------------------------------------------------------------------------
# Training


def prompt_tokens(tokenizer: Any, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Tokens of each row's prompt through the chat template, as the trainer will feed it."""
    return [len(tokenizer(tokenizer.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True),
                          add_special_tokens=False)["input_ids"]) for r in rows]


def train_grpo(model: Any, tokenizer: Any, rows: Sequence[dict[str, Any]], work_dir: Path,
               settings: GrpoTrainSettings, *, dialect: str, resume: bool = False,
               on_progress: ProgressFn | None = None) -> GrpoOutcome:
    """Run ``settings.steps`` GRPO steps on ``rows`` (grpo_data.GrpoRow.to_trl); adapter to ``work_dir/adapter``.

    ``model`` must already carry the LoRA layers (sft_train.with_lora). Each step takes one prompt
    and its ``num_generations`` samples. ``on_progress`` gets (step, steps, mean reward of the step).
    With ``resume`` the latest checkpoint in ``work_dir/checkpoints`` is continued."""
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    checkpoints, last = checkpoint_to_resume(work_dir, resume)
    on_gpu = device_name() == "cuda"
    args = GRPOConfig(
        output_dir=str(checkpoints), max_steps=settings.steps, per_device_train_batch_size=settings.num_generations,
        gradient_accumulation_steps=1, num_generations=settings.num_generations,
        max_completion_length=settings.max_completion_length, temperature=settings.temperature,
        learning_rate=settings.learning_rate, lr_scheduler_type="constant", warmup_steps=0, beta=settings.beta,
        reward_weights=[1.0, FORMAT_WEIGHT], logging_steps=1, save_strategy="steps", save_steps=settings.save_steps,
        save_total_limit=1, report_to="none", use_cpu=not on_gpu, bf16=on_gpu,
        # Recomputing activations costs time but bounds memory: without it 2 samples of ~2000-token prompts
        # peaked at 15 GiB on the 0.5B in fp32 (the activations of every layer are kept for the backward pass).
        gradient_checkpointing=True, seed=settings.seed, dataloader_num_workers=0, disable_tqdm=True,
    )

    class Progress(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.history: list[dict[str, float]] = []
            self.loss: float | None = None

        def on_log(self, _args: Any, state: Any, _control: Any, logs: dict[str, float] | None = None,
                   **_: Any) -> None:
            if not logs or "reward" not in logs:
                return
            self.loss = float(logs["loss"]) if "loss" in logs else self.loss
            entry = {"step": float(state.global_step), "reward": float(logs["reward"])}
            for name in ("task", "answer_format"):
                if f"rewards/{name}/mean" in logs:
                    entry[name] = float(logs[f"rewards/{name}/mean"])
            self.history.append(entry)
            if on_progress:
                on_progress(state.global_step, state.max_steps, entry["reward"])

    progress = Progress()
    quiet_libraries()
    tokenizer.padding_side = "left"  # GRPOTrainer's requirement: generation continues where each prompt ends
    dataset = Dataset.from_list([dict(row) for row in rows])
    trainer = GRPOTrainer(model=model, reward_funcs=reward_functions(dialect), args=args, train_dataset=dataset,
                          processing_class=tokenizer, callbacks=[progress])
    trainer.remove_callback(PrinterCallback)  # the front end reports progress; no raw dicts on stdout
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=last if resume else None)
    seconds = time.perf_counter() - start
    adapter_dir = work_dir / "adapter"
    # With beta > 0 TRL adds a frozen "ref" copy of the adapter; only the trained one is kept.
    trainer.model.save_pretrained(str(adapter_dir), safe_serialization=True, selected_adapters=["default"])
    return GrpoOutcome(adapter_dir, trainer.state.global_step, seconds, peak_memory_bytes(), progress.loss,
                       "cuda" if on_gpu else "cpu", last if resume else None, progress.history)
