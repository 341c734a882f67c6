"""PEFT LoRA → GGUF LoRA: names, shapes, alpha and a byte-exact round trip on a tiny Qwen2 base."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

from tongyi_agent.learn.weights.gguf_lora import (  # noqa: E402
    AdapterConversionError,
    base_model_info,
    convert_peft_adapter,
    read_gguf_lora,
)

HIDDEN, KV, RANK, BLOCKS = 16, 8, 4, 2
PROJ = {"q_proj": ("attn_q", HIDDEN, HIDDEN), "k_proj": ("attn_k", HIDDEN, KV),
        "v_proj": ("attn_v", HIDDEN, KV), "o_proj": ("attn_output", HIDDEN, HIDDEN)}


def _tiny_base(path: Path) -> Path:
    """A GGUF with the tensor names and shapes of a 2-block Qwen2 (weights are zeros)."""
    writer = gguf.GGUFWriter(path, "qwen2")
    writer.add_block_count(BLOCKS)
    for block in range(BLOCKS):
        for gguf_name, in_f, out_f in PROJ.values():
            writer.add_tensor(f"blk.{block}.{gguf_name}.weight", np.zeros((out_f, in_f), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _peft_adapter(directory: Path, *, rank: int = RANK, alpha: int = 8, **config: object) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    tensors = {}
    for block in range(BLOCKS):
        for proj, (_, in_f, out_f) in PROJ.items():
            prefix = f"base_model.model.model.layers.{block}.self_attn.{proj}"
            tensors[f"{prefix}.lora_A.weight"] = rng.standard_normal((rank, in_f)).astype(np.float32)
            tensors[f"{prefix}.lora_B.weight"] = rng.standard_normal((out_f, rank)).astype(np.float32)
    directory.mkdir(parents=True, exist_ok=True)
    safetensors_numpy.save_file(tensors, str(directory / "adapter_model.safetensors"))
    (directory / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": rank, "lora_alpha": alpha, **config}))
    return tensors


def test_round_trip_keeps_every_matrix_under_its_llama_cpp_name(tmp_path: Path) -> None:
    base = base_model_info(_tiny_base(tmp_path / "base.gguf"))
    assert (base.arch, base.block_count) == ("qwen2", BLOCKS)
    peft = _peft_adapter(tmp_path / "adapter")
    convert_peft_adapter(tmp_path / "adapter", tmp_path / "lora.gguf", base)

    lora = read_gguf_lora(tmp_path / "lora.gguf")
    assert lora.arch == "qwen2" and lora.alpha == 8.0
    assert len(lora.tensors) == len(peft) == BLOCKS * len(PROJ) * 2
    a = lora.tensors["blk.1.attn_k.weight.lora_a"]
    b = lora.tensors["blk.1.attn_k.weight.lora_b"]
    np.testing.assert_array_equal(a, peft["base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight"])
    np.testing.assert_array_equal(b, peft["base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight"])
    assert a.shape == (RANK, HIDDEN) and b.shape == (KV, RANK)


def test_rslora_alpha_is_rescaled_to_llama_cpps_alpha_over_rank(tmp_path: Path) -> None:
    base = base_model_info(_tiny_base(tmp_path / "base.gguf"))
    _peft_adapter(tmp_path / "adapter", alpha=8, use_rslora=True)
    lora = convert_peft_adapter(tmp_path / "adapter", tmp_path / "lora.gguf", base)
    # PEFT scales by alpha/sqrt(r) = 4; llama.cpp by alpha'/r, so alpha' = 16.
    assert math.isclose(lora.alpha / RANK, 8 / math.sqrt(RANK))


def test_an_adapter_for_another_model_is_refused_before_llama_cpp_sees_it(tmp_path: Path) -> None:
    base = base_model_info(_tiny_base(tmp_path / "base.gguf"))
    directory = tmp_path / "adapter"
    _peft_adapter(directory)
    wide = {k: (np.zeros((v.shape[0], 32), np.float32) if "lora_A" in k else v)
            for k, v in safetensors_numpy.load_file(str(directory / "adapter_model.safetensors")).items()}
    safetensors_numpy.save_file(wide, str(directory / "adapter_model.safetensors"))
    with pytest.raises(AdapterConversionError, match="do not fit the base"):
        convert_peft_adapter(directory, tmp_path / "lora.gguf", base)
    assert not (tmp_path / "lora.gguf").exists()


def test_dora_and_missing_files_give_one_line_errors(tmp_path: Path) -> None:
    base = base_model_info(_tiny_base(tmp_path / "base.gguf"))
    _peft_adapter(tmp_path / "dora", use_dora=True)
    with pytest.raises(AdapterConversionError, match="only plain LoRA"):
        convert_peft_adapter(tmp_path / "dora", tmp_path / "x.gguf", base)
    with pytest.raises(AdapterConversionError, match=r"adapter_config\.json"):
        convert_peft_adapter(tmp_path / "missing", tmp_path / "x.gguf", base)


def test_reading_a_model_file_as_an_adapter_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AdapterConversionError, match="not a GGUF LoRA adapter"):
        read_gguf_lora(_tiny_base(tmp_path / "base.gguf"))
