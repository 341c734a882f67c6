"""The integration guide's training_config.ini blocks, pasted verbatim, load and mean what they say."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.trusting import trust
from tongyi_agent.config import CheckItem, ConfigError, validate_config
from tongyi_agent.config.ini import ini_value
from tongyi_agent.config.training import (
    ALIASES,
    INERT_KEYS,
    SECTIONS,
    TrainingConfig,
    field_name,
    load_training_config,
    read_training_file,
)
from tongyi_agent.config.trust import RootTrust

GUIDE = Path(__file__).parents[1] / "data" / "guide"
Write = Callable[[Path, str], Path]


def _load(root: Path, config_dir: Path, block: str) -> TrainingConfig:
    shutil.copy(GUIDE / block, root / "training_config.ini")
    # Trusted, as the user's own project: the guide's files set recording and the schedule.
    return load_training_config(root, config_dir, {}, trust=RootTrust(root.resolve(), True))


def test_guide_file_loads_with_its_values(root: Path, config_dir: Path) -> None:
    config = _load(root, config_dir, "training_config.ini")
    assert (config.enabled, config.mode, config.training.training_data_path) == (
        False, "prompt", Path(".tongyi_training"))
    po = config.prompt_optimization
    assert po.max_iterations == 100  # the guide's `iterations`
    assert po.optimization_target == "research_efficiency"
    assert (po.use_history, po.history_size) == (True, 50)


@pytest.mark.parametrize("block,section,expected", [
    ("training_targets.ini", "prompt_optimization", {"optimization_target": "research_efficiency"}),
    ("performance_thresholds.ini", "performance_metrics",
     {"max_response_time": 30.0, "min_success_rate": 0.8, "min_tool_efficiency": 0.6}),
    ("ab_testing.ini", "experiments", {"enable_ab_testing": True, "control_ratio": 0.5, "experiment_duration": 100}),
    ("scheduled_optimization.ini", "optimization_schedule",
     {"schedule": "periodic", "periodic_interval": 100, "trigger_on_performance_drop": True,
      "performance_threshold": 0.7}),
])
def test_guide_snippets_load_with_their_values(root: Path, config_dir: Path, block: str, section: str,
                                               expected: dict[str, object]) -> None:
    settings = getattr(_load(root, config_dir, block), section)
    assert {key: getattr(settings, key) for key in expected} == expected


@pytest.mark.parametrize("raw,value", [
    ('"prompt"  # "prompt", "rl", "sft"', "prompt"),   # the guide's line: quotes, then a comment
    ("local        # profile used when --model is not set", "local"),
    ("# nothing set", ""),                               # `fallback =   # none` means empty
    ('"a # b"', "a # b"),                                # inside quotes a '#' is text
    ("'x' ; note", "x"),
    ("http://h/#anchor", "http://h/#anchor"),            # no whitespace before '#': part of the value
    ("a; b", "a; b"),
    ('"a" b', '"a" b'),                                  # not one quoted value: kept, for validation to judge
    ("100", "100"),
])
def test_ini_value_strips_inline_comments_and_quotes(raw: str, value: str) -> None:
    assert ini_value(raw) == value


def test_iterations_is_the_guide_name_for_max_iterations(root: Path, config_dir: Path, write: Write) -> None:
    write(config_dir / "training_config.ini", "[prompt_optimization]\nmax_iterations = 7\n")
    assert load_training_config(root, config_dir, {}).prompt_optimization.max_iterations == 7
    write(root / "training_config.ini", "[prompt_optimization]\niterations = 12\n")
    # A higher layer's `iterations` overrides a lower layer's `max_iterations`: they are one setting.
    assert load_training_config(root, config_dir, {}).prompt_optimization.max_iterations == 12


def test_iterations_and_max_iterations_together_name_both(root: Path, config_dir: Path, write: Write) -> None:
    path = write(root / "training_config.ini", "[prompt_optimization]\niterations = 100\nmax_iterations = 5\n")
    with pytest.raises(ConfigError) as info:
        load_training_config(root, config_dir, {})
    message = str(info.value)
    assert message.startswith(f"{path} [prompt_optimization] iterations, max_iterations: both set")
    assert "keep one" in message


def test_bad_iterations_value_names_the_key_as_written(root: Path, config_dir: Path, write: Write) -> None:
    path = write(root / "training_config.ini", "[prompt_optimization]\niterations = 0\n")
    with pytest.raises(ConfigError, match=rf"^{path} \[prompt_optimization\] iterations: .*greater than 0"):
        load_training_config(root, config_dir, {})


@pytest.mark.parametrize("text,problem", [
    ("history_size = 0", "history_size: input should be greater than 0"),
    ("history_size = many", "history_size: expected an integer, got 'many'"),
    ("use_history = perhaps", "use_history: "),
])
def test_history_settings_are_validated(root: Path, config_dir: Path, write: Write, text: str, problem: str) -> None:
    write(root / "training_config.ini", f"[prompt_optimization]\n{text}\n")
    with pytest.raises(ConfigError, match=problem):
        load_training_config(root, config_dir, {})


def test_validate_config_reports_the_guide_file(root: Path, config_dir: Path) -> None:
    shutil.copy(GUIDE / "training_config.ini", root / "training_config.ini")
    items = {item.name: item for item in validate_config(root)}
    assert not [i for i in items.values() if i.status != "pass" and "training" in i.name]
    guide_file = items[str(root / "training_config.ini")]
    assert guide_file.status == "pass"
    assert guide_file.detail == "7 key(s); iterations is read as max_iterations"
    settings = items["training settings"]
    assert settings.status == "pass"
    assert ("mode=prompt, target=research_efficiency, iterations=100, experience memory=on "
            "(use_history=True, history_size=50)") in settings.detail
    # Every key of the guide's file is read today, so none is reported as having no effect.
    assert not [name for name in items if name.startswith("[prompt_optimization]")]


def test_validate_config_warns_about_an_accepted_key_without_effect(root: Path, config_dir: Path, write: Write,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # The mechanism for a key that is accepted before any layer reads it: declared inert, with a reason.
    monkeypatch.setitem(INERT_KEYS, ("prompt_optimization", "history_size"), "nothing reads it in this test")
    path = write(root / "training_config.ini", "[prompt_optimization]\nhistory_size = 20\n")
    items = {item.name: item for item in validate_config(root)}
    assert items[str(path)].status == "pass"
    assert items["[prompt_optimization] history_size"] == CheckItem(
        "[prompt_optimization] history_size", "warn", "accepted, but has no effect: nothing reads it in this test")
    # The packaged defaults set every key; they are not reported.
    assert len([name for name in items if name.startswith("[prompt_optimization]")]) == 1


def test_validate_config_reports_a_bad_training_file(root: Path, config_dir: Path, write: Write) -> None:
    path = write(root / "training_config.ini", "[prompt_optimization]\niterations = 3\nmax_iterations = 4\n")
    items = {item.name: item for item in validate_config(root)}
    assert items[str(path)].status == "fail"
    assert "iterations, max_iterations: both set" in items[str(path)].detail
    assert items["training settings"].status == "fail"


def test_every_guide_key_is_a_setting_and_inert_ones_say_why() -> None:
    # Each key of the guide's blocks is a settings field or the `iterations` alias, so none is dropped
    # on the way in; the keys that nothing reads yet carry the reason --validate-config prints.
    for block in sorted(GUIDE.glob("*.ini")):
        for section, values in read_training_file(block).items():
            for key in values:
                assert field_name(section, key) in SECTIONS[section].model_fields, (block.name, section, key)
                assert key in SECTIONS[section].model_fields or key in ALIASES[section]
    for (section, key), reason in INERT_KEYS.items():
        assert key in SECTIONS[section].model_fields and reason
    # use_history and history_size are read by the experience memory, so they are not inert.
    assert ("prompt_optimization", "use_history") not in INERT_KEYS
    assert ("prompt_optimization", "history_size") not in INERT_KEYS


def test_untrusted_folder_with_the_guide_file_is_noted_only_where_it_matters(root: Path, config_dir: Path,
                                                                              write: Write) -> None:
    # A folder under research may not choose where data goes or whether runs are recorded until the
    # user trusts it. The guide's file restates the defaults for both, so leaving them out changes
    # nothing and no note is printed on every command ...
    shutil.copy(GUIDE / "training_config.ini", root / "training_config.ini")
    assert load_training_config(root, config_dir, {}).ignored == []
    items = {item.name: item for item in validate_config(root)}
    assert items["trust"] == CheckItem("trust", "pass", "not trusted; sets nothing guarded")
    # ... but the same keys with other values are left out, named, with how to trust the folder.
    text = (GUIDE / "training_config.ini").read_text()
    write(root / "training_config.ini", text.replace("enabled = false", "enabled = true").replace(
        '".tongyi_training"', '"elsewhere"'))
    config = load_training_config(root, config_dir, {})
    assert (config.enabled, config.training.training_data_path) == (False, Path(".tongyi_training"))
    items = {item.name: item for item in validate_config(root)}
    assert items["trust"].status == "warn"
    ignored = ("so these settings were ignored: training_config.ini [training] enabled, "
               "training_config.ini [training] training_data_path; to use them run 'tongyi-cli trust ")
    assert ignored in items["trust"].detail
    # `--train` beats the file's `enabled` anyway, so only the storage path is worth the note then.
    assert [i.key for i in load_training_config(root, config_dir, {}, enabled=True).ignored] == [
        "[training] training_data_path"]
    trust(root)
    assert load_training_config(root, config_dir, {}).training.training_data_path == Path("elsewhere")
    items = {item.name: item for item in validate_config(root)}
    assert items["trust"] == CheckItem("trust", "pass", "trusted")
