"""A model profile: which model to talk to and how (one section of ``models.ini``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

# Tried in this order when a profile names no key variable, or the named one is unset: most
# OpenAI-compatible servers accept OPENAI_API_KEY, and OpenRouter is the guide's default remote.
FALLBACK_KEY_ENVS = ("OPENAI_API_KEY", "OPENROUTER_API_KEY")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})


def is_local_url(url: str | None) -> bool:
    """Servers on this machine (llama.cpp, vLLM, Ollama) accept requests without a key."""
    return (urlparse(url or "").hostname or "") in LOCAL_HOSTS


class ModelProfile(BaseModel):
    # Unknown keys are errors: a typo such as `contxt_length` must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Profile name (the INI section).")
    provider: Literal["embedded", "openai", "anthropic"] = Field(
        description="embedded: in-process llama.cpp; openai: any OpenAI-compatible API; anthropic: Messages API.")
    model_id: str = Field(description="Model name sent to the API, or the embedded model's id.")
    model_id_env: str | None = Field(None, description="Environment variable that overrides model_id.")
    dialect: Literal["native", "tongyi", "react"] = Field(
        "native", description="How the model writes tool calls.")
    base_url: str | None = Field(None, description="API root for provider openai.")
    base_url_env: str | None = Field(None, description="Environment variable that overrides base_url.")
    api_key_env: str | None = Field(None, description="Environment variable holding the API key.")
    # validate_default so the check below also runs when the key is absent.
    weights: str | None = Field(None, validate_default=True,
                                description="Packaged weights to load (provider embedded).")
    lora: Path | None = Field(None, description="GGUF LoRA adapter applied to the weights (provider embedded).")
    context_length: int = Field(4096, gt=0, description="Tokens the model attends to.")
    max_output_tokens: int = Field(1024, gt=0, description="Tokens allowed for one reply.")
    temperature: float | None = Field(None, ge=0, le=2, description="Sampling temperature.")
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus sampling mass.")
    timeout: float = Field(120.0, gt=0, description="Seconds for one request.")
    max_retries: int = Field(3, ge=0, description="Retries on transient API errors.")
    fallback_model_id: str | None = Field(None, description="Model name to try when model_id fails.")
    description: str = Field("", description="One line shown in model listings.")
    tools: str = Field("all", description="Tools offered to the model: all, or a comma-separated list of names.")
    input_price: float = Field(0.0, ge=0, description="USD per million input tokens (for run costs).")
    output_price: float = Field(0.0, ge=0, description="USD per million output tokens (for run costs).")

    @field_validator("weights")
    @classmethod
    def _weights_for_embedded(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("provider") == "embedded":
            raise ValueError("required when provider = embedded")
        return value

    @field_validator("api_key_env", "base_url_env", "model_id_env")
    @classmethod
    def _names_a_variable(cls, value: str | None) -> str | None:
        # People paste the key itself here; the message must not repeat it (it reaches the terminal).
        if value is not None and not _ENV_NAME.fullmatch(value):
            raise ValueError("must be the NAME of an environment variable (letters, digits, _), not its value")
        return value

    @field_validator("lora")
    @classmethod
    def _lora_for_embedded(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and info.data.get("provider") != "embedded":
            raise ValueError("only embedded models take a LoRA adapter")
        return value.expanduser() if value is not None else None

    @property
    def is_remote(self) -> bool:
        return self.provider != "embedded"

    def resolved_model_id(self, env: Mapping[str, str]) -> str:
        """The variable named by ``model_id_env`` wins, so CLAUDE_MODEL_NAME picks the Claude model."""
        if self.model_id_env and env.get(self.model_id_env):
            return env[self.model_id_env]
        return self.model_id

    def tool_names(self) -> list[str] | None:
        """The tools this profile offers, or None for all of them."""
        names = [n.strip() for n in self.tools.split(",") if n.strip()]
        return None if names in ([], ["all"]) else names

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """USD for one run's tokens at this profile's prices."""
        return (input_tokens * self.input_price + output_tokens * self.output_price) / 1_000_000

    def resolved_base_url(self, env: Mapping[str, str]) -> str | None:
        """The variable named by ``base_url_env`` wins, so OPENROUTER_BASE_URL can point at a proxy."""
        if self.base_url_env and env.get(self.base_url_env):
            return env[self.base_url_env]
        return self.base_url

    def api_key_envs(self) -> tuple[str, ...]:
        """Variables searched for the key, in order."""
        names = (self.api_key_env,) if self.api_key_env else ()
        if self.provider == "anthropic":  # an OpenAI key is never an Anthropic key
            return names or ("ANTHROPIC_API_KEY",)
        return names + tuple(n for n in FALLBACK_KEY_ENVS if n != self.api_key_env)

    def api_key(self, env: Mapping[str, str]) -> str | None:
        for name in self.api_key_envs():
            if env.get(name):
                return env[name]
        return None
