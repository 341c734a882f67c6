"""Run budgets: model calls, tokens and seconds, depleted on every step."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


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

    def exhausted(self) -> str | None:
        if self.model_calls >= self.max_model_calls:
            return f"step limit of {self.max_model_calls} model calls reached"
        if self.tokens >= self.max_tokens:
            return f"token budget of {self.max_tokens} tokens used up"
        if self.elapsed >= self.max_seconds:
            return f"time limit of {self.max_seconds:g} s reached"
        return None
