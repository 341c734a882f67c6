"""Convert a PEFT LoRA adapter to a GGUF LoRA that llama.cpp applies on top of the embedded model.

llama.cpp reads an adapter as a GGUF file with ``general.type = adapter``, ``adapter.type = lora``,
``adapter.lora.alpha`` and, for every adapted weight ``W`` of the base (its GGUF name, e.g.
``blk.3.attn_q.weight``), two tensors ``W.lora_a`` (rank × in) and ``W.lora_b`` (out × rank). It
scales ``B·A`` by alpha / rank at run time, as PEFT does, so PEFT's matrices are written unchanged;
only the names are translated, with the ``gguf`` package's own Hugging Face → GGUF name map. The
base GGUF supplies the architecture and block count, and every tensor is checked against the base
shape here, because llama.cpp only reports "failed to load adapter".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PEFT_PREFIX = "base_model.model."
_LORA_PARTS = {".lora_A.weight": "lora_a", ".lora_B.weight": "lora_b"}


class AdapterConversionError(ValueError):
    """The adapter cannot be converted for this base model (one-line message)."""


@dataclass(frozen=True)
class BaseModelInfo:
    arch: str  # llama.cpp architecture name, e.g. "qwen2"
    block_count: int
    shapes: dict[str, tuple[int, int]]  # GGUF tensor name -> (in_features, out_features)


@dataclass(frozen=True)
class GgufLora:
    arch: str
    alpha: float
    tensors: dict[str, np.ndarray]  # GGUF name (with .lora_a / .lora_b) -> float32 array


def base_model_info(base_gguf: Path) -> BaseModelInfo:
    """Architecture, block count and 2-D tensor shapes of a base GGUF (memory-mapped, not loaded)."""
    from gguf import GGUFReader

    reader = GGUFReader(base_gguf)
    arch = _string_field(reader, "general.architecture")
    block_count = int(reader.fields[f"{arch}.block_count"].parts[-1][0])
    shapes = {t.name: (int(t.shape[0]), int(t.shape[1])) for t in reader.tensors if len(t.shape) == 2}
    return BaseModelInfo(arch, block_count, shapes)


def convert_peft_adapter(adapter_dir: Path, out_path: Path, base: BaseModelInfo) -> GgufLora:
    """Write ``out_path`` from a PEFT adapter directory; return what was written."""
    lora = peft_to_gguf_tensors(adapter_dir, base)
    write_gguf_lora(lora, out_path)
    return lora


def peft_to_gguf_tensors(adapter_dir: Path, base: BaseModelInfo) -> GgufLora:
    import gguf
    from safetensors.numpy import load_file

    config = _adapter_config(adapter_dir)
    weights_file = adapter_dir / "adapter_model.safetensors"
    if not weights_file.is_file():
        raise AdapterConversionError(f"{weights_file} not found (save the adapter with safe_serialization)")
    arch_enum = next((a for a, name in gguf.MODEL_ARCH_NAMES.items() if name == base.arch), None)
    if arch_enum is None:
        raise AdapterConversionError(f"architecture {base.arch!r} is unknown to the gguf package")
    names = gguf.get_tensor_name_map(arch_enum, base.block_count)
    tensors: dict[str, np.ndarray] = {}
    for key, value in load_file(str(weights_file)).items():
        part = next((p for p in _LORA_PARTS if key.endswith(p)), None)
        if part is None:
            raise AdapterConversionError(f"unexpected tensor {key} (only LoRA A/B matrices can be converted)")
        hf_name = key.removeprefix(PEFT_PREFIX).removesuffix(part) + ".weight"
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight",))
        if gguf_name is None:
            raise AdapterConversionError(f"no GGUF name for {hf_name} in architecture {base.arch}")
        tensors[f"{gguf_name}.{_LORA_PARTS[part]}"] = np.ascontiguousarray(value, dtype=np.float32)
    _check_shapes(tensors, base)
    return GgufLora(base.arch, _llama_cpp_alpha(config), tensors)


def write_gguf_lora(lora: GgufLora, out_path: Path) -> None:
    import gguf

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".partial")
    writer = gguf.GGUFWriter(tmp, lora.arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, lora.alpha)
    for name, array in sorted(lora.tensors.items()):
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(out_path)


def read_gguf_lora(path: Path) -> GgufLora:
    """Read a GGUF LoRA back (tests, and checking an adapter before it is served)."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    if _string_field(reader, "general.type", "") != "adapter" or _string_field(reader, "adapter.type", "") != "lora":
        raise AdapterConversionError(f"{path} is not a GGUF LoRA adapter")
    alpha = float(reader.fields["adapter.lora.alpha"].parts[-1][0])
    tensors = {t.name: np.array(t.data, dtype=np.float32).reshape(tuple(reversed([int(d) for d in t.shape])))
               for t in reader.tensors}
    return GgufLora(_string_field(reader, "general.architecture"), alpha, tensors)


def _adapter_config(adapter_dir: Path) -> dict[str, object]:
    path = adapter_dir / "adapter_config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AdapterConversionError(f"cannot read {path}: {exc}") from None
    if config.get("peft_type", "LORA") != "LORA" or config.get("use_dora"):
        raise AdapterConversionError("only plain LoRA adapters convert (not DoRA or other PEFT types)")
    return config


def _llama_cpp_alpha(config: dict[str, object]) -> float:
    """llama.cpp scales by alpha / r; rsLoRA trained with alpha / sqrt(r), so rescale alpha to match."""
    rank, alpha = float(config["r"]), float(config["lora_alpha"])  # type: ignore[arg-type]
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise AdapterConversionError("per-layer rank or alpha patterns are not supported")
    return alpha * math.sqrt(rank) if config.get("use_rslora") else alpha


def _check_shapes(tensors: dict[str, np.ndarray], base: BaseModelInfo) -> None:
    for name, a in tensors.items():
        if not name.endswith(".lora_a"):
            continue
        weight = name.removesuffix(".lora_a")
        b = tensors.get(weight + ".lora_b")
        if b is None:
            raise AdapterConversionError(f"{weight}: lora_a without lora_b")
        if weight not in base.shapes:
            raise AdapterConversionError(f"{weight} is not a tensor of the base model")
        in_features, out_features = base.shapes[weight]
        if a.shape[1] != in_features or b.shape[0] != out_features or a.shape[0] != b.shape[1]:
            raise AdapterConversionError(
                f"{weight}: adapter shapes A{a.shape} B{b.shape} do not fit the base ({out_features}x{in_features})")


def _string_field(reader: object, key: str, default: str | None = None) -> str:
    field = reader.fields.get(key)  # type: ignore[attr-defined]
    if field is None and default is not None:
        return default
    if field is None:
        raise AdapterConversionError(f"GGUF key {key} missing")
    return bytes(field.parts[field.data[0]]).decode("utf-8")
