"""LoRA fine-tuning of an embedded model with TRL, from its own GGUF file (extra ``[train]``).

transformers loads the GGUF dequantized (``gguf_file=``) and rebuilds the tokenizer and chat template
from it, so training sees the same template llama.cpp uses when serving. PEFT adds LoRA matrices to
the attention projections; TRL's SFTTrainer trains them on prompt-completion rows with the loss on
the completion only. Checkpoints are written every few steps so an interrupted run resumes. On a
machine with a CUDA GPU the same code trains there in bf16; otherwise on the CPU in fp32.

torch, transformers, peft, trl and datasets are imported inside functions: the core install has
none of them, and the CLI must be able to say "install the [train] extra" instead of crashing.
"""

from __future__ import annotations

import math
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TRAIN_EXTRA_HINT = "install the training extra: pip install -e '.[train]'"
TRAIN_MODULES = ("torch", "transformers", "peft", "trl", "datasets", "gguf")


class TrainingUnavailableError(RuntimeError):
    """The [train] extra is not installed (one-line message naming what is missing)."""


@dataclass(frozen=True)
class LoraSettings:
    rank: int = 16
    alpha: int = 32
    epochs: float = 2.0
    learning_rate: float = 2e-4
    max_length: int = 2048
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    save_steps: int = 10
    seed: int = 0


@dataclass
class TrainOutcome:
    adapter_dir: Path
    steps: int
    seconds: float
    peak_memory_bytes: int
    final_loss: float | None
    device: str
    resumed_from: str | None


ProgressFn = Callable[[int, int, float | None], None]  # (step, total steps, latest loss)


def require_training_modules() -> None:
    missing = [name for name in TRAIN_MODULES if _missing(name)]
    if missing:
        raise TrainingUnavailableError(f"fine-tuning needs {', '.join(missing)}; {TRAIN_EXTRA_HINT}")


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


def device_name() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def quiet_libraries() -> None:
    """The CLI draws its own progress; the libraries' bars and notices would interleave with it."""
    import warnings

    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    # PEFT looks for a Hugging Face config beside the GGUF to see if the vocabulary changed; it did not.
    warnings.filterwarnings("ignore", message="Could not find a config file", category=UserWarning)


def load_base(base_gguf: Path) -> tuple[Any, Any]:
    """(model, tokenizer) from the embedded GGUF; bf16 on a GPU, fp32 on the CPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_libraries()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    on_gpu = device_name() == "cuda"
    tokenizer = AutoTokenizer.from_pretrained(base_gguf.parent, gguf_file=base_gguf.name)
    model = AutoModelForCausalLM.from_pretrained(base_gguf.parent, gguf_file=base_gguf.name,
                                                 dtype=torch.bfloat16 if on_gpu else torch.float32)
    # The weights are dequantized on load; the leftover GGUF "quantizer" marker only makes the
    # Trainer refuse to train them.
    model.hf_quantizer = None
    model.is_quantized = False
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    if on_gpu:
        model = model.to("cuda")
    return model, tokenizer


def count_tokens(tokenizer: Any, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Tokens per row (prompt + completion, through the chat template)."""
    counts = []
    for row in rows:
        text = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=False)
        counts.append(len(tokenizer(text)["input_ids"]))
    return counts


def seconds_per_token(model: Any, tokens: int = 256) -> float:
    """Time one forward and backward pass on ``tokens`` tokens: the basis of the time estimate."""
    import torch

    ids = torch.randint(0, min(1000, model.config.vocab_size), (1, tokens), device=model.device)
    model(input_ids=ids[:, :16], labels=ids[:, :16]).loss.backward()  # warm-up: first-call set-up is not training
    start = time.perf_counter()
    model(input_ids=ids, labels=ids).loss.backward()
    model.zero_grad(set_to_none=True)
    return (time.perf_counter() - start) / tokens


def estimate_seconds(token_counts: Sequence[int], epochs: float, per_token: float) -> float:
    # Attention makes long rows a little dearer than linear; the calibration row is short, so add 10 %.
    return sum(token_counts) * epochs * per_token * 1.1


def with_lora(model: Any, settings: LoraSettings) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, target_modules=list(settings.target_modules),
                        lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def checkpoint_to_resume(work_dir: Path, resume: bool) -> tuple[Path, str | None]:
    """(the run's checkpoint folder, the latest checkpoint in it or None); resuming without one is an error."""
    from transformers.trainer_utils import get_last_checkpoint

    checkpoints = work_dir / "checkpoints"
    last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if resume and last is None:
        raise FileNotFoundError(f"nothing to resume: no checkpoint under {checkpoints}")
    return checkpoints, last


def train_lora(model: Any, tokenizer: Any, rows: Sequence[dict[str, Any]], work_dir: Path, settings: LoraSettings,
               *, resume: bool = False, on_progress: ProgressFn | None = None) -> TrainOutcome:
    """Train LoRA on ``rows`` (TRL prompt-completion); the adapter is saved to ``work_dir/adapter``.

    ``model`` must already carry the LoRA layers (:func:`with_lora`). With ``resume`` the latest
    checkpoint in ``work_dir/checkpoints`` is continued, and it is an error when there is none."""
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    checkpoints, last = checkpoint_to_resume(work_dir, resume)
    on_gpu = device_name() == "cuda"
    args = SFTConfig(
        output_dir=str(checkpoints), num_train_epochs=settings.epochs, per_device_train_batch_size=1,
        gradient_accumulation_steps=1, learning_rate=settings.learning_rate, lr_scheduler_type="constant",
        warmup_steps=0, logging_steps=1, save_strategy="steps", save_steps=settings.save_steps,
        save_total_limit=1, report_to="none", max_length=settings.max_length, completion_only_loss=True,
        use_cpu=not on_gpu, bf16=on_gpu, seed=settings.seed, dataloader_num_workers=0, disable_tqdm=True,
    )

    class Progress(TrainerCallback):  # type: ignore[misc]
        loss: float | None = None

        def on_log(self, _args: Any, state: Any, _control: Any, logs: dict[str, float] | None = None,
                   **_: Any) -> None:
            if logs and "loss" in logs:
                self.loss = float(logs["loss"])

        def on_step_end(self, _args: Any, state: Any, _control: Any, **_: Any) -> None:
            if on_progress:
                on_progress(state.global_step, state.max_steps, self.loss)

    progress = Progress()
    quiet_libraries()
    dataset = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[progress])
    trainer.remove_callback(PrinterCallback)  # our progress bar reports the loss; no raw dicts on stdout
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=last if resume else None)
    seconds = time.perf_counter() - start
    adapter_dir = work_dir / "adapter"
    trainer.model.save_pretrained(str(adapter_dir), safe_serialization=True)
    return TrainOutcome(adapter_dir, trainer.state.global_step, seconds, peak_memory_bytes(), progress.loss,
                        "cuda" if on_gpu else "cpu", last if resume else None)


def total_steps(rows: int, epochs: float) -> int:
    return max(1, math.ceil(rows * epochs))


def peak_memory_bytes() -> int:
    """Peak resident memory of this process (GPU memory too when training ran there)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            peak += torch.cuda.max_memory_allocated()
    return int(peak)
