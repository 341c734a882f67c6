"""One event loop for a whole session of synchronous calls.

`asyncio.run()` per question creates and closes a loop each time; HTTP clients bound to a closed
loop then fail noisily when they are collected. A session (the REPL, an optimization) runs all its
coroutines on one loop instead, and closes it once at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopRunner:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
            self._loop.set_exception_handler(_quiet_interrupts)
        task = self._loop.create_task(coroutine)
        try:
            return self._loop.run_until_complete(task)
        except BaseException:
            # Ctrl-C: the task either ended with the KeyboardInterrupt or is still waiting. Settle it
            # (briefly) so that closing the loop does not log "exception was never retrieved".
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    self._loop.run_until_complete(asyncio.wait({task}, timeout=1))
            if task.done() and not task.cancelled():
                task.exception()
            raise

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()
        self._loop = None


def _quiet_interrupts(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Ctrl-C lands in whichever task was running; the CLI reports it once, so tasks that ended with
    it are not logged again as "exception was never retrieved"."""
    error = context.get("exception")
    if isinstance(error, KeyboardInterrupt) or (
            isinstance(error, BaseExceptionGroup) and error.subgroup(KeyboardInterrupt) is not None):
        return  # (HTTP clients wrap it in an exception group)
    loop.default_exception_handler(context)
