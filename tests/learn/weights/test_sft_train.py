"""LoRA training with TRL on a tiny random Qwen2, then the adapter converted to GGUF and read back.

The tiny model and tokenizer (tests/learn/weights/tiny_lm.py) need no downloaded weights; training takes seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("trl")
torch = pytest.importorskip("torch")

from tests.learn.weights.tiny_lm import base_info, tiny_model, tiny_tokenizer  # noqa: E402
from tongyi_agent.learn.weights.gguf_lora import convert_peft_adapter, read_gguf_lora  # noqa: E402
from tongyi_agent.learn.weights.sft_train import (  # noqa: E402
    LoraSettings,
    count_tokens,
    estimate_seconds,
    seconds_per_token,
    total_steps,
    train_lora,
    with_lora,
)


def _rows() -> list[dict]:
    prompt = [{"role": "system", "content": "you are careful"},
              {"role": "user", "content": "which port does billing use ?"}]
    return [{"prompt": prompt, "completion": [{"role": "assistant", "content": "the answer is 9090"}]}] * 4


def test_lora_training_learns_the_completion_and_converts_to_gguf(tmp_path: Path) -> None:
    tokenizer = tiny_tokenizer()
    model = tiny_model(len(tokenizer))
    info = base_info(model)
    settings = LoraSettings(rank=4, alpha=8, epochs=5, learning_rate=5e-2, max_length=64, save_steps=100)
    peft_model = with_lora(model, settings)
    rows = _rows()
    tokens = count_tokens(tokenizer, rows)
    assert all(10 < n < 30 for n in tokens)
    assert estimate_seconds(tokens, settings.epochs, seconds_per_token(peft_model, 16)) > 0
    progress: list[tuple[int, int, float | None]] = []

    outcome = train_lora(peft_model, tokenizer, rows, tmp_path / "work", settings,
                         on_progress=lambda step, total, loss: progress.append((step, total, loss)))

    assert outcome.steps == total_steps(len(rows), settings.epochs) == 20
    assert progress[-1][:2] == (20, 20)
    losses = [loss for _, _, loss in progress if loss is not None]
    assert outcome.final_loss is not None and outcome.final_loss < losses[0]  # one example repeated: it must fall
    assert outcome.device == "cpu" and outcome.peak_memory_bytes > 0
    lora = convert_peft_adapter(outcome.adapter_dir, tmp_path / "adapter.gguf", info)
    back = read_gguf_lora(tmp_path / "adapter.gguf")
    assert set(back.tensors) == set(lora.tensors) and len(back.tensors) == 2 * 4 * 2  # 2 blocks, q/k/v/o, A+B
    trained_b = peft_model.base_model.model.model.layers[1].self_attn.v_proj.lora_B["default"].weight
    np.testing.assert_allclose(back.tensors["blk.1.attn_v.weight.lora_b"], trained_b.detach().numpy())
    assert np.abs(back.tensors["blk.1.attn_v.weight.lora_b"]).sum() > 0  # B starts at zero: it was trained


def test_resume_without_a_checkpoint_is_an_error(tmp_path: Path) -> None:
    tokenizer = tiny_tokenizer()
    peft_model = with_lora(tiny_model(len(tokenizer)), LoraSettings(rank=2, alpha=4))
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train_lora(peft_model, tokenizer, _rows(), tmp_path / "work", LoraSettings(), resume=True)


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    tokenizer = tiny_tokenizer()
    settings = LoraSettings(rank=2, alpha=4, epochs=1, learning_rate=1e-2, max_length=64, save_steps=2)
    first = train_lora(with_lora(tiny_model(len(tokenizer)), settings), tokenizer, _rows(), tmp_path / "w", settings)
    assert first.steps == 4 and (tmp_path / "w" / "checkpoints" / "checkpoint-4").is_dir()
    longer = LoraSettings(rank=2, alpha=4, epochs=2, learning_rate=1e-2, max_length=64, save_steps=2)
    steps: list[int] = []
    second = train_lora(with_lora(tiny_model(len(tokenizer)), longer), tokenizer, _rows(), tmp_path / "w", longer,
                        resume=True, on_progress=lambda step, _t, _l: steps.append(step))
    assert second.resumed_from and second.resumed_from.endswith("checkpoint-4")
    assert steps == [5, 6, 7, 8]  # only the steps the first run had not done
