"""Training settings from ``training_config.ini``, with precedence CLI > environment > INI > default.

Unlike ``models.ini`` (profiles, replaced whole), these are settings: a higher-priority file
overrides single keys and inherits the rest from the files beneath it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tongyi_agent.config.errors import ConfigError
from tongyi_agent.config.ini import _problem, _unknown, read_ini
from tongyi_agent.config.trust import UNTRUSTED_TRAINING_KEYS, Ignored, RootTrust, root_trust

__all__ = [
    "ALIASES",
    "INERT_KEYS",
    "OPTIMIZATION_TARGETS",
    "PACKAGED_TRAINING",
    "SECTIONS",
    "TRAINING_FILE",
    "ExperimentsSettings",
    "GrpoSettings",
    "MemorySettings",
    "OptimizationScheduleSettings",
    "PerformanceMetricsSettings",
    "PromptOptimizationSettings",
    "SftSettings",
    "TrainingConfig",
    "TrainingSettings",
    "field_name",
    "load_training_config",
    "read_training_file",
    "training_candidates",
]

TRAINING_FILE = "training_config.ini"
PACKAGED_TRAINING = Path(__file__).parent / "defaults" / TRAINING_FILE
OPTIMIZATION_TARGETS = ("research_efficiency", "response_quality", "tool_usage", "response_speed")

TrainingMode = Literal["prompt", "rl", "sft"]
OptimizationTarget = Literal["research_efficiency", "response_quality", "tool_usage", "response_speed"]

# `package.module:function` (attribute may be dotted, e.g. `Class.method`) or `package.module.function`.
_IDENT = r"[A-Za-z_]\w*"
_DOTTED = re.compile(rf"{_IDENT}(?:\.{_IDENT})*:{_IDENT}(?:\.{_IDENT})*|{_IDENT}(?:\.{_IDENT})+")
# Only the spellings the guide documents; a typo such as `ture` must not silently mean false.
_ENV_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
# INI files also take configparser's on/off; nothing else (pydantic alone would take `t`, `y`, `off`...).
_INI_BOOLS = {**_ENV_BOOLS, "on": True, "off": False}


class _Section(BaseModel):
    # allow_inf_nan=False: `max_response_time = nan` would otherwise pass every bound check.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TrainingSettings(_Section):
    enabled: bool = Field(False, description="Record runs and learn from their rewards.")
    mode: TrainingMode = Field("prompt", description="prompt | rl | sft.")
    training_data_path: Path = Field(Path(".tongyi_training"),
                                     description="Training data directory; relative to --root.")
    reward_function: str | None = Field(None, description="Custom reward as `package.module:function`.")

    @field_validator("reward_function")
    @classmethod
    def _dotted_path(cls, value: str | None) -> str | None:
        # Checked for shape only: importing user code is the learn layer's job, at reward time.
        if value is not None and not _DOTTED.fullmatch(value):
            raise ValueError(f"expected a dotted path like 'package.module:function', got {value!r}")
        return value


class PromptOptimizationSettings(_Section):
    optimization_target: OptimizationTarget = Field("response_quality", description="Reward to maximize.")
    population_size: int = Field(4, gt=0, description="Candidate prompts kept per generation.")
    max_iterations: int = Field(5, gt=0, description="Generations per optimization run (the guide: `iterations`).")
    use_history: bool = Field(True, description="Show worked examples from confirmed earlier runs.")
    history_size: int = Field(50, gt=0, description="Most recent confirmed experiences eligible as examples.")


class PerformanceMetricsSettings(_Section):
    max_response_time: float = Field(60.0, gt=0, description="Seconds; response_speed is 0 at twice this.")
    min_success_rate: float = Field(0.8, ge=0, le=1)
    min_tool_efficiency: float = Field(0.7, ge=0, le=1)


class ExperimentsSettings(_Section):
    enable_ab_testing: bool = False
    control_ratio: float = Field(0.5, ge=0, le=1, description="Fraction of runs on the control prompt.")
    experiment_duration: int = Field(100, gt=0, description="Runs before an experiment is decided.")


class OptimizationScheduleSettings(_Section):
    schedule: Literal["manual", "periodic"] = "manual"
    periodic_interval: int = Field(50, gt=0, description="Recorded runs between periodic optimizations.")
    trigger_on_performance_drop: bool = False
    performance_threshold: float = Field(0.6, ge=0, le=1)


class ToolPolicySettings(_Section):
    policy: Literal["linucb", "thompson"] = Field("linucb", description="Bandit used in rl mode.")
    exploration: float = Field(0.5, ge=0, description="LinUCB alpha, or the Thompson posterior scale.")
    epsilon: float = Field(0.05, ge=0, le=1, description="Chance of a random arm on any run.")
    cost_weight: float = Field(0.0, ge=0, le=1, description="How much model calls, tokens and seconds cost.")


class SftSettings(_Section):
    min_reward: float = Field(0.8, ge=0, le=1, description="Runs imitated need at least this target reward.")
    rank: int = Field(16, gt=0, description="LoRA rank.")
    alpha: int = Field(32, gt=0, description="LoRA alpha (scale = alpha / rank).")
    epochs: float = Field(2.0, gt=0, description="Passes over the examples.")
    learning_rate: float = Field(2e-4, gt=0, lt=1)
    max_length: int = Field(2048, gt=0, description="Tokens per example; longer ones are truncated.")
    target_modules: str = Field("q_proj,k_proj,v_proj,o_proj", description="Comma-separated layers to adapt.")


class GrpoSettings(_Section):
    steps: int = Field(3, gt=0, description="GRPO steps; each samples num_generations answers to one prompt.")
    num_generations: int = Field(4, ge=2, description="Answers sampled per prompt (GRPO compares them).")
    max_completion_length: int = Field(64, gt=0, description="Tokens per sampled answer.")
    max_prompt_length: int = Field(3072, gt=0, description="Prompts longer than this (tokens) are left out.")
    learning_rate: float = Field(1e-5, gt=0, lt=1)
    rank: int = Field(16, gt=0, description="LoRA rank.")
    alpha: int = Field(32, gt=0, description="LoRA alpha (scale = alpha / rank).")
    beta: float = Field(0.0, ge=0, description="KL penalty towards the model before training (0: none).")


class MemorySettings(_Section):
    examples: int = Field(2, ge=0, le=10, description="Worked examples shown per run (0: none).")
    trust_rewards: bool = Field(False, description="Also keep runs confirmed only by their target reward.")
    min_reward: float = Field(0.9, ge=0, le=1, description="Target reward a run needs when trust_rewards is on.")
    retire_after: int = Field(3, gt=0, description="Failed uses in a row that retire an experience.")
    budget_share: float = Field(0.15, gt=0, le=0.15, description="Share of the context window examples may use.")
    min_form_overlap: float = Field(
        0.6, ge=0, le=1, description="How alike an experience's question must be asked to be shown: the share "
        "of words two questions have in common, without names, numbers and paths (0: any similar question).")


# The guide's names for keys that have another name here: `[prompt_optimization] iterations = 100`.
ALIASES: dict[str, dict[str, str]] = {"prompt_optimization": {"iterations": "max_iterations"}}

# Keys that load and validate but that nothing in this version reads, with the reason. `--validate-config`
# reports each one set in a file, so a setting is never silently ignored. Add a key here when it is
# accepted before a layer reads it; remove it when one does. (Every key reads through today.)
INERT_KEYS: dict[tuple[str, str], str] = {}


SECTIONS: dict[str, type[_Section]] = {
    "training": TrainingSettings,
    "prompt_optimization": PromptOptimizationSettings,
    "performance_metrics": PerformanceMetricsSettings,
    "experiments": ExperimentsSettings,
    "optimization_schedule": OptimizationScheduleSettings,
    "tool_policy": ToolPolicySettings,
    "sft": SftSettings,
    "grpo": GrpoSettings,
    "memory": MemorySettings,
}


class TrainingConfig(BaseModel):
    """Every section of training_config.ini, resolved; ``files`` lists the INI files read, highest first."""

    model_config = ConfigDict(frozen=True)

    training: TrainingSettings = Field(default_factory=TrainingSettings)
    prompt_optimization: PromptOptimizationSettings = Field(default_factory=PromptOptimizationSettings)
    performance_metrics: PerformanceMetricsSettings = Field(default_factory=PerformanceMetricsSettings)
    experiments: ExperimentsSettings = Field(default_factory=ExperimentsSettings)
    optimization_schedule: OptimizationScheduleSettings = Field(default_factory=OptimizationScheduleSettings)
    tool_policy: ToolPolicySettings = Field(default_factory=ToolPolicySettings)
    sft: SftSettings = Field(default_factory=SftSettings)
    grpo: GrpoSettings = Field(default_factory=GrpoSettings)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    files: list[Path] = Field(default_factory=list)
    # Settings of an untrusted root's file that were not applied (see config.trust).
    ignored: list[Ignored] = Field(default_factory=list, exclude=True)

    @property
    def enabled(self) -> bool:
        return self.training.enabled

    @property
    def mode(self) -> str:
        return self.training.mode

    def data_dir(self, root: Path | str) -> Path:
        """The training data directory as an absolute path; a relative setting is under ``root``."""
        path = self.training.training_data_path.expanduser()
        return (path if path.is_absolute() else Path(root) / path).resolve()


def training_candidates(root: Path, config_dir: Path) -> list[Path]:
    """Where training_config.ini may live, highest priority first (existing or not)."""
    seen: list[Path] = []
    for path in (root / TRAINING_FILE, config_dir / TRAINING_FILE, PACKAGED_TRAINING):
        if path.resolve() not in (p.resolve() for p in seen):
            seen.append(path)
    return seen


def read_training_file(path: Path) -> dict[str, dict[str, str]]:
    """One file's sections, with unknown sections and keys rejected here, where the file is known."""
    sections = read_ini(path)
    for section, values in sections.items():
        if section not in SECTIONS:
            close = difflib.get_close_matches(section, SECTIONS, n=1)
            hint = f" (did you mean [{close[0]}]?)" if close else f"; known sections: {', '.join(SECTIONS)}"
            raise ConfigError(f"{path} [{section}]: unknown section{hint}")
        aliases = ALIASES.get(section, {})
        fields = SECTIONS[section].model_fields
        known = [*fields, *aliases]
        for key, raw in values.items():
            if key not in known:
                raise ConfigError(f"{path} [{section}] {key}: {_unknown(key, known)}")
            # Checked here, whatever the flags: `enabled = maybe` is a mistake even when --train overrides it.
            field = fields.get(field_name(section, key))
            if field is not None and field.annotation is bool and raw and raw.lower() not in _INI_BOOLS:
                raise ConfigError(f"{path} [{section}] {key}: expected true or false (also yes/no, on/off, 1/0), "
                                  f"got {raw!r}")
        for alias, name in aliases.items():
            if alias in values and name in values:
                raise ConfigError(f"{path} [{section}] {alias}, {name}: both set, but they are one setting "
                                  f"({alias} is the guide's name for {name}); keep one")
    return sections


def field_name(section: str, key: str) -> str:
    """The settings field a file's key sets: the key itself, or the field an alias stands for."""
    return ALIASES.get(section, {}).get(key, key)


# (value, where it came from): `where` is what an error message names, e.g. `file [section] key`.
_Sourced = dict[str, tuple[Any, str]]


def _validate(model: type[_Section], values: _Sourced) -> _Section:
    # An empty value means the built-in default, so `reward_function =` in a higher layer switches
    # off a lower layer's custom reward instead of failing the dotted-path check.
    data = {key: value for key, (value, _) in values.items() if value != ""}
    try:
        return model.model_validate(data)
    except ValidationError as err:
        errors = err.errors()
        first = errors[0]
        key = str(first["loc"][0]) if first["loc"] else ""
        where = values[key][1] if key in values else key
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{where}: {_problem(first)}{more}") from None


def load_training_config(
    root: Path,
    config_dir: Path,
    env: Mapping[str, str],
    *,
    enabled: bool | None = None,
    mode: str | None = None,
    trust: RootTrust | None = None,
) -> TrainingConfig:
    """Resolve training settings: CLI (``enabled``/``mode``) > env > INI (root > config dir > packaged).

    An untrusted root's file (``trust`` defaults to the user's trust store) may not set the keys in
    UNTRUSTED_TRAINING_KEYS; they are left out and listed in ``TrainingConfig.ignored``."""
    trust = trust or root_trust(root, config_dir)
    files = [path for path in training_candidates(root, config_dir) if path.is_file()]
    values: dict[str, _Sourced] = {name: {} for name in SECTIONS}
    held_back: list[tuple[Ignored, str, str, tuple[Any, str]]] = []  # (note, section, field, (raw, where))
    # Lowest priority first, so each higher layer overwrites single keys.
    for path in reversed(files):
        for section, keys in read_training_file(path).items():
            for key, raw in keys.items():
                name = field_name(section, key)
                where = f"{path} [{section}] {key}"
                # An empty value only restores the default, which is always safe to allow.
                if raw and trust.guards(path) and name in UNTRUSTED_TRAINING_KEYS.get(section, ()):
                    # Still checked: a bad value is a broken file, whether or not it would be applied.
                    _validate(SECTIONS[section], {name: (raw, where)})
                    held_back.append((Ignored(path, f"[{section}] {key}"), section, name, (raw, where)))
                    continue
                values[section][name] = (raw, where)

    sections = _resolve(values, env, enabled=enabled, mode=mode)
    # A left-out key matters only when applying it would change the result: the guide's
    # `enabled = false` and `training_data_path = ".tongyi_training"` restate the defaults (and
    # `--train` beats the file anyway), so they are not worth a note on every command.
    ignored: list[Ignored] = []
    if held_back:
        as_trusted = {section: dict(keys) for section, keys in values.items()}
        for _, section, name, sourced in held_back:
            as_trusted[section][name] = sourced
        trusted = _resolve(as_trusted, env, enabled=enabled, mode=mode)
        ignored = [note for note, section, name, _ in held_back
                   if getattr(trusted[section], name) != getattr(sections[section], name)]
    return TrainingConfig.model_validate({**sections, "files": files, "ignored": ignored})


def _resolve(ini: dict[str, _Sourced], env: Mapping[str, str], *, enabled: bool | None,
             mode: str | None) -> dict[str, _Section]:
    """Each section validated from the INI values with the environment, then the CLI, on top."""
    values = {section: dict(keys) for section, keys in ini.items()}
    training = values["training"]
    raw_enabled = env.get("TONGYI_TRAINING_ENABLED", "").strip()
    if raw_enabled:
        if raw_enabled.lower() not in _ENV_BOOLS:
            raise ConfigError(f"TONGYI_TRAINING_ENABLED: expected true/false/1/0/yes/no, got {raw_enabled!r}")
        training["enabled"] = (_ENV_BOOLS[raw_enabled.lower()], "TONGYI_TRAINING_ENABLED")
    for name, key in (("TONGYI_TRAINING_MODE", "mode"), ("TONGYI_TRAINING_PATH", "training_data_path")):
        raw = env.get(name, "").strip()
        if raw:
            training[key] = (raw, name)
    if enabled is not None:
        training["enabled"] = (enabled, "--train")
    if mode is not None:
        training["mode"] = (mode, "--training-mode")
    return {name: _validate(model, values[name]) for name, model in SECTIONS.items()}
