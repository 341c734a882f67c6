"""Build a ChatModel from a model profile. SDKs and the embedded runtime load lazily."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from tongyi_agent.config.profiles import ModelProfile, is_local_url
from tongyi_agent.llm.base import ChatModel, ModelError
from tongyi_agent.llm.prompt_cache import DEFAULT_MAX_BYTES, PromptCache
from tongyi_agent.llm.weights import WEIGHT_SETS, WeightsError, ensure_weights

if TYPE_CHECKING:
    from tongyi_agent.llm.embedded import EmbeddedBackend

# Loaded embedded models stay in memory for the process: the REPL may switch back and forth.
_LOADED: dict[tuple[str, int, str], EmbeddedBackend] = {}


def build_model(profile: ModelProfile, env: Mapping[str, str], cache_dir: Path,
                progress: Callable[[int, int], None] | None = None,
                on_note: Callable[[str], None] | None = None) -> ChatModel:
    """The backend for `profile`; raises ModelError with a one-line reason when it cannot be used.

    `on_note` receives the embedded backend's notes about its prompt cache (for --verbose)."""
    if profile.provider == "embedded":
        return _embedded(profile, env, cache_dir, progress, on_note)
    if profile.provider == "anthropic":
        return _anthropic(profile, env)
    return _openai(profile, env)


def prompt_cache_for(env: Mapping[str, str], cache_dir: Path) -> PromptCache | None:
    """The prompt cache (TONGYI_PROMPT_CACHE_DIR, else under `cache_dir`), or None when
    TONGYI_PROMPT_CACHE=0 turns it off. TONGYI_PROMPT_CACHE_MB bounds its size."""
    if env.get("TONGYI_PROMPT_CACHE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    raw = env.get("TONGYI_PROMPT_CACHE_MB", "").strip()
    try:
        max_bytes = int(float(raw) * 1024 * 1024) if raw else DEFAULT_MAX_BYTES
    except ValueError:
        raise ModelError(f"TONGYI_PROMPT_CACHE_MB must be a number of megabytes, got {raw!r}") from None
    folder = env.get("TONGYI_PROMPT_CACHE_DIR", "").strip()
    return PromptCache(Path(folder) if folder else cache_dir / "prompt-cache", max_bytes)


def _embedded(profile: ModelProfile, env: Mapping[str, str], cache_dir: Path,
              progress: Callable[[int, int], None] | None, on_note: Callable[[str], None] | None) -> ChatModel:
    weight_set = WEIGHT_SETS.get(profile.weights or "")
    if weight_set is None:
        raise ModelError(f"profile {profile.name}: unknown weights {profile.weights!r}; "
                         f"known: {', '.join(WEIGHT_SETS)}")
    try:
        path = ensure_weights(weight_set, cache_dir, progress)
    except WeightsError as exc:
        raise ModelError(str(exc)) from exc
    key = (str(path), profile.context_length, str(profile.lora or ""))
    if key not in _LOADED:
        from tongyi_agent.llm.embedded import EmbeddedBackend

        _LOADED[key] = EmbeddedBackend(path, name=profile.model_id, n_ctx=profile.context_length,
                                       max_output_tokens=profile.max_output_tokens,
                                       temperature=profile.temperature or 0.0, lora_path=profile.lora,
                                       prompt_cache=prompt_cache_for(env, cache_dir), weights_id=weight_set.sha256)
    backend = _LOADED[key]
    if on_note is not None:
        backend.on_note = on_note
    return backend


def _openai(profile: ModelProfile, env: Mapping[str, str]) -> ChatModel:
    from tongyi_agent.llm.openai_compat import OpenAICompatBackend

    base_url = profile.resolved_base_url(env)
    if not base_url:
        raise ModelError(f"profile {profile.name} has no base_url; set it in models.ini or use --base-url")
    api_key = profile.api_key(env)
    if api_key is None:
        if not is_local_url(base_url):
            names = " or ".join(profile.api_key_envs())
            raise ModelError(f"profile {profile.name} needs an API key: set {names} (in the environment or .env)")
        api_key = "not-needed"  # local servers (llama.cpp, vLLM, Ollama) accept any key
    return OpenAICompatBackend(profile.resolved_model_id(env), base_url, api_key, timeout=profile.timeout,
                               max_retries=profile.max_retries, fallback_model_id=profile.fallback_model_id,
                               default_temperature=profile.temperature, default_top_p=profile.top_p)


def _anthropic(profile: ModelProfile, env: Mapping[str, str]) -> ChatModel:
    from tongyi_agent.llm.anthropic_backend import AnthropicBackend

    # None means the public API; the backend never lets the SDK read ANTHROPIC_BASE_URL by itself.
    base_url = profile.resolved_base_url(env)
    api_key = profile.api_key(env)
    if api_key is None and not is_local_url(base_url):
        names = " or ".join(profile.api_key_envs())
        raise ModelError(f"profile {profile.name} needs an API key: set {names} (in the environment or .env)")
    return AnthropicBackend(profile.resolved_model_id(env), api_key, base_url=base_url, timeout=profile.timeout,
                            max_retries=profile.max_retries, fallback_model_id=profile.fallback_model_id,
                            max_tokens=profile.max_output_tokens, default_temperature=profile.temperature,
                            default_top_p=profile.top_p)
