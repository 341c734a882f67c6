from __future__ import annotations

import pytest

from tests.store.factories import DAY0, make_run, make_spans
from tongyi_agent.store import RewardRecord, TrajectoryStore, compute_stats

DAY = 86_400.0
LIMITS = {"max_response_time": 10.0, "min_success_rate": 0.7, "min_tool_efficiency": 0.9}


def test_empty_store(store: TrajectoryStore) -> None:
    stats = compute_stats(store, **LIMITS, target="task_success")
    assert stats["total_interactions"] == 0
    assert stats["success_rate"] == stats["average_response_time"] == stats["p95_response_time"] == 0.0
    assert stats["tool_usage_efficiency"] == 0.0
    assert stats["reward_trend"] == [] and stats["average_reward"] == {} and stats["models"] == {}
    assert all(t["pass"] is None for t in stats["thresholds"].values())


@pytest.fixture
def filled(store: TrajectoryStore) -> TrajectoryStore:
    """20 runs: seconds 1..20; 15 success, 3 failed, 2 forced; 4 failing tool calls; two days."""
    for i in range(20):
        status = "success" if i < 15 else ("failed" if i < 18 else "forced")
        run = make_run(
            f"q{i}", status=status, seconds=float(i + 1), started_at=DAY0 + (0 if i < 10 else DAY) + i,
            input_tokens=60, output_tokens=13, model_calls=2, tool_calls=1,
            prompt_version="v1" if i < 12 else None, model="other" if i % 4 == 0 else "test-model",
        )  # fmt: skip
        rewards = [RewardRecord("task_success", 1.0 if i < 5 else 0.0, "builtin", None, DAY0)]
        if i < 10:
            rewards.append(RewardRecord("quality", 0.8, "task", None, DAY0))
        rewards.append(RewardRecord("custom", None, "custom", "raised", DAY0))
        store.record_run(run, make_spans(tool_error="failed" if i in (1, 6, 11, 16) else None), rewards)
    return store


def test_known_values(filled: TrajectoryStore) -> None:
    stats = compute_stats(filled.connection, **LIMITS, target="task_success")
    assert stats["total_interactions"] == 20
    assert stats["successful_interactions"] == 15
    assert stats["success_rate"] == 0.75
    assert stats["average_response_time"] == pytest.approx(10.5)
    assert stats["p95_response_time"] == 19.0  # nearest rank: ceil(0.95 * 20) = 19th of 1..20
    assert stats["average_model_calls"] == 2.0 and stats["average_tool_calls"] == 1.0
    assert stats["tool_usage_efficiency"] == pytest.approx(16 / 20)
    assert stats["total_input_tokens"] == 1200 and stats["total_output_tokens"] == 260
    assert stats["average_reward"] == {"custom": None, "quality": pytest.approx(0.8), "task_success": 0.25}
    assert stats["reward_trend"] == [
        {"date": "2023-11-14", "count": 10, "mean_reward": 0.5, "mean_seconds": 5.5},
        {"date": "2023-11-15", "count": 10, "mean_reward": 0.0, "mean_seconds": 15.5},
    ]
    assert stats["prompt_versions"] == {"v1": 12, "(none)": 8}
    assert stats["models"] == {"test-model": 15, "other": 5}
    assert stats["thresholds"] == {
        "max_response_time": {"value": pytest.approx(10.5), "threshold": 10.0, "pass": False},
        "min_success_rate": {"value": 0.75, "threshold": 0.7, "pass": True},
        "min_tool_efficiency": {"value": pytest.approx(0.8), "threshold": 0.9, "pass": False},
    }


def test_trend_without_target_uses_all_rewards_and_is_bounded(filled: TrajectoryStore) -> None:
    trend = compute_stats(filled, **LIMITS, target=None)["reward_trend"]
    # Day one: per run mean of task_success and quality (custom is missing) -> (1+0.8)/2 or (0+0.8)/2.
    assert trend[0]["mean_reward"] == pytest.approx((5 * 0.9 + 5 * 0.4) / 10)
    for day in range(40):  # one run per day for 40 more days: only the newest 30 days are listed
        filled.record_run(make_run(f"late {day}", started_at=DAY0 + (2 + day) * DAY))
    trend = compute_stats(filled, **LIMITS, target=None)["reward_trend"]
    assert len(trend) == 30
    assert trend[-1] == {"date": "2023-12-25", "count": 1, "mean_reward": None, "mean_seconds": 1.0}
