"""The one promotion gate: paired held-out scores, errored tasks out of both sides, a minimum n, a
one-sided sign-flip test."""

from __future__ import annotations

import pytest

from tongyi_agent.learn.evaluation.experiments import sign_flip_p
from tongyi_agent.learn.evaluation.gate import MIN_TASKS, paired_gate


def test_a_clear_win_on_enough_tasks_is_promoted_and_reported() -> None:
    base = [0.0] * 10 + [1.0] * 4
    candidate = [1.0] * 8 + [0.0] * 2 + [1.0] * 4
    gate = paired_gate(base, candidate, has_reference=[True] * 10 + [False] * 4, target="response_quality")
    assert (gate.n, gate.wins, gate.losses, gate.ties, gate.errored) == (14, 8, 0, 6, 0)
    assert gate.promoted and gate.p_value is not None and gate.p_value <= 0.1
    assert (gate.checked, gate.target_only) == (10, 4)
    line = gate.summary()
    for part in ("n=14", "8 wins", "0 losses", "6 ties", "0.857 vs 0.286", "p=", "10 checked for correctness",
                 "4 only for response_quality", "promoted"):
        assert part in line


def test_too_few_tasks_is_never_promoted_and_says_why() -> None:
    gate = paired_gate([0.0] * (MIN_TASKS - 1), [1.0] * (MIN_TASKS - 1))
    assert not gate.promoted and gate.p_value is None
    assert f"only {MIN_TASKS - 1} usable held-out tasks" in gate.summary() and f"at least {MIN_TASKS}" in gate.reason


def test_errored_tasks_leave_both_sides_and_are_counted() -> None:
    base = [0.0] * 12 + [None, 1.0, 0.0]
    candidate = [1.0] * 12 + [1.0, None, None]
    gate = paired_gate(base, candidate)
    assert (gate.n, gate.errored, gate.wins) == (12, 3, 12)
    assert gate.base_mean == 0.0 and gate.candidate_mean == 1.0  # the errored tasks' other scores are left out
    assert gate.promoted and "3 errored tasks left out" in gate.summary()
    # Errors can push a candidate below the minimum.
    short = paired_gate([0.0] * 12, [1.0] * 11 + [None])
    assert not short.promoted and "only 11 usable" in short.reason and "1 more errored" in short.reason


def test_all_ties_are_not_promoted() -> None:
    gate = paired_gate([0.5] * 20, [0.5] * 20)
    assert (gate.wins, gate.losses, gate.ties) == (0, 0, 20)
    assert not gate.promoted and "not higher" in gate.reason


def test_a_higher_mean_without_significance_is_not_promoted() -> None:
    base = [0.0, 1.0] * 6 + [0.0]
    candidate = [1.0, 0.0] * 6 + [1.0]  # 7 wins, 6 losses: mean higher, p far above 0.1
    gate = paired_gate(base, candidate)
    assert gate.candidate_mean > gate.base_mean and not gate.promoted
    assert "above 0.1" in gate.reason


def test_lengths_must_match() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        paired_gate([1.0], [1.0, 0.0])


def test_one_sided_sign_flip_counts_only_improvements() -> None:
    better = [1.0] * 6
    assert sign_flip_p(better, alternative="greater") < 0.05
    assert sign_flip_p([-d for d in better], alternative="greater") > 0.95
    assert sign_flip_p([-d for d in better]) < 0.05  # two-sided sees both directions
