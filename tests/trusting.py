"""Trust a test's project folder the way a user does with `tongyi-cli trust`.

Tests that point a project's own models.ini at a fake server (or set its training storage) need the
folder trusted, or those settings are ignored (tests/security/test_config_trust.py shows that). Call
it after the folder's config files are written: trust covers the files as they are at that moment.
"""

from __future__ import annotations

from pathlib import Path

from tongyi_agent.config import user_config_dir
from tongyi_agent.config.trust import trust_folder


def trust(folder: Path) -> None:
    trust_folder(folder, user_config_dir())
