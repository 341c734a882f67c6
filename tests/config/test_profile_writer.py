"""Writing a promoted adapter's profile into a user's models.ini: the rest of the file is untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from tongyi_agent.config.errors import ConfigError
from tongyi_agent.config.ini import read_models_file
from tongyi_agent.config.profile_writer import upsert_profile

USER_FILE = """# my models
[models]
default = mine

# my own profile
[mine]
provider = openai
base_url = http://127.0.0.1:9/v1
model_id = m
"""
SFT = {"provider": "embedded", "model_id": "q+sft", "weights": "qwen2.5-coder-0.5b", "dialect": "react",
       "lora": "/adapters/a.gguf"}


def test_a_new_profile_is_appended_and_comments_survive(tmp_path: Path) -> None:
    path = tmp_path / "models.ini"
    path.write_text(USER_FILE)
    upsert_profile(path, "local-small-sft", SFT, comment="Written by the optimizer.")
    text = path.read_text()
    assert text.startswith(USER_FILE) and "# Written by the optimizer.\n[local-small-sft]\n" in text
    profiles = read_models_file(path).profiles
    assert profiles["local-small-sft"].lora == Path("/adapters/a.gguf")
    assert profiles["mine"].model_id == "m"


def test_a_second_promotion_replaces_only_its_own_section(tmp_path: Path) -> None:
    path = tmp_path / "models.ini"
    path.write_text(USER_FILE)
    upsert_profile(path, "local-small-sft", SFT, comment="first")
    path.write_text(path.read_text() + "\n# about the next one\n[later]\nprovider = openai\nmodel_id = x\n")
    upsert_profile(path, "local-small-sft", {**SFT, "lora": "/adapters/b.gguf"}, comment="second")
    text = path.read_text()
    assert text.count("[local-small-sft]") == 1 and "# first" not in text and "# second" in text
    assert "# about the next one\n[later]" in text and text.startswith(USER_FILE)
    assert read_models_file(path).profiles["local-small-sft"].lora == Path("/adapters/b.gguf")


def test_an_invalid_profile_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "models.ini"
    path.write_text(USER_FILE)
    with pytest.raises(ConfigError):
        upsert_profile(path, "broken", {"provider": "openai", "model_id": "x", "lora": "/a.gguf"})
    assert path.read_text() == USER_FILE
    assert [p.name for p in tmp_path.iterdir()] == ["models.ini"]  # no temporary file left behind


def test_the_file_is_created_when_missing(tmp_path: Path) -> None:
    path = tmp_path / "config" / "models.ini"
    upsert_profile(path, "local-small-sft", SFT)
    assert set(read_models_file(path).profiles) == {"local-small-sft"}
