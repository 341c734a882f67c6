"""The merged environment: `.env` files under the real environment, without touching ``os.environ``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values

from tongyi_agent.config.trust import ROOT_ENV_ALLOWED, Ignored, RootTrust, root_trust

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


def env_layers(root: Path, config_dir: Path, environ: Mapping[str, str] | None = None, *,
               trust: RootTrust | None = None) -> tuple[dict[str, str], list[Ignored]]:
    """config-dir .env < root .env < the real environment (``environ``, default ``os.environ``), and the
    root .env variables left out because the root is untrusted.

    A variable set in the shell always wins, as with python-dotenv's default ``override=False``;
    we return a copy instead of loading into ``os.environ`` so that one run's files cannot leak
    into another (tests, a long-lived REPL switching --root). An untrusted root's .env sets only
    the variables in ROOT_ENV_ALLOWED (``trust`` defaults to what the user's trust store says).
    """
    trust = trust or root_trust(root, config_dir)
    shell = os.environ if environ is None else environ
    merged: dict[str, str] = {}
    ignored: list[Ignored] = []
    for path in env_files(root, config_dir):
        values = read_env_file(path)
        if trust.guards(path):
            # Named only when it would have mattered: the shell's own value wins over the file anyway.
            ignored += [Ignored(path, name) for name in values if name not in ROOT_ENV_ALLOWED and name not in shell]
            values = {name: value for name, value in values.items() if name in ROOT_ENV_ALLOWED}
        merged.update(values)
    merged.update(shell)
    return merged, ignored
