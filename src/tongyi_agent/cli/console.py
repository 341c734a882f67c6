"""The CLI's two consoles and its one way of failing: a one-line error and an exit code."""

from __future__ import annotations

import typer
from rich.console import Console

# soft_wrap: answers and errors are piped and grepped; rich must not insert line breaks.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_FAILED = 1  # the model or the run failed
EXIT_USAGE = 2  # bad input or configuration


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print a one-line error and return the Exit to raise."""
    err.print(f"Error: {' '.join(message.split())}", style="red", markup=False)
    return typer.Exit(code)
