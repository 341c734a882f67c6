"""run_python: run a Python snippet the model wrote, in a sandbox, and show what it printed.

The snippet runs in a fresh `python -I` process (see `tools/sandbox.py` for the isolation): its
current directory is an empty scratch folder, deleted afterwards and the only writable place;
the project is readable at the path in the environment variable PROJECT_ROOT; there is no
network and no secret from our environment. Limits come from `ctx.env`:

* TONGYI_SANDBOX_TIMEOUT: wall-clock seconds (default 20);
* TONGYI_SANDBOX_CPU: CPU seconds (default min(10, timeout));
* TONGYI_SANDBOX_MEMORY_MB: address space in MiB (default 1024; numpy/pandas need a few hundred).

The registry's own time limit must be longer than TONGYI_SANDBOX_TIMEOUT, or the registry gives
up first (the snippet is still killed at its own limit).
"""

from __future__ import annotations

import re
import signal

from tongyi_agent.tools.base import SourceRef, ToolContext, ToolError, ToolResult
from tongyi_agent.tools.paths import relative_label
from tongyi_agent.tools.sandbox import Limits, run_sandboxed

MAX_CODE_CHARS = 100_000


def run_python(ctx: ToolContext, code: str) -> ToolResult:
    """Run a Python 3 program and return its exit status, stdout and stderr.

    Use it to compute, parse or analyse data; print() whatever you need to see.
    The current directory shows the project's files (read-only, e.g. open("data/sales.csv")); new files
    may be written there and are deleted after the run. os.environ["PROJECT_ROOT"] is the project path.
    There is no network.
    pandas and numpy may be available. Limits: about 20 s wall clock, 10 s CPU, 1 GiB memory.

    Args:
        code: the complete Python program to run (not a notebook: print results explicitly)
    """
    if not code.strip():
        raise ToolError("code is empty; pass the Python program to run")
    if len(code) > MAX_CODE_CHARS:
        raise ToolError(f"code is {len(code)} characters; the limit is {MAX_CODE_CHARS}")
    limits = Limits.from_env(ctx.env)
    try:
        run = run_sandboxed(code, str(ctx.root), limits)
    except RuntimeError as exc:
        return ToolResult.error(f"run_python is unavailable on this machine: {exc}")

    lines: list[str] = []
    if run.error:
        lines.append(f"sandbox error: {run.error}")
    if run.exit_status is not None:
        lines.append(f"exit status: {run.exit_status}")
    elif run.signal is not None:
        lines.append(f"exit status: killed by {_signal_name(run.signal)}")
    elif run.timed_out:
        lines.append("exit status: killed")
    if run.limit:
        lines.append(f"killed: {run.limit}" if run.signal or run.timed_out else f"limit hit: {run.limit}")
    lines += ["stdout:", run.stdout.rstrip("\n"), "stderr:", _traceback_tail(run.stderr).rstrip("\n")]
    if run.warnings:
        # Tell the model (and the user reading the trace) that isolation is incomplete here.
        lines.append("sandbox: weaker mode — " + "; ".join(run.warnings))
    ok = run.ok and not run.limit
    return ToolResult(output="\n".join(lines), ok=ok, sources=_input_files(ctx, code, run.stdout) if ok else [])


_QUOTED = re.compile(r"""["']([^"'\n]{1,300})["']""")


def _input_files(ctx: ToolContext, code: str, stdout: str) -> list[SourceRef]:
    """Project files the program names in a string literal: a computed answer cites its inputs.

    The source's text is the program's output, so the answer's numbers match it when citations are
    chosen."""
    found: dict[str, SourceRef] = {}
    root = ctx.root.resolve()
    for literal in _QUOTED.findall(code):
        candidate = literal.strip().lstrip("/")
        path = (root / candidate).resolve()
        if candidate and "/" not in candidate and "." in candidate and not path.is_file():
            # os.path.join(PROJECT_ROOT, "data", "sales.csv"): find the file by its name if unique.
            matches = [m for _, m in zip(range(2), root.rglob(candidate), strict=False)]
            path = matches[0].resolve() if len(matches) == 1 else path
        if candidate and path.is_relative_to(root) and path.is_file():
            label = relative_label(root, path)
            found.setdefault(label, SourceRef(path=label, line=None, text=" ".join(stdout.split())[:300]))
    return list(found.values())


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _traceback_tail(stderr: str, keep_lines: int = 40) -> str:
    """A long traceback shows only its last lines: the error and the frames nearest to it."""
    lines = stderr.splitlines()
    if len(lines) <= keep_lines or "Traceback (most recent call last):" not in stderr:
        return stderr
    return "\n".join([f"[{len(lines) - keep_lines} earlier lines left out]", *lines[-keep_lines:]])
