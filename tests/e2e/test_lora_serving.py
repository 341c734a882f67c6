"""A converted GGUF LoRA served by llama-cpp-python on the real embedded model, through a profile.

No training here (tests/learn/weights/test_sft_train.py trains): the adapter's matrices are written directly,
so the test shows the serving path itself: conversion, the profile's ``lora`` key, and llama.cpp
applying the adapter. A zero adapter must leave answers unchanged; a large random one must change them.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from tongyi_agent.config.profiles import ModelProfile
from tongyi_agent.learn.weights.gguf_lora import base_model_info, convert_peft_adapter
from tongyi_agent.llm.base import ChatMessage, ChatRequest
from tongyi_agent.llm.registry import build_model
from tongyi_agent.llm.weights import WEIGHT_SETS, ensure_weights

pytestmark = pytest.mark.embedded
safetensors_numpy = pytest.importorskip("safetensors.numpy")

QUESTION = [ChatMessage(role="user", content="Name three colours of the rainbow.")]


def _adapter(directory: Path, base_gguf: Path, scale: float) -> Path:
    """A rank-4 adapter on every block's q_proj, B = scale × noise (0 means no change)."""
    info = base_model_info(base_gguf)
    rng = np.random.default_rng(0)
    tensors = {}
    for block in range(info.block_count):
        in_f, out_f = info.shapes[f"blk.{block}.attn_q.weight"]
        prefix = f"base_model.model.model.layers.{block}.self_attn.q_proj"
        tensors[f"{prefix}.lora_A.weight"] = rng.standard_normal((4, in_f)).astype(np.float32)
        tensors[f"{prefix}.lora_B.weight"] = (scale * rng.standard_normal((out_f, 4))).astype(np.float32)
    directory.mkdir(parents=True)
    safetensors_numpy.save_file(tensors, str(directory / "adapter_model.safetensors"))
    (directory / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "lora_alpha": 4}))
    convert_peft_adapter(directory, directory / "adapter.gguf", info)
    return directory / "adapter.gguf"


def _answer(profile: ModelProfile, cache: Path) -> str:
    model = build_model(profile, {}, cache)
    response = asyncio.run(model.chat(QUESTION, ChatRequest(max_tokens=24, temperature=0.0)))
    return response.content


def test_profile_lora_is_applied_by_llama_cpp(tmp_path: Path) -> None:
    from tongyi_agent.config import user_cache_dir

    cache = user_cache_dir()
    base_gguf = ensure_weights(WEIGHT_SETS["qwen2.5-coder-1.5b"], cache)
    base = ModelProfile(name="local", provider="embedded", model_id="q", weights="qwen2.5-coder-1.5b",
                        dialect="react", context_length=512)
    plain = _answer(base, cache)
    zero = _answer(base.model_copy(update={"lora": _adapter(tmp_path / "zero", base_gguf, 0.0)}), cache)
    noisy = _answer(base.model_copy(update={"lora": _adapter(tmp_path / "noisy", base_gguf, 0.05)}), cache)
    assert plain.strip() and zero == plain
    assert noisy != plain
