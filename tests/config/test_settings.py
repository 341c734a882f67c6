from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tongyi_agent.config import ConfigError, Settings, load_settings, user_cache_dir, user_config_dir
from tongyi_agent.config.ini import PACKAGED_MODELS

Write = Callable[[Path, str], Path]

PROFILE = "[{name}]\nprovider = openai\nmodel_id = {model_id}\n"


def one_line_error(**kwargs: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(**kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    return message


def test_built_in_defaults(root: Path, config_dir: Path) -> None:
    settings = load_settings(root)
    assert isinstance(settings, Settings)
    assert settings.root == root.resolve()
    assert settings.config_dir == config_dir
    assert (settings.model, settings.profile.provider) == ("local", "embedded")
    assert settings.fallback_profile is None
    assert (settings.max_steps, settings.timeout, settings.max_tokens) == (8, 300.0, 24000)
    assert settings.config_files == [PACKAGED_MODELS]
    assert {"local", "local-small", "tongyi"} <= set(settings.profiles)


def test_user_dirs_follow_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TONGYI_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("TONGYI_CACHE_DIR", str(tmp_path / "cache"))
    assert user_config_dir() == tmp_path / "cfg"
    assert user_cache_dir() == tmp_path / "cache"
    assert user_config_dir({"TONGYI_CONFIG_DIR": "/x"}) == Path("/x")


def test_profile_precedence_cli_env_root_configdir_packaged(
        root: Path, config_dir: Path, write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(root).model == "local"  # packaged [models] default

    profiles = [("from-config-dir", "a"), ("from-root", "b"), ("from-env", "c"), ("from-cli", "d")]
    write(config_dir / "models.ini", "[models]\ndefault = from-config-dir\n"
          + "".join(PROFILE.format(name=name, model_id=model_id) for name, model_id in profiles))
    assert load_settings(root).model == "from-config-dir"

    write(root / "models.ini", "[models]\ndefault = from-root\n")
    assert load_settings(root).model == "from-root"

    monkeypatch.setenv("TONGYI_MODEL", "from-env")
    assert load_settings(root).model == "from-env"

    settings = load_settings(root, model="from-cli")
    assert (settings.model, settings.profile.model_id) == ("from-cli", "d")
    assert settings.config_files == [root / "models.ini", config_dir / "models.ini", PACKAGED_MODELS]


def test_root_profile_replaces_config_dir_profile(root: Path, config_dir: Path, write: Write) -> None:
    write(config_dir / "models.ini", PROFILE.format(name="p", model_id="lower") + "temperature = 0.1\n")
    write(root / "models.ini", PROFILE.format(name="p", model_id="upper"))
    profile = load_settings(root, model="p").profile
    assert profile.model_id == "upper"
    assert profile.temperature is None  # whole section replaced, not merged key by key


def test_limits_precedence(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TONGYI_MAX_STEPS", "3")
    monkeypatch.setenv("TONGYI_TIMEOUT", "12.5")
    monkeypatch.setenv("TONGYI_MAX_TOKENS", "999")
    settings = load_settings(root)
    assert (settings.max_steps, settings.timeout, settings.max_tokens) == (3, 12.5, 999)
    settings = load_settings(root, max_steps=5, timeout=60, max_tokens=100)
    assert (settings.max_steps, settings.timeout, settings.max_tokens) == (5, 60, 100)


@pytest.mark.parametrize("name,value,expected", [
    ("TONGYI_MAX_STEPS", "abc", "TONGYI_MAX_STEPS: expected an integer, got 'abc'"),
    ("TONGYI_MAX_STEPS", "0", "TONGYI_MAX_STEPS: must be positive, got 0"),
    ("TONGYI_MAX_STEPS", "-2", "TONGYI_MAX_STEPS: must be positive, got -2"),
    ("TONGYI_TIMEOUT", "soon", "TONGYI_TIMEOUT: expected a number, got 'soon'"),
])
def test_bad_env_values(root: Path, name: str, value: str, expected: str) -> None:
    assert one_line_error(root=root, env={name: value}) == expected


def test_bad_cli_value_names_the_flag(root: Path) -> None:
    assert one_line_error(root=root, max_steps=0) == "--max-steps: must be positive, got 0"


def test_dotenv_root_over_config_dir_and_real_env_wins(
        root: Path, config_dir: Path, write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    write(config_dir / ".env", "OPENROUTER_API_KEY=from-config-dir\nTONGYI_MAX_STEPS=4\n")
    write(root / ".env", "OPENROUTER_API_KEY='from-root'\nTONGYI_MODEL=tongyi\n")
    settings = load_settings(root, trust_root=True)  # an untrusted root's .env may not set keys (tests/security)
    assert settings.env["OPENROUTER_API_KEY"] == "from-root"
    assert settings.profile.api_key(settings.env) == "from-root"
    assert (settings.model, settings.max_steps) == ("tongyi", 4)
    assert settings.config_files[-2:] == [config_dir / ".env", root / ".env"]

    monkeypatch.setenv("OPENROUTER_API_KEY", "from-shell")
    settings = load_settings(root, trust_root=True)
    assert settings.profile.api_key(settings.env) == "from-shell"
    # The .env files are read, never loaded into the process environment.
    assert "TONGYI_MODEL" not in os.environ


def test_env_is_not_in_repr(root: Path) -> None:
    settings = load_settings(root, env={"OPENROUTER_API_KEY": "sk-secret"})
    assert settings.env["OPENROUTER_API_KEY"] == "sk-secret"
    assert "sk-secret" not in repr(settings)


def test_base_url_builds_custom_profile(root: Path) -> None:
    settings = load_settings(root, base_url="http://127.0.0.1:8000/v1", model_id="qwen")
    profile = settings.profile
    assert settings.model == "custom"
    assert settings.profiles["custom"] == profile
    assert (profile.provider, profile.dialect, profile.model_id) == ("openai", "native", "qwen")
    assert profile.resolved_base_url(settings.env) == "http://127.0.0.1:8000/v1"


def test_base_url_reuses_remote_model_id(root: Path) -> None:
    profile = load_settings(root, model="tongyi", base_url="http://proxy/v1").profile
    assert (profile.name, profile.model_id) == ("custom", "alibaba/tongyi-deepresearch-30b-a3b")


def test_base_url_with_embedded_profile_needs_model_id(root: Path) -> None:
    assert one_line_error(root=root, base_url="http://proxy/v1") == "--base-url needs --model-id"


def test_model_id_alone_overrides_chosen_profile(root: Path) -> None:
    settings = load_settings(root, model="tongyi", model_id="other/model")
    assert (settings.model, settings.profile.model_id) == ("tongyi", "other/model")
    assert settings.profile.dialect == "tongyi"  # everything else kept
    assert settings.profiles["tongyi"].model_id == "alibaba/tongyi-deepresearch-30b-a3b"


def test_unknown_profile(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = one_line_error(root=root, model="gpt9")
    expected = "unknown model profile 'gpt9' (from --model); known: local, local-small, tongyi"
    assert message.startswith(expected)
    monkeypatch.setenv("TONGYI_MODEL", "nope")
    assert "'nope' (from TONGYI_MODEL)" in one_line_error(root=root)


def test_fallback_profile(root: Path, write: Write) -> None:
    write(root / "models.ini", "[models]\nfallback = local-small\n")
    assert load_settings(root).fallback_profile.name == "local-small"  # type: ignore[union-attr]
    write(root / "models.ini", "[models]\nfallback = missing\n")
    assert "'missing' (from [models] fallback)" in one_line_error(root=root)


def test_bad_ini_surfaces_from_load_settings(root: Path, write: Write) -> None:
    path = write(root / "models.ini", "[local]\nprovider = embedded\nweights = w\nmodel_id = m\n"
                 "context_length = abc\n")
    assert one_line_error(root=root) == f"{path} [local] context_length: expected an integer, got 'abc'"


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_root_must_be_a_directory(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "nowhere"
    if kind == "file":
        target.write_text("x")
    assert one_line_error(root=target) == f"root '{target}' is not a directory"


def test_grounding_mode_from_models_ini_and_env(root: Path, config_dir: Path, write: Write,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(root).grounding == "check"
    write(config_dir / "models.ini", "[agent]\ngrounding = off\n")
    assert load_settings(root).grounding == "off"
    write(root / "models.ini", "[agent]\ngrounding = check\n")  # the project's file wins, key by key
    assert load_settings(root).grounding == "check"
    monkeypatch.setenv("TONGYI_GROUNDING", "off")
    assert load_settings(root).grounding == "off"


def test_bad_grounding_values_are_one_line_errors(root: Path, write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    write(root / "models.ini", "[agent]\ngrounding = maybe\n")
    assert "[agent] grounding: expected check or off, got 'maybe'" in one_line_error(root=root)
    write(root / "models.ini", "[agent]\ngroundng = off\n")
    assert "[agent] groundng: unknown key (did you mean 'grounding'?)" in one_line_error(root=root)
    write(root / "models.ini", "")
    monkeypatch.setenv("TONGYI_GROUNDING", "sometimes")
    assert one_line_error(root=root) == "TONGYI_GROUNDING: expected check or off, got 'sometimes'"
