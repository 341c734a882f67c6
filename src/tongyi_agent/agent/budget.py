"""Run budgets: model calls, tokens and seconds, depleted on every step.

`max_seconds` is a deadline, not a hint: no model call or tool runs past it. The last part of it
(`reserve`) is kept for the forced final answer, so tools stop at `tool_deadline` and the answer is
forced once only the reserve is left.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# Share of the run's time kept for the forced final answer, at most FINAL_ANSWER_MAX_S seconds.
FINAL_ANSWER_SHARE = 0.2
FINAL_ANSWER_MAX_S = 30.0


@dataclass
class Budget:
    """Limits for one run. `exhausted()` names the first limit reached, or None."""

    max_model_calls: int = 8
    max_tokens: int = 24000
    max_seconds: float = 300.0
    model_calls: int = 0
    tokens: int = 0
    started: float = field(default_factory=time.monotonic)

    def spend(self, *, model_calls: int = 0, tokens: int = 0) -> None:
        self.model_calls += model_calls
        self.tokens += tokens

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def reserve(self) -> float:
        return min(FINAL_ANSWER_MAX_S, self.max_seconds * FINAL_ANSWER_SHARE)

    @property
    def deadline(self) -> float:
        """time.monotonic() at which the run ends, answered or not."""
        return self.started + self.max_seconds

    @property
    def tool_deadline(self) -> float:
        return self.deadline - self.reserve

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def exhausted(self) -> str | None:
        if self.model_calls >= self.max_model_calls:
            return f"step limit of {self.max_model_calls} model calls reached"
        if self.tokens >= self.max_tokens:
            return f"token budget of {self.max_tokens} tokens used up"
        if self.elapsed >= self.max_seconds - self.reserve:
            return f"time limit of {self.max_seconds:g} s almost reached"
        return None
