"""run_python: run a Python snippet the model wrote, in a sandbox, and show what it printed.

The snippet runs in a fresh `python -I` process (see `tools/sandbox.py` for the isolation): its
current directory is a scratch home folder on a size-limited tmpfs, gone afterwards, with links to the
project's top-level entries; the project is readable (read-only, without its training store) at the
path in the environment variable PROJECT_ROOT; there is no network and no secret from our environment.
Limits come from `ctx.env`:

* TONGYI_SANDBOX_TIMEOUT: wall-clock seconds (default 20), cut to what is left of the run;
* TONGYI_SANDBOX_CPU: CPU seconds (default min(10, timeout));
* TONGYI_SANDBOX_MEMORY_MB: address space in MiB (default 1024; numpy/pandas need a few hundred);
* TONGYI_SANDBOX_DISK_MB: the tmpfs behind /tmp and home (default 64).

The answer's sources are the project files the program opened for reading, from the sandbox's
file-access log; a file name that only appears in the code is not a source.
"""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path

from tongyi_agent.tools.base import SourceRef, ToolContext, ToolError, ToolResult
from tongyi_agent.tools.sandbox import Limits, SandboxUnavailable, run_sandboxed

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
    left = ctx.time_left(limits.timeout_s)
    if left < 1:
        raise ToolError("not run: the run's deadline leaves no time for a program")
    limits = dataclasses.replace(limits, timeout_s=left)
    hidden = (str(ctx.cache_dir),) if ctx.cache_dir is not None else ()
    try:
        run = run_sandboxed(code, str(ctx.root), limits, hidden=hidden, cancel=ctx.cancel)
    except SandboxUnavailable as exc:
        return ToolResult.error(str(exc))

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
        lines.append("sandbox: " + "; ".join(run.warnings))
    ok = run.ok and not run.limit
    return ToolResult(output="\n".join(lines), ok=ok, sources=_opened_files(ctx, run.opened, run.stdout) if ok else [])


def _opened_files(ctx: ToolContext, opened: list[str], stdout: str) -> list[SourceRef]:
    """The project files the program opened (from the sandbox's access log): a computed answer cites
    its inputs. The source's text is the program's output, so the answer's numbers match it when
    citations are chosen."""
    root = ctx.root.resolve()
    found: list[SourceRef] = []
    for relative in opened:
        path = Path(root, relative)
        if path.is_file() and not path.is_symlink():
            found.append(SourceRef(path=Path(relative).as_posix(), line=None, text=" ".join(stdout.split())[:300]))
    return found


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
