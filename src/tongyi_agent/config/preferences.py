"""Preferences the user sets from the CLI (`tongyi-cli models set NAME`), kept in the config directory.

A small JSON file rather than an edit of models.ini: the user's INI stays as they wrote it, and a
preference sits between the environment and the INI files in the precedence order.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from tongyi_agent.config.errors import ConfigError

PREFERENCES_FILE = "preferences.json"


def read_preferences(config_dir: Path) -> dict[str, Any]:
    path = config_dir / PREFERENCES_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable preferences ({exc}); delete the file to reset them") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object; delete the file to reset it")
    return data


def write_preference(config_dir: Path, key: str, value: Any) -> Path:
    """Set one preference atomically (None removes it); returns the file written."""
    data = read_preferences(config_dir)
    if value is None:
        data.pop(key, None)
    else:
        data[key] = value
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / PREFERENCES_FILE
    fd, tmp = tempfile.mkstemp(dir=config_dir, prefix=".preferences-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
    os.replace(tmp, path)
    return path
