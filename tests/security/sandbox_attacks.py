"""Shared by the sandbox attack tests: run a snippet as an attacker would, or check the refusal.

Where this machine cannot build the namespace sandbox, run_python must refuse (unless the user opted
in to the weak mode); `attempt` asserts that refusal instead of skipping, so no escape test passes
without checking something.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from tongyi_agent.tools.base import ToolContext, ToolResult
from tongyi_agent.tools.run_python import run_python
from tongyi_agent.tools.sandbox import SANDBOX_UID, _others_can_run, sandbox_report

REFUSAL = "run_python is disabled: this machine cannot isolate programs"


def namespaces_available() -> bool:
    return bool(sandbox_report().get("available"))


def attempt(ctx: ToolContext, code: str) -> ToolResult | None:
    """The tool's result, or None after asserting the documented refusal (no namespaces here)."""
    result = run_python(ctx, code)
    if not namespaces_available():
        assert not result.ok and REFUSAL in result.output and "TONGYI_SANDBOX_WEAK=1" in result.output
        return None
    return result


def stdout_of(result: ToolResult) -> str:
    return result.output.split("stdout:\n", 1)[1].split("\nstderr:", 1)[0]


def processes_with(marker: str) -> list[int]:
    """PIDs whose command line contains `marker` (like `pgrep -f`, without needing procps)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(entry))
    return found


def weak_env() -> dict[str, str]:
    """Settings that force the weak mode. As root it runs programs as uid 65534, which needs a Python
    every user can run: the test's own if it is one, else the system's."""
    env = {"TONGYI_SANDBOX_NAMESPACES": "0", "TONGYI_SANDBOX_WEAK": "1"}
    if os.geteuid() == 0 and not _others_can_run(sys.executable):
        system = shutil.which("python3", path="/usr/bin:/bin")
        if system and _others_can_run(system):
            env["TONGYI_SANDBOX_PYTHON"] = system
    return env


def weak_refusal(result: ToolResult) -> bool:
    """True when the weak mode refused because uid 65534 cannot run any Python here (asserted wording)."""
    if f"runs programs as uid {SANDBOX_UID}, which cannot reach the Python" in result.output:
        assert not result.ok and "TONGYI_SANDBOX_PYTHON" in result.output
        return True
    return False
