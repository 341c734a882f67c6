"""Weights assembly: chunk order, hash verification, refusal on mismatch, reuse of a verified file."""

from __future__ import annotations

import hashlib
import sys
import types
from pathlib import Path

import pytest

from tongyi_agent.llm.weights import WeightsError, WeightSet, ensure_weights, weights_installed


def _fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunks: list[bytes]) -> tuple[str, ...]:
    """Register importable modules exposing get_part_path(), like the registry packages do."""
    names = []
    for i, data in enumerate(chunks, 1):
        part = tmp_path / f"part{i:02d}.bin"
        part.write_bytes(data)
        module = types.ModuleType(f"fake_weights_part{i}")
        module.get_part_path = lambda p=part: str(p)  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, module.__name__, module)
        names.append(module.__name__)
    return tuple(names)


def _weight_set(packages: tuple[str, ...], sha256: str) -> WeightSet:
    return WeightSet(name="fake", filename="fake.gguf", sha256=sha256, packages=packages, install_hint="pip it")


def test_assembles_in_order_and_verifies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 5]
    ws = _weight_set(_fake_parts(tmp_path, monkeypatch, chunks), hashlib.sha256(b"".join(chunks)).hexdigest())
    seen: list[tuple[int, int]] = []
    path = ensure_weights(ws, tmp_path / "cache", progress=lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == b"".join(chunks)
    assert seen[-1] == (1786, 1786)
    assert not list(path.parent.glob("*.partial-*"))


def test_refuses_on_hash_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = _weight_set(_fake_parts(tmp_path, monkeypatch, [b"x" * 10, b"y"]), "0" * 64)
    with pytest.raises(WeightsError, match=r"failed verification.*refusing to load"):
        ensure_weights(ws, tmp_path / "cache")
    assert not (tmp_path / "cache" / "models" / "fake.gguf").exists()
    assert not list((tmp_path / "cache" / "models").glob("*.partial-*"))


def test_corrupted_cached_file_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = [b"hello ", b"world"]
    ws = _weight_set(_fake_parts(tmp_path, monkeypatch, chunks), hashlib.sha256(b"hello world").hexdigest())
    path = ensure_weights(ws, tmp_path / "cache")
    path.write_bytes(b"hello w0rld")  # same size, new mtime: the marker no longer matches
    assert ensure_weights(ws, tmp_path / "cache").read_bytes() == b"hello world"


def test_verified_file_is_reused_without_reassembly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = [b"abc"]
    ws = _weight_set(_fake_parts(tmp_path, monkeypatch, chunks), hashlib.sha256(b"abc").hexdigest())
    first = ensure_weights(ws, tmp_path / "cache")
    (tmp_path / "part01.bin").unlink()  # the parts are no longer needed once assembled
    assert ensure_weights(ws, tmp_path / "cache") == first


def test_missing_package_names_the_fix(tmp_path: Path) -> None:
    ws = _weight_set(("no_such_weights_module_x",), "0" * 64)
    assert not weights_installed(ws)
    with pytest.raises(WeightsError, match=r"not installed.*pip it"):
        ensure_weights(ws, tmp_path / "cache")
