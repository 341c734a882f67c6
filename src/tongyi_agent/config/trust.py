"""Workspace trust: what a folder under research may configure, and which folders the user trusts.

A folder passed as ``--root`` is data that someone else may have written (a cloned repository, a
download). Its ``models.ini``, ``.env`` and ``training_config.ini`` may say how to answer (profiles
without endpoints or keys, budgets, the default model) but not where keys or data go, or which code
runs, until the user trusts the folder with ``tongyi-cli trust DIR`` (like direnv's ``allow``).

Trust is recorded in the user config directory as the folder's real path plus the sha256 of each of
those three files; editing, adding or removing one of them withdraws it until the user trusts the
folder again. The user config directory and the environment are always trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tongyi_agent.config.errors import ConfigError

TRUST_FILE = "trusted_folders.json"
GUARDED_FILES = ("models.ini", ".env", "training_config.ini")

# models.ini profile keys that choose where requests (and the key sent with them) go, or what file
# the embedded runtime loads.
UNTRUSTED_PROFILE_KEYS = frozenset({"base_url", "base_url_env", "api_key_env", "model_id_env", "lora"})

# training_config.ini keys that choose what code runs (a custom reward is imported), where data is
# stored, whether it is stored at all, and whether optimizations start in the background.
UNTRUSTED_TRAINING_KEYS: dict[str, frozenset[str]] = {
    "training": frozenset({"enabled", "training_data_path", "reward_function"}),
    "optimization_schedule": frozenset({"schedule", "trigger_on_performance_drop"}),
}

# The only variables an untrusted folder's .env may set: how to answer, never where anything goes.
# An allow-list, so that a switch added later (a URL, a key, a sandbox mode) is guarded by default.
ROOT_ENV_ALLOWED = frozenset({
    "TONGYI_MODEL", "TONGYI_MAX_STEPS", "TONGYI_TIMEOUT", "TONGYI_MAX_TOKENS", "TONGYI_TRAINING_MODE",
    "TONGYI_OFFLINE", "TONGYI_PAPER_SERVICES",
})


@dataclass(frozen=True)
class Ignored:
    """One setting from an untrusted folder that was not applied."""

    file: Path
    key: str  # "[section] key" for INI files, the variable name for .env

    def label(self) -> str:
        return f"{self.file.name} {self.key}"


@dataclass(frozen=True)
class RootTrust:
    """Whether one run honours its root folder's guarded settings, and why not."""

    root: Path
    trusted: bool
    reason: str = ""  # why it is not trusted: "never trusted" or "changed since you trusted it"

    def guards(self, path: Path) -> bool:
        """True if ``path`` is this untrusted root's own config file, whose guarded keys are ignored."""
        if self.trusted:
            return False
        return path.name in GUARDED_FILES and path.parent.resolve() == self.root


def ignored_note(trust: RootTrust, ignored: Iterable[Ignored]) -> str | None:
    """The one line that says what was ignored and how to trust the folder; None if nothing was."""
    labels = list(dict.fromkeys(item.label() for item in ignored))
    if not labels:
        return None
    folder = shlex.quote(str(trust.root))
    return (f"{trust.root} is not trusted ({trust.reason}), so these settings were ignored: {', '.join(labels)}; "
            f"to use them run 'tongyi-cli trust {folder}', or pass --trust-root for one run")


def fingerprint(root: Path) -> dict[str, str | None]:
    """sha256 of each guarded file in ``root`` (None when absent)."""
    hashes: dict[str, str | None] = {}
    for name in GUARDED_FILES:
        path = root / name
        try:
            hashes[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        except FileNotFoundError:
            hashes[name] = None
        except (IsADirectoryError, PermissionError, OSError) as exc:
            # Something there that cannot be read: record it as such, so trust never silently matches.
            hashes[name] = f"unreadable: {type(exc).__name__}"
    return hashes


def _read_store(config_dir: Path) -> dict[str, Any]:
    path = config_dir / TRUST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the trusted folders: {exc}") from None
    folders = data.get("folders") if isinstance(data, dict) else None
    return folders if isinstance(folders, dict) else {}


def _write_store(config_dir: Path, folders: dict[str, Any]) -> None:
    config_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=config_dir, prefix=".trust-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"version": 1, "folders": folders}, handle, indent=1, sort_keys=True)
        os.chmod(tmp, 0o600)
        os.replace(tmp, config_dir / TRUST_FILE)  # atomic: a crash never leaves half a file
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def root_trust(root: Path, config_dir: Path, *, trust_root: bool = False) -> RootTrust:
    """Decide for one run. ``trust_root`` is --trust-root. The user config directory is always trusted."""
    real = root.resolve()
    if trust_root or real == config_dir.expanduser().resolve():
        return RootTrust(real, True)
    entry = _read_store(config_dir).get(str(real))
    if not isinstance(entry, dict):
        return RootTrust(real, False, "never trusted")
    if entry.get("files") != fingerprint(real):
        return RootTrust(real, False, "a config file changed since you trusted it")
    return RootTrust(real, True)


def trust_folder(root: Path, config_dir: Path) -> tuple[Path, dict[str, str | None]]:
    """Record ``root`` (an existing folder; its real path) as trusted with the current hashes of its
    config files."""
    real = root.resolve()
    files = fingerprint(real)
    folders = _read_store(config_dir)
    folders[str(real)] = {"files": files, "trusted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _write_store(config_dir, folders)
    return real, files


def revoke_folder(root: Path | str, config_dir: Path) -> bool:
    """Forget a trusted folder; False if it was not trusted. A folder that no longer exists can be revoked."""
    path = Path(root).expanduser()
    real = path.resolve() if path.exists() else path.absolute()
    folders = _read_store(config_dir)
    if folders.pop(str(real), None) is None:
        return False
    _write_store(config_dir, folders)
    return True


def trusted_folders(config_dir: Path) -> list[tuple[str, str, bool]]:
    """(real path, when trusted, still valid) for every recorded folder."""
    rows = []
    for path, entry in sorted(_read_store(config_dir).items()):
        entry = entry if isinstance(entry, dict) else {}
        folder = Path(path)
        valid = folder.is_dir() and entry.get("files") == fingerprint(folder)
        rows.append((path, str(entry.get("trusted_at", "?")), valid))
    return rows
