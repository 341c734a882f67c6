"""The package as pip installs it: the guide's top-level `training_manager` import and its
`pip install -e ".[agent-lightning]"` extra. A wheel is built from a copy of this checkout (offline,
with the setuptools already installed) and installed into a folder of its own."""

from __future__ import annotations

import email
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("setuptools") is None,
                                reason="building the wheel offline needs setuptools in this environment")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "NOTICE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "--quiet", "-w", str(out), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (built,) = out.glob("tongyi_agent-*.whl")
    return built


def test_installed_package_has_the_top_level_training_manager(wheel: Path, tmp_path: Path) -> None:
    assert "training_manager.py" in zipfile.ZipFile(wheel).namelist()
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", "--target",
                           str(site), str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    code = ("from training_manager import get_training_manager\n"
            "import training_manager, tongyi_agent.training_manager as api\n"
            "assert get_training_manager is api.get_training_manager\n"
            "print(training_manager.__file__); print(api.__file__)\n")
    # Only the installed copy is on the path ahead of site-packages: not this checkout's src/.
    env = {**os.environ, "PYTHONPATH": str(site)}
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env=env)
    assert ran.returncode == 0, ran.stderr
    assert [Path(line).parent for line in ran.stdout.split()] == [site, site / "tongyi_agent"]


def test_agent_lightning_extra_and_its_marker(wheel: Path) -> None:
    from packaging.markers import Marker
    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(archive.read(name))
    assert "agent-lightning" in metadata.get_all("Provides-Extra")
    wanted = {}
    for line in metadata.get_all("Requires-Dist"):
        requirement = Requirement(line)
        if requirement.marker and any(requirement.marker.evaluate({"extra": "agent-lightning", "python_version": v})
                                      for v in ("3.11", "3.12")):
            wanted[requirement.name] = requirement
    # What training needs: the train extra, on every Python.
    assert wanted["tongyi-agent"].extras == {"train"}
    # Agent Lightning at the version the rollout harness is tested with, only where it installs (>= 3.12).
    agl = wanted["agentlightning"]
    assert str(agl.specifier) == "==1.0.2"
    marker = Marker(str(agl.marker))
    assert marker.evaluate({"extra": "agent-lightning", "python_version": "3.12"})
    assert marker.evaluate({"extra": "agent-lightning", "python_version": "3.13"})
    assert not marker.evaluate({"extra": "agent-lightning", "python_version": "3.11"})
    assert "1.0.2" in (REPO / "docs" / "agent_lightning.md").read_text()  # the tested version, documented there
