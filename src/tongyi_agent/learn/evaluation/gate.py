"""The one promotion gate: a candidate (prompt version, SFT or GRPO adapter) against what users get
today, paired on the same held-out tasks.

- A task whose run errored on either side (the model failed) is left out of both sides and counted.
- At least :data:`MIN_TASKS` usable tasks are needed; with fewer, nothing is promoted and the report
  says why.
- The candidate is promoted when its mean is higher and a one-sided paired sign-flip test of
  "candidate better" gives p ≤ :data:`ALPHA` (the test of ``learn/evaluation/experiments.py``, seeded, so a
  decision can be reproduced).

The report says how many tasks were checked for correctness (a reference answer, or an answer the
user confirmed) and how many only for the configured optimization target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean

from tongyi_agent.learn.evaluation.experiments import sign_flip_p

MIN_TASKS = 12
ALPHA = 0.1


@dataclass
class GateReport:
    n: int  # usable tasks: both sides ran
    wins: int
    losses: int
    ties: int
    base_mean: float | None
    candidate_mean: float | None
    p_value: float | None  # None when too few tasks to test
    errored: int  # tasks left out because a run errored on either side
    checked: int  # usable tasks scored against a reference answer
    target_only: int  # usable tasks scored only by the optimization target
    target: str
    promoted: bool
    reason: str

    def summary(self) -> str:
        """One line for reports: n, wins, losses, ties, both means, p and the decision."""
        if self.p_value is None:
            return self.reason
        return (f"held-out n={self.n}: {self.wins} wins, {self.losses} losses, {self.ties} ties; mean "
                f"{_fmt(self.candidate_mean)} vs {_fmt(self.base_mean)}; one-sided sign-flip p={self.p_value:.3f}"
                f"{self._counts()}; {self.reason}")

    def _counts(self) -> str:
        parts = [f"{self.checked} checked for correctness, {self.target_only} only for {self.target}"]
        if self.errored:
            parts.append(f"{self.errored} errored task{'s' if self.errored != 1 else ''} left out")
        return " (" + "; ".join(parts) + ")"


def paired_gate(base: Sequence[float | None], candidate: Sequence[float | None], *,
                has_reference: Sequence[bool] | None = None, target: str = "the target",
                min_tasks: int = MIN_TASKS, alpha: float = ALPHA) -> GateReport:
    """Decide on scores of the same tasks, in the same order; None marks an errored run."""
    if len(base) != len(candidate):
        raise ValueError(f"paired scores differ in length: {len(base)} vs {len(candidate)}")
    references = list(has_reference) if has_reference is not None else [False] * len(base)
    pairs = [(b, c, ref) for b, c, ref in zip(base, candidate, references, strict=True)
             if b is not None and c is not None]
    errored = len(base) - len(pairs)
    n = len(pairs)
    diffs = [c - b for b, c, _ in pairs]
    wins, losses = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    base_mean = fmean(b for b, _, _ in pairs) if pairs else None
    candidate_mean = fmean(c for _, c, _ in pairs) if pairs else None
    checked = sum(ref for _, _, ref in pairs)
    common = dict(n=n, wins=wins, losses=losses, ties=n - wins - losses, base_mean=base_mean,
                  candidate_mean=candidate_mean, errored=errored, checked=checked, target_only=n - checked,
                  target=target)
    if n < min_tasks:
        left_out = f" ({errored} more errored)" if errored else ""
        return GateReport(**common, p_value=None, promoted=False,  # type: ignore[arg-type]
                          reason=f"not promoted: only {n} usable held-out tasks{left_out}; the gate needs at least "
                                 f"{min_tasks}")
    p_value = sign_flip_p(diffs, alternative="greater")
    better = candidate_mean is not None and base_mean is not None and candidate_mean > base_mean
    if better and p_value <= alpha:
        reason = "promoted"
    elif not better:
        reason = "not promoted: the candidate's held-out mean is not higher"
    else:
        reason = f"not promoted: p={p_value:.3f} is above {alpha}"
    return GateReport(**common, p_value=p_value, promoted=better and p_value <= alpha,  # type: ignore[arg-type]
                      reason=reason)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
