from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tongyi_agent.config import CheckItem, validate_config
from tongyi_agent.config.ini import PACKAGED_MODELS
from tongyi_agent.config.trust import trust_folder

Write = Callable[[Path, str], Path]


def by_name(items: list[CheckItem]) -> dict[str, CheckItem]:
    return {item.name: item for item in items}


def test_defaults_pass_with_warnings_for_keyless_remote(root: Path, config_dir: Path) -> None:
    items = by_name(validate_config(root))
    assert items["root"].status == "pass"
    assert items[str(PACKAGED_MODELS)].status == "pass"
    assert items["profile local"].status == "pass"
    assert items["profile tongyi"].status == "warn"
    assert "OPENROUTER_API_KEY" in items["profile tongyi"].detail
    assert items["default profile"].status == "pass"
    assert "fallback profile" not in items
    assert not [i for i in items.values() if i.status == "fail"]


def test_key_from_dotenv_turns_warning_into_pass(root: Path, config_dir: Path, write: Write) -> None:
    env_file = write(root / ".env", "OPENROUTER_API_KEY=sk-1\n")
    trust_folder(root, config_dir)  # an untrusted root's .env may not set keys
    items = by_name(validate_config(root))
    assert items[str(env_file)] == CheckItem(str(env_file), "pass", "1 variable(s)")
    assert items["profile tongyi"].status == "pass"
    assert "https://openrouter.ai/api/v1" in items["profile tongyi"].detail


def test_broken_file_fails_others_still_checked(root: Path, config_dir: Path, write: Write) -> None:
    broken = write(root / "models.ini", "[local]\nprovider = openai\nmodel_id = m\ndialect = foo\n")
    items = by_name(validate_config(root))
    assert items[str(broken)].status == "fail"
    assert items[str(broken)].detail.startswith(f"{broken} [local] dialect: expected")
    assert items[str(PACKAGED_MODELS)].status == "pass"
    assert items["profile local"].status == "pass"  # from the packaged layer


def test_missing_default_and_fallback_fail(root: Path, config_dir: Path, write: Write) -> None:
    write(config_dir / "models.ini", "[models]\ndefault = gone\nfallback = also-gone\n")
    items = by_name(validate_config(root, config_dir=config_dir))
    assert items["default profile"].status == "fail"
    assert "'gone'" in items["default profile"].detail
    assert items["fallback profile"].status == "fail"


def test_env_choices_and_limits_are_checked(root: Path) -> None:
    items = by_name(validate_config(root, env={"TONGYI_MODEL": "tongyi", "TONGYI_MAX_STEPS": "x"}))
    assert items["default profile"] == CheckItem("default profile", "pass", "'tongyi' (from TONGYI_MODEL)")
    assert items["run limits"].status == "fail"
    assert "TONGYI_MAX_STEPS" in items["run limits"].detail


def test_missing_root_is_a_single_fail(tmp_path: Path) -> None:
    items = validate_config(tmp_path / "absent")
    assert [(i.name, i.status) for i in items] == [("root", "fail")]
