"""One event loop for a whole session of synchronous calls.

`asyncio.run()` per question creates and closes a loop each time; HTTP clients bound to a closed
loop then fail noisily when they are collected. A session (the REPL, an optimization) runs all its
coroutines on one loop instead, and closes it once at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopRunner:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._interrupted = False

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
            self._loop.set_exception_handler(self._quiet_interrupts)
        self._interrupted = False
        task = self._loop.create_task(coroutine)
        previous = self._note_interrupts()
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
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def _note_interrupts(self) -> Any:
        """Ctrl-C raises KeyboardInterrupt in whatever code runs, even half-way through a transport's
        setup, whose teardown then fails in a callback. Remember that it came, so such failures are
        not printed as tracebacks. Returns the handler to restore (None off the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            return None
        previous = signal.getsignal(signal.SIGINT)
        if previous is not signal.default_int_handler:
            return None

        def on_sigint(signum: int, frame: Any) -> None:
            self._interrupted = True
            signal.default_int_handler(signum, frame)

        signal.signal(signal.SIGINT, on_sigint)
        return previous

    def _quiet_interrupts(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Ctrl-C lands in whichever task or callback was running; the CLI reports it once. Tasks that
        ended with it are not logged again as "exception was never retrieved", and what breaks while
        the interrupted run is torn down (a transport whose protocol the interrupt cut short while it
        was being set up) is not logged as a traceback either."""
        error = context.get("exception")
        if self._interrupted or isinstance(error, KeyboardInterrupt) or (
                isinstance(error, BaseExceptionGroup) and error.subgroup(KeyboardInterrupt) is not None):
            return  # (HTTP clients wrap it in an exception group)
        loop.default_exception_handler(context)

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()
        self._loop = None
