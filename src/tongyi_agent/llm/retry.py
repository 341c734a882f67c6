"""Retries, Retry-After, backoff, key scrubbing and model fallback shared by the remote backends.

Each backend keeps what is specific to its SDK: one try (`once`) and how to read that SDK's exceptions
(`classify`). This module owns what both do with the answer: try again after a backoff or the server's
Retry-After, give up on a model id with a one-line description (`Attempt`), and try the fallback model
before raising `ModelError`.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from tongyi_agent.llm.base import DeadlineError, ModelError

T = TypeVar("T")

# A Retry-After longer than this is a quota reset, not a hiccup: fail (or fall back) instead of hanging.
MAX_RETRY_AFTER = 60.0
MAX_ERROR_DETAIL = 300


class Attempt(Exception):
    """One model id failed for good; carries a one-line, key-free description."""

    def __init__(self, detail: str, *, fall_back: bool, deadline: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fall_back = fall_back and not deadline
        self.deadline = deadline  # the call's time ran out


@dataclass(frozen=True)
class Retry:
    """A failure worth another try. `detail` is what the model id reports if no try is left (or the server
    asks for a wait longer than MAX_RETRY_AFTER); `after` is the server's Retry-After in seconds, if any."""

    detail: str
    after: float | None = None
    fall_back: bool = True


Verdict = Attempt | Retry | None  # None: not an error the backend knows; it propagates unchanged


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The wait a response asks for (``retry-after-ms``, or ``retry-after`` in seconds or as an HTTP date)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            pass
        try:  # HTTP-date form
            from email.utils import parsedate_to_datetime

            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            pass
    return None


def backoff_delay(attempt: int, base: float, maximum: float) -> float:
    # Jitter (75-100 %) keeps parallel agents from retrying in lockstep.
    return min(base * 2**attempt, maximum) * (0.75 + 0.25 * random.random())


def scrub(text: str, secret: str | None) -> str:
    """One line, bounded, and never the API key (servers and proxies sometimes echo it in auth errors)."""
    if secret:
        text = text.replace(secret, "***")
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > MAX_ERROR_DETAIL:
        text = text[: MAX_ERROR_DETAIL - 3] + "..."
    return text


def deadline_after(seconds: float | None) -> float | None:
    """The monotonic time a call given `seconds` (ChatRequest.timeout) must end by; None: no deadline."""
    return None if seconds is None else time.monotonic() + max(0.0, seconds)


def request_timeout(default: float, deadline: float | None) -> float:
    """One try's HTTP timeout: the backend's own, or what is left before the deadline if that is less."""
    if deadline is None:
        return default
    return max(0.001, min(default, deadline - time.monotonic()))


async def with_retries(
    once: Callable[[], Awaitable[T]],
    classify: Callable[[Exception], Verdict],
    *,
    max_retries: int,
    backoff_base: float,
    backoff_max: float,
    deadline: float | None = None,
) -> T:
    """`once()` up to ``max_retries + 1`` times; raises `Attempt` when the model id has failed for good.

    With a `deadline` (monotonic), no try starts and no backoff waits past it: the call fails with
    the last error and "run deadline reached" instead, and the fallback model is not tried."""
    for attempt in range(max_retries + 1):
        try:
            return await once()
        except Attempt:
            raise
        except Exception as err:
            verdict = classify(err)
            if verdict is None:
                raise
            if isinstance(verdict, Attempt):
                raise verdict from None
            out_of_time = deadline is not None and time.monotonic() >= deadline
            if out_of_time or attempt == max_retries or (verdict.after is not None and verdict.after > MAX_RETRY_AFTER):
                raise Attempt(verdict.detail, fall_back=verdict.fall_back, deadline=out_of_time) from None
            delay = verdict.after if verdict.after is not None else backoff_delay(attempt, backoff_base, backoff_max)
            if deadline is not None and time.monotonic() + delay >= deadline:
                raise Attempt(f"{verdict.detail}; no time left to retry before the deadline", fall_back=False,
                              deadline=True) from None
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # the loop always returns or raises


async def with_fallback(call: Callable[[str], Awaitable[T]], model_id: str, fallback_model_id: str | None) -> T:
    """`call(model_id)`, then `call(fallback_model_id)` if the first gave up with ``fall_back``; a model id
    that fails for good becomes one `ModelError` line naming both failures."""
    try:
        return await call(model_id)
    except Attempt as primary:
        if primary.deadline:
            raise DeadlineError(primary.detail) from None
        if not (fallback_model_id and primary.fall_back):
            raise ModelError(primary.detail) from None
        try:
            return await call(fallback_model_id)
        except Attempt as fallback:
            error = DeadlineError if fallback.deadline else ModelError
            raise error(f"{primary.detail}; fallback {fallback.detail}") from None
