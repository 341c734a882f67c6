from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tongyi_agent.store import TrajectoryStore

SECRET = "s3cr3t-value-from-env"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TrajectoryStore]:
    with TrajectoryStore(tmp_path / "training" / "trajectories.sqlite", secrets=[SECRET]) as s:
        yield s
