"""Settings for one run, resolved with precedence CLI > environment > INI > built-in default."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import platformdirs
from pydantic import BaseModel, ConfigDict, Field

from tongyi_agent.config.environment import env_files, env_layers
from tongyi_agent.config.errors import ConfigError
from tongyi_agent.config.ini import GROUNDING_MODES, ModelsConfig, load_models
from tongyi_agent.config.preferences import read_preferences
from tongyi_agent.config.profiles import ModelProfile
from tongyi_agent.config.trust import Ignored, RootTrust, root_trust

__all__ = ["ConfigError", "Settings", "load_settings", "user_cache_dir", "user_config_dir"]

APP_NAME = "tongyi-agent"
DEFAULT_PROFILE = "local"
CUSTOM_PROFILE = "custom"
DEFAULT_MAX_STEPS = 8
DEFAULT_TIMEOUT = 300.0
DEFAULT_MAX_TOKENS = 24000
DEFAULT_GROUNDING = "check"

T = TypeVar("T", int, float)


def user_config_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("TONGYI_CONFIG_DIR") or platformdirs.user_config_dir(APP_NAME))


def user_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("TONGYI_CACHE_DIR") or platformdirs.user_cache_dir(APP_NAME))


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    root: Path = Field(description="Project directory the tools are confined to (resolved).")
    config_dir: Path = Field(description="User config directory searched for models.ini and .env.")
    model: str = Field(description="Name of the chosen profile.")
    profile: ModelProfile = Field(description="The chosen profile, with CLI overrides applied.")
    fallback_profile: ModelProfile | None = Field(None, description="Profile from [models] fallback.")
    profiles: dict[str, ModelProfile] = Field(description="Every configured profile, by name.")
    max_steps: int = Field(DEFAULT_MAX_STEPS, gt=0, description="Tool-calling steps allowed per run.")
    timeout: float = Field(DEFAULT_TIMEOUT, gt=0, description="Seconds allowed for a whole run.")
    max_tokens: int = Field(DEFAULT_MAX_TOKENS, gt=0, description="Token budget for a whole run.")
    grounding: str = Field(DEFAULT_GROUNDING, description="check: an answer's key facts must come from tool "
                           "results (one retry, then marked unverified); off: no check.")
    # repr=False: the merged environment holds API keys, which must not end up in logs or tracebacks.
    env: dict[str, str] = Field(default_factory=dict, repr=False)
    config_files: list[Path] = Field(default_factory=list,
                                     description="models.ini files, then .env files, actually read.")
    trust: RootTrust = Field(description="Whether the root's own config files were honoured.")
    ignored: list[Ignored] = Field(default_factory=list,
                                   description="The root's settings left out because it is not trusted.")


def resolve_root(root: Path | str) -> Path:
    path = Path(root).expanduser()
    if not path.is_dir():
        raise ConfigError(f"root '{root}' is not a directory")
    return path.resolve()


def choose_profile_name(model: str | None, env: Mapping[str, str], models: ModelsConfig,
                        preferred: str | None = None) -> tuple[str, str]:
    """The profile name and where it came from (for error messages).

    Precedence: --model > TONGYI_MODEL > `models set` preference > [models] default > built-in."""
    if model:
        return model, "--model"
    if env.get("TONGYI_MODEL"):
        return env["TONGYI_MODEL"], "TONGYI_MODEL"
    if preferred:
        return preferred, "tongyi-cli models set"
    if models.default:
        return models.default, "[models] default"
    return DEFAULT_PROFILE, "built-in default"


def lookup_profile(name: str, source: str, profiles: Mapping[str, ModelProfile]) -> ModelProfile:
    if name not in profiles:
        known = ", ".join(profiles) or "(none)"
        raise ConfigError(f"unknown model profile '{name}' (from {source}); known: {known}")
    return profiles[name]


def _number(kind: Callable[[str], T], value: T | None, flag: str, name: str, env: Mapping[str, str],
            default: T) -> T:
    """CLI value (`flag`) > environment variable `name` > default; must be positive."""
    source = flag
    if value is None:
        source = name
        raw = env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = kind(raw)
        except ValueError:
            noun = "an integer" if kind is int else "a number"
            raise ConfigError(f"{name}: expected {noun}, got {raw!r}") from None
    # nan passes every comparison and inf never ends a run.
    if not math.isfinite(value):
        raise ConfigError(f"{source}: must be a finite number, got {value!r}")
    if value <= 0:
        raise ConfigError(f"{source}: must be positive, got {value!r}")
    return value


def run_limits(env: Mapping[str, str], max_steps: int | None = None, timeout: float | None = None,
               max_tokens: int | None = None) -> tuple[int, float, int]:
    return (_number(int, max_steps, "--max-steps", "TONGYI_MAX_STEPS", env, DEFAULT_MAX_STEPS),
            _number(float, timeout, "--timeout", "TONGYI_TIMEOUT", env, DEFAULT_TIMEOUT),
            _number(int, max_tokens, "--max-tokens", "TONGYI_MAX_TOKENS", env, DEFAULT_MAX_TOKENS))


def grounding_mode(env: Mapping[str, str], models: ModelsConfig) -> str:
    """TONGYI_GROUNDING > models.ini [agent] grounding > check."""
    raw = env.get("TONGYI_GROUNDING", "").strip().lower()
    if raw and raw not in GROUNDING_MODES:
        raise ConfigError(f"TONGYI_GROUNDING: expected check or off, got {raw!r}")
    return raw or models.agent.get("grounding") or DEFAULT_GROUNDING


def _apply_overrides(profile: ModelProfile, base_url: str | None, model_id: str | None) -> ModelProfile:
    if base_url:
        # An ad-hoc endpoint (vLLM, Ollama, a proxy): reuse the model name only when the chosen
        # profile already talks to an OpenAI-compatible API, since embedded ids mean nothing there.
        model_id = model_id or (profile.model_id if profile.is_remote else None)
        if not model_id:
            raise ConfigError("--base-url needs --model-id")
        return ModelProfile(name=CUSTOM_PROFILE, provider="openai", dialect="native", base_url=base_url,
                            model_id=model_id, description=f"{model_id} at {base_url} (from --base-url)")
    if model_id:
        return profile.model_copy(update={"model_id": model_id})
    return profile


def load_settings(
    root: Path | str = ".",
    *,
    model: str | None = None,
    base_url: str | None = None,
    model_id: str | None = None,
    max_steps: int | None = None,
    timeout: float | None = None,
    max_tokens: int | None = None,
    env: Mapping[str, str] | None = None,
    trust_root: bool = False,
) -> Settings:
    """Resolve the settings of one run.

    ``env`` stands in for the real environment (default ``os.environ``); `.env` files in the config
    dir and in ``root`` are merged beneath it either way. The root's own files may set where keys and
    data go only when the user trusts the folder (``tongyi-cli trust``) or ``trust_root`` (--trust-root).
    """
    root_path = resolve_root(root)
    config_dir = user_config_dir(env)
    trust = root_trust(root_path, config_dir, trust_root=trust_root)
    merged, env_ignored = env_layers(root_path, config_dir, env, trust=trust)
    models = load_models(root_path, config_dir, trust=trust)

    name, source = choose_profile_name(model, merged, models, read_preferences(config_dir).get("model"))
    profile = _apply_overrides(lookup_profile(name, source, models.profiles), base_url, model_id)
    fallback = (lookup_profile(models.fallback, "[models] fallback", models.profiles)
                if models.fallback else None)
    steps, seconds, tokens = run_limits(merged, max_steps, timeout, max_tokens)
    grounding = grounding_mode(merged, models)
    # The ad-hoc profile is listed too, so `settings.profiles[settings.model]` always works.
    profiles = {**models.profiles, profile.name: profile} if base_url else models.profiles
    return Settings(root=root_path, config_dir=config_dir, model=profile.name, profile=profile,
                    fallback_profile=fallback, profiles=profiles, max_steps=steps,
                    timeout=seconds, max_tokens=tokens, grounding=grounding, env=merged,
                    config_files=models.files + env_files(root_path, config_dir), trust=trust,
                    ignored=models.ignored + env_ignored)
