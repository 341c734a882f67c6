from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tongyi_agent.config import ConfigError
from tongyi_agent.config.training import (
    OPTIMIZATION_TARGETS,
    PACKAGED_TRAINING,
    SECTIONS,
    TrainingConfig,
    load_training_config,
    read_training_file,
)
from tongyi_agent.config.trust import RootTrust

Write = Callable[[Path, str], Path]


def trusted(root: Path) -> RootTrust:
    """As after `tongyi-cli trust root`: these tests are about layering, tests/security about trust."""
    return RootTrust(root.resolve(), True)


def _error(root: Path, config_dir: Path, env: dict[str, str] | None = None, **cli: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_training_config(root, config_dir, env or {}, trust=trusted(root), **cli)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    return message


def test_packaged_defaults(root: Path, config_dir: Path) -> None:
    config = load_training_config(root, config_dir, {})
    assert config.files == [PACKAGED_TRAINING]
    t = config.training
    assert (t.enabled, t.mode, t.training_data_path, t.reward_function) == (
        False, "prompt", Path(".tongyi_training"), None)
    po = config.prompt_optimization
    assert (po.optimization_target, po.population_size, po.max_iterations) == ("response_quality", 4, 5)
    pm = config.performance_metrics
    assert (pm.max_response_time, pm.min_success_rate, pm.min_tool_efficiency) == (60.0, 0.8, 0.7)
    ex = config.experiments
    assert (ex.enable_ab_testing, ex.control_ratio, ex.experiment_duration) == (False, 0.5, 100)
    sc = config.optimization_schedule
    assert (sc.schedule, sc.periodic_interval, sc.trigger_on_performance_drop, sc.performance_threshold) == (
        "manual", 50, False, 0.6)
    assert po.optimization_target in OPTIMIZATION_TARGETS


def test_packaged_file_matches_model_defaults() -> None:
    # The packaged file documents every key; it must agree with the models' own defaults.
    sections = read_training_file(PACKAGED_TRAINING)
    assert set(sections) == set(SECTIONS)
    for name, model in SECTIONS.items():
        assert set(sections[name]) == set(model.model_fields), name
    assert TrainingConfig() == load_training_config(Path("/nonexistent"), Path("/nonexistent"), {}).model_copy(
        update={"files": []})


def test_layers_override_single_keys(root: Path, config_dir: Path, write: Write) -> None:
    write(config_dir / "training_config.ini",
          "[training]\nmode = sft\ntraining_data_path = from-config-dir\n"
          "[performance_metrics]\nmax_response_time = 30\nmin_success_rate = 0.9\n")
    write(root / "training_config.ini",
          "[training]\nenabled = yes\ntraining_data_path = 'from root'\n"
          "[performance_metrics]\nmax_response_time = 10.5\n")
    config = load_training_config(root, config_dir, {}, trust=trusted(root))
    assert config.files == [root / "training_config.ini", config_dir / "training_config.ini", PACKAGED_TRAINING]
    assert config.enabled is True
    assert config.mode == "sft"  # from the config dir: the root file did not set it
    assert config.training.training_data_path == Path("from root")
    assert config.performance_metrics.max_response_time == 10.5
    assert config.performance_metrics.min_success_rate == 0.9
    assert config.performance_metrics.min_tool_efficiency == 0.7  # packaged


def test_empty_value_means_builtin_default(root: Path, config_dir: Path, write: Write) -> None:
    write(config_dir / "training_config.ini", "[training]\nreward_function = mypkg.rewards:score\n")
    assert load_training_config(root, config_dir, {}).training.reward_function == "mypkg.rewards:score"
    write(root / "training_config.ini", "[training]\nreward_function =\n")
    assert load_training_config(root, config_dir, {}).training.reward_function is None


def test_env_overrides_ini_and_cli_overrides_env(root: Path, config_dir: Path, write: Write) -> None:
    write(root / "training_config.ini", "[training]\nenabled = true\nmode = sft\ntraining_data_path = ini\n")
    env = {"TONGYI_TRAINING_ENABLED": "no", "TONGYI_TRAINING_MODE": "rl", "TONGYI_TRAINING_PATH": "env-dir"}
    config = load_training_config(root, config_dir, env, trust=trusted(root))
    assert (config.enabled, config.mode, config.training.training_data_path) == (False, "rl", Path("env-dir"))
    config = load_training_config(root, config_dir, env, enabled=True, mode="prompt", trust=trusted(root))
    assert (config.enabled, config.mode) == (True, "prompt")
    # An empty variable is unset, as elsewhere in the config layer.
    config = load_training_config(root, config_dir, {"TONGYI_TRAINING_MODE": " ", "TONGYI_TRAINING_ENABLED": ""},
                                  trust=trusted(root))
    assert (config.enabled, config.mode) == (True, "sft")


@pytest.mark.parametrize("raw,expected", [("true", True), ("1", True), ("YES", True), ("Yes", True),
                                          ("false", False), ("0", False), ("no", False), ("False", False)])
def test_env_enabled_spellings(root: Path, config_dir: Path, raw: str, expected: bool) -> None:
    assert load_training_config(root, config_dir, {"TONGYI_TRAINING_ENABLED": raw}).enabled is expected


@pytest.mark.parametrize("raw", ["maybe", "on", "2", "ture"])
def test_env_enabled_rejects_other_values(root: Path, config_dir: Path, raw: str) -> None:
    message = _error(root, config_dir, {"TONGYI_TRAINING_ENABLED": raw})
    assert message == f"TONGYI_TRAINING_ENABLED: expected true/false/1/0/yes/no, got {raw!r}"


def test_bad_env_and_cli_mode_name_their_source(root: Path, config_dir: Path) -> None:
    assert _error(root, config_dir, {"TONGYI_TRAINING_MODE": "fast"}) == (
        "TONGYI_TRAINING_MODE: expected 'prompt', 'rl' or 'sft', got 'fast'")
    assert _error(root, config_dir, mode="fast").startswith("--training-mode: expected 'prompt'")


def test_data_dir(root: Path, config_dir: Path, write: Write, tmp_path: Path) -> None:
    default = load_training_config(root, config_dir, {}, trust=trusted(root))
    assert default.data_dir(root) == root.resolve() / ".tongyi_training"
    absolute = tmp_path / "elsewhere"
    config = load_training_config(root, config_dir, {"TONGYI_TRAINING_PATH": str(absolute)})
    assert config.data_dir(root) == absolute.resolve()
    write(root / "training_config.ini", "[training]\ntraining_data_path = ../shared/data\n")
    config = load_training_config(root, config_dir, {}, trust=trusted(root))
    assert config.data_dir(root) == (root.parent / "shared" / "data").resolve()
    assert config.data_dir(root).is_absolute()


@pytest.mark.parametrize("section,key,value,problem", [
    ("training", "mode", "fast", "expected 'prompt', 'rl' or 'sft', got 'fast'"),
    ("training", "enabled", "maybe", "got 'maybe'"),
    ("training", "reward_function", "not a path", "expected a dotted path like 'package.module:function'"),
    ("training", "reward_function", "justaname", "expected a dotted path"),
    ("performance_metrics", "max_response_time", "abc", "expected a number, got 'abc'"),
    ("performance_metrics", "max_response_time", "0", "greater than 0"),
    ("performance_metrics", "max_response_time", "nan", "finite number"),
    ("performance_metrics", "min_success_rate", "1.5", "less than or equal to 1"),
    ("experiments", "control_ratio", "2", "less than or equal to 1"),
    ("experiments", "control_ratio", "-0.1", "greater than or equal to 0"),
    ("experiments", "experiment_duration", "ten", "expected an integer, got 'ten'"),
    ("prompt_optimization", "population_size", "2.5", "expected an integer, got '2.5'"),
    ("prompt_optimization", "optimization_target", "accuracy", "expected 'research_efficiency'"),
    ("optimization_schedule", "schedule", "hourly", "expected 'manual' or 'periodic', got 'hourly'"),
    ("optimization_schedule", "performance_threshold", "x", "expected a number"),
])
def test_bad_values_name_file_section_and_key(root: Path, config_dir: Path, write: Write, section: str, key: str,
                                              value: str, problem: str) -> None:
    path = write(root / "training_config.ini", f"[{section}]\n{key} = {value}\n")
    message = _error(root, config_dir)
    assert message.startswith(f"{path} [{section}] {key}: ")
    assert problem in message


def test_bad_value_in_lower_layer_names_that_file(root: Path, config_dir: Path, write: Write) -> None:
    write(root / "training_config.ini", "[experiments]\nenable_ab_testing = true\n")
    bad = write(config_dir / "training_config.ini", "[experiments]\ncontrol_ratio = 2\n")
    assert _error(root, config_dir).startswith(f"{bad} [experiments] control_ratio: ")


def test_unknown_key_is_an_error_with_a_hint(root: Path, config_dir: Path, write: Write) -> None:
    path = write(root / "training_config.ini", "[training]\nmdoe = rl\n")
    assert _error(root, config_dir) == f"{path} [training] mdoe: unknown key (did you mean 'mode'?)"
    write(root / "training_config.ini", "[experiments]\nzzz = 1\n")
    message = _error(root, config_dir)
    assert "[experiments] zzz: unknown key; known keys: enable_ab_testing, control_ratio" in message


def test_unknown_section_is_an_error(root: Path, config_dir: Path, write: Write) -> None:
    path = write(root / "training_config.ini", "[trainig]\nenabled = true\n")
    assert _error(root, config_dir) == f"{path} [trainig]: unknown section (did you mean [training]?)"
    write(root / "training_config.ini", "[DEFAULT]\nenabled = true\n")
    assert "[DEFAULT]: unknown section; known sections: training, prompt_optimization" in _error(root, config_dir)


def test_malformed_file_is_one_line(root: Path, config_dir: Path, write: Write) -> None:
    path = write(root / "training_config.ini", "enabled = true\n")
    assert _error(root, config_dir).startswith(f"{path}: malformed INI: line 1")


def test_config_is_frozen(root: Path, config_dir: Path) -> None:
    config = load_training_config(root, config_dir, {})
    with pytest.raises(ValueError):
        config.training.mode = "rl"  # type: ignore[misc]
