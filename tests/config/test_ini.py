from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tongyi_agent.config import ConfigError
from tongyi_agent.config.ini import PACKAGED_MODELS, load_models, read_ini, unquote

Write = Callable[[Path, str], Path]


def test_packaged_defaults(root: Path, config_dir: Path) -> None:
    models = load_models(root, config_dir)
    assert models.default == "local"
    assert models.fallback is None
    assert models.files == [PACKAGED_MODELS]
    local, tongyi = models.profiles["local"], models.profiles["tongyi"]
    assert (local.provider, local.weights, local.dialect) == ("embedded", "qwen2.5-coder-1.5b", "react")
    assert local.description == "Qwen2.5-Coder-1.5B-Instruct (Q4_K_M), embedded, offline"
    assert models.profiles["local-small"].weights == "qwen2.5-coder-0.5b"
    assert (tongyi.model_id, tongyi.dialect, tongyi.context_length) == (
        "alibaba/tongyi-deepresearch-30b-a3b", "tongyi", 131072)
    assert (tongyi.temperature, tongyi.top_p) == (0.85, 0.95)
    assert tongyi.api_key_env == "OPENROUTER_API_KEY"
    assert tongyi.base_url_env == "OPENROUTER_BASE_URL"


@pytest.mark.parametrize("raw,expected", [('"a, b"', "a, b"), ("'x'", "x"), ("\"x'", "\"x'"),
                                          ("plain", "plain"), ('"', '"'), ('""', "")])
def test_unquote(raw: str, expected: str) -> None:
    assert unquote(raw) == expected


def test_quoted_values_and_no_interpolation(tmp_path: Path, write: Write) -> None:
    path = write(tmp_path / "models.ini", "[p]\nbase_url = 'http://h/%s'\ndescription = \"a; b\"\n")
    assert read_ini(path)["p"] == {"base_url": "http://h/%s", "description": "a; b"}


def test_layers_replace_whole_sections(root: Path, config_dir: Path, write: Write) -> None:
    write(config_dir / "models.ini",
          "[models]\ndefault = mine\nfallback = tongyi\n"
          "[mine]\nprovider = openai\nmodel_id = from-config-dir\n"
          "[tongyi]\nprovider = openai\nmodel_id = replaced\n")
    write(root / "models.ini", "[models]\nfallback =\n[mine]\nprovider = openai\nmodel_id = from-root\n")
    models = load_models(root, config_dir)
    assert models.files == [root / "models.ini", config_dir / "models.ini", PACKAGED_MODELS]
    assert models.profiles["mine"].model_id == "from-root"
    # The config dir's [tongyi] replaced the packaged one entirely: no dialect/temperature carried over.
    assert models.profiles["tongyi"].model_id == "replaced"
    assert models.profiles["tongyi"].dialect == "native"
    assert models.profiles["tongyi"].temperature is None
    assert "local" in models.profiles
    assert models.default == "mine"
    # An explicit empty value in a higher layer switches a lower layer's fallback off.
    assert models.fallback is None


def _error(root: Path, config_dir: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_models(root, config_dir)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("body,key,problem", [
    ("provider = openai\nmodel_id = m\ncontext_length = abc\n", "context_length",
     "expected an integer, got 'abc'"),
    ("provider = openai\nmodel_id = m\ndialect = foo\n", "dialect", "expected 'native', 'tongyi' or 'react'"),
    ("provider = openai\nmodel_id = m\ncontxt_length = 9\n", "contxt_length",
     "unknown key (did you mean 'context_length'?)"),
    ("provider = openai\nmodel_id = m\ntemperature = hot\n", "temperature", "expected a number, got 'hot'"),
    ("provider = openai\n", "model_id", "required key is missing"),
    ("provider = embedded\nmodel_id = m\n", "weights", "required when provider = embedded"),
])
def test_bad_profile_is_one_line_naming_file_section_key(
        root: Path, config_dir: Path, write: Write, body: str, key: str, problem: str) -> None:
    path = write(root / "models.ini", "[p]\n" + body)
    message = _error(root, config_dir)
    assert message.startswith(f"{path} [p] {key}: ")
    assert problem in message


def test_unknown_models_key(root: Path, config_dir: Path, write: Write) -> None:
    path = write(config_dir / "models.ini", "[models]\ndefualt = local\n")
    assert _error(root, config_dir) == f"{path} [models] defualt: unknown key (did you mean 'default'?)"


@pytest.mark.parametrize("text,problem", [
    ("no header\n", "line 1: expected a [section] header before 'no header'"),
    ("[p]\nkey\n", "line 2: expected 'key = value', got 'key'"),
    ("[p]\na = 1\na = 2\n", "line 3: key 'a' repeated in [p]"),
    ("[p]\n[p]\n", "line 2: section [p] repeated"),
])
def test_malformed_ini(root: Path, config_dir: Path, write: Write, text: str, problem: str) -> None:
    path = write(root / "models.ini", text)
    assert _error(root, config_dir) == f"{path}: malformed INI: {problem}"
