"""The merged environment: `.env` files under the real environment, without touching ``os.environ``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values

ENV_FILE = ".env"


def env_files(root: Path, config_dir: Path) -> list[Path]:
    """Existing `.env` files, lowest priority first (config dir, then root)."""
    found: list[Path] = []
    for path in (config_dir / ENV_FILE, root / ENV_FILE):
        if path.is_file() and path.resolve() not in (p.resolve() for p in found):
            found.append(path)
    return found


def read_env_file(path: Path) -> dict[str, str]:
    # `KEY` with no `=` parses as None: it sets nothing rather than an empty string.
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def merged_env(root: Path, config_dir: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """config-dir .env < root .env < the real environment (``environ``, default ``os.environ``).

    A variable set in the shell always wins, as with python-dotenv's default ``override=False``;
    we return a copy instead of loading into ``os.environ`` so that one run's files cannot leak
    into another (tests, a long-lived REPL switching --root).
    """
    merged: dict[str, str] = {}
    for path in env_files(root, config_dir):
        merged.update(read_env_file(path))
    merged.update(os.environ if environ is None else environ)
    return merged
