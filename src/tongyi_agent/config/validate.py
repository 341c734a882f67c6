"""`tongyi-cli --validate-config`: report on every config file, .env file and profile without raising."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tongyi_agent.config.environment import env_files, env_layers, read_env_file
from tongyi_agent.config.errors import ConfigError
from tongyi_agent.config.ini import ModelsFile, merge, models_candidates, read_models_file
from tongyi_agent.config.preferences import read_preferences
from tongyi_agent.config.profiles import ModelProfile
from tongyi_agent.config.settings import choose_profile_name, resolve_root, run_limits, user_config_dir
from tongyi_agent.config.training import (
    ALIASES,
    INERT_KEYS,
    PACKAGED_TRAINING,
    field_name,
    load_training_config,
    read_training_file,
    training_candidates,
)
from tongyi_agent.config.trust import Ignored, RootTrust, ignored_note, root_trust

Status = Literal["pass", "warn", "fail"]


@dataclass(frozen=True)
class CheckItem:
    name: str
    status: Status
    detail: str


def validate_config(root: Path | str, config_dir: Path | None = None,
                    env: Mapping[str, str] | None = None) -> list[CheckItem]:
    """One item per models.ini, .env file and profile, then the default/fallback choice and run limits.

    Embedded weights are checked by the caller: this layer must not import the llm layer.
    """
    try:
        root_path = resolve_root(root)
    except ConfigError as err:
        return [CheckItem("root", "fail", str(err))]
    config_dir = user_config_dir(env) if config_dir is None else config_dir
    items: list[CheckItem] = [CheckItem("root", "pass", str(root_path))]
    trust = root_trust(root_path, config_dir)

    layers: list[ModelsFile] = []
    for path in models_candidates(root_path, config_dir):
        if not path.is_file():
            continue
        try:
            layer = read_models_file(path, untrusted=trust.guards(path))
        except ConfigError as err:
            items.append(CheckItem(str(path), "fail", str(err)))
            continue
        layers.append(layer)
        items.append(CheckItem(str(path), "pass", f"{len(layer.profiles)} profile(s)"))

    for path in env_files(root_path, config_dir):
        items.append(CheckItem(str(path), "pass", f"{len(read_env_file(path))} variable(s)"))
    merged, env_ignored = env_layers(root_path, config_dir, env, trust=trust)

    # Broken files are left out above, so the remaining layers still give a useful picture.
    models = merge(layers)
    training_items, training_ignored = training_checks(root_path, config_dir, merged, trust)
    note = ignored_note(trust, models.ignored + env_ignored + training_ignored)
    items.append(CheckItem("trust", "warn", note) if note else
                 CheckItem("trust", "pass", "trusted" if trust.trusted else "not trusted; sets nothing guarded"))
    items += [_check_profile(p, merged) for p in models.profiles.values()]

    try:
        preferred = read_preferences(config_dir).get("model")
    except ConfigError as err:
        items.append(CheckItem("preferences", "fail", str(err)))
        preferred = None
    name, source = choose_profile_name(None, merged, models, preferred)
    if name in models.profiles:
        items.append(CheckItem("default profile", "pass", f"'{name}' (from {source})"))
    else:
        items.append(CheckItem("default profile", "fail", f"'{name}' (from {source}) is not defined"))
    if models.fallback:
        ok = models.fallback in models.profiles
        items.append(CheckItem("fallback profile", "pass" if ok else "fail",
                               f"'{models.fallback}'" + ("" if ok else " is not defined")))

    try:
        steps, seconds, tokens = run_limits(merged)
        items.append(CheckItem("run limits", "pass",
                               f"max_steps={steps}, timeout={seconds:g}s, max_tokens={tokens}"))
    except ConfigError as err:
        items.append(CheckItem("run limits", "fail", str(err)))
    return items + training_items


def training_checks(root: Path, config_dir: Path, env: Mapping[str, str],
                    trust: RootTrust) -> tuple[list[CheckItem], list[Ignored]]:
    """One item per training_config.ini, one per key set there that has no effect, then the merged
    result; and the keys an untrusted root's file set that were left out (the trust item lists them)."""
    items: list[CheckItem] = []
    for path in training_candidates(root, config_dir):
        if not path.is_file():
            continue
        try:
            sections = read_training_file(path)
        except ConfigError as err:
            items.append(CheckItem(str(path), "fail", str(err)))
            continue
        keys = [(section, key) for section, values in sections.items() for key in values]
        aliased = [f"{key} is read as {ALIASES[section][key]}" for section, key in keys
                   if key in ALIASES.get(section, {})]
        items.append(CheckItem(str(path), "pass", "; ".join([f"{len(keys)} key(s)", *aliased])))
        if path.resolve() == PACKAGED_TRAINING.resolve():
            continue  # the packaged defaults set every key; only what the user wrote is worth a note
        for section, key in keys:
            reason = INERT_KEYS.get((section, field_name(section, key)))
            if reason:
                items.append(CheckItem(f"[{section}] {key}", "warn", f"accepted, but has no effect: {reason}"))
    try:
        config = load_training_config(root, config_dir, env, trust=trust)
    except ConfigError as err:
        items.append(CheckItem("training settings", "fail", str(err)))
        return items, []
    po = config.prompt_optimization
    memory = "on" if po.use_history and config.memory.examples > 0 else "off"
    items.append(CheckItem("training settings", "pass",
                           f"enabled={config.enabled}, mode={config.mode}, target={po.optimization_target}, "
                           f"iterations={po.max_iterations}, experience memory={memory} "
                           f"(use_history={po.use_history}, history_size={po.history_size}), "
                           f"data={config.data_dir(root)}"))
    return items, config.ignored


def _check_profile(profile: ModelProfile, env: Mapping[str, str]) -> CheckItem:
    name = f"profile {profile.name}"
    if not profile.is_remote:
        return CheckItem(name, "pass", f"{profile.provider} {profile.model_id}")
    url = profile.resolved_base_url(env) or "the provider's default URL"
    if profile.api_key(env) is None:
        # Only a warning: the profile is fine, it just cannot be used until the key is set.
        wanted = " or ".join(profile.api_key_envs())
        return CheckItem(name, "warn", f"no API key: set {wanted}")
    return CheckItem(name, "pass", f"{profile.model_id} at {url}")
