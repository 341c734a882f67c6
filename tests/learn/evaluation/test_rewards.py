from __future__ import annotations

import math

import pytest

from tests.learn.builders import FABRICATED, PORT_LINE, empty_run, make_run
from tongyi_agent.agent.loop import NOT_FOUND
from tongyi_agent.agent.steps import RunResult
from tongyi_agent.learn.evaluation.rewards import (
    BUILTIN_REWARDS,
    Reward,
    compute_rewards,
    exact_match,
    f1,
    is_answered,
    normalize_answer,
    regex_match,
    research_efficiency,
    response_quality,
    response_speed,
    task_reward,
    tool_usage,
)

MAX_TIME = 60.0


def _all(run: RunResult, citation_rate: float | None = None) -> dict[str, float]:
    return {
        "research_efficiency": research_efficiency(run),
        "response_quality": response_quality(run, citation_rate=citation_rate),
        "tool_usage": tool_usage(run),
        "response_speed": response_speed(run, max_response_time=MAX_TIME),
    }


EDGE_CASES: dict[str, RunResult] = {
    "no steps": empty_run(),
    "no steps, answered": empty_run(answer="8080", stop_reason="answer", error=None),
    "forced fallback": make_run(NOT_FOUND, stop_reason="forced", cited=[]),
    "forced with answer": make_run(stop_reason="forced", good_tools=3),
    "all tools failed": make_run(good_tools=0, failed_tools=4),
    "only repeats": make_run(good_tools=0, repeats=3),
    "fabricated source": make_run(cited=[FABRICATED]),
    "half fabricated": make_run(cited=[PORT_LINE, FABRICATED]),
    "no tools at all": make_run(good_tools=0),
    "very slow": make_run(seconds=1e9),
    "negative clock": make_run(seconds=-1.0),
    "nan clock": make_run(seconds=math.nan),
    "many calls": make_run(good_tools=40, failed_tools=10, repeats=5, extra_model_calls=20),
    "not found prose": make_run("The answer was not found in the files.", cited=[]),
    "whitespace answer": make_run("   ", cited=[]),
    "perfect": make_run(),
}


@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_every_builtin_is_bounded(name: str) -> None:
    run = EDGE_CASES[name]
    for citation_rate in (None, 0.0, 0.5, 1.0, 7.0, -3.0):
        for reward, value in _all(run, citation_rate).items():
            assert isinstance(value, float), (name, reward)
            assert 0.0 <= value <= 1.0, (name, reward, value)
    rewards, target = compute_rewards(run, max_response_time=MAX_TIME, target="tool_usage",
                                      task_answer="8080", task_answer_regex="80+")
    assert all(r.value is not None and 0.0 <= r.value <= 1.0 for r in rewards), name
    assert target == tool_usage(run)


def test_perfect_run_scores_one_everywhere() -> None:
    assert _all(make_run()) == dict.fromkeys(BUILTIN_REWARDS, 1.0)


def test_failed_runs_score_zero_where_it_matters() -> None:
    nothing = _all(EDGE_CASES["no steps"])
    assert nothing == dict.fromkeys(BUILTIN_REWARDS, 0.0)
    fallback = _all(EDGE_CASES["forced fallback"])
    assert fallback["research_efficiency"] == 0.0
    assert fallback["response_quality"] == 0.0  # not answered, no sources, forced
    assert fallback["response_speed"] == 0.0  # a fast non-answer earns nothing
    failed = EDGE_CASES["all tools failed"]
    assert tool_usage(failed) == 0.0
    assert research_efficiency(failed) == 0.0  # answered, but from no source
    assert tool_usage(EDGE_CASES["only repeats"]) == 0.0
    assert tool_usage(EDGE_CASES["no tools at all"]) == 0.0


def test_is_answered() -> None:
    assert is_answered(make_run())
    for name in ("no steps", "forced fallback", "not found prose", "whitespace answer"):
        assert not is_answered(EDGE_CASES[name]), name
    # A long answer that mentions something missing still answers the question.
    long = "The port is 8080, set in conf/app.ini. " * 5 + "The legacy file was not found."
    assert is_answered(make_run(long))


def test_research_efficiency_discounts_calls_beyond_three() -> None:
    assert research_efficiency(make_run()) == 1.0  # 2 model calls + 1 tool call
    # 2 good + 1 failed tool: 4 model calls + 3 tool calls = 7 calls, 4 beyond the minimum.
    assert research_efficiency(make_run(good_tools=2, failed_tools=1)) == pytest.approx(1 / 1.8)
    # Repeats the loop refused cost their model call, not a tool call.
    assert research_efficiency(make_run(repeats=1)) == pytest.approx(1 / 1.2)
    assert research_efficiency(make_run(cited=[])) == 0.0


def test_response_quality_components() -> None:
    assert response_quality(make_run(cited=[FABRICATED])) == pytest.approx(2 / 3)
    assert response_quality(make_run(cited=[PORT_LINE, FABRICATED])) == pytest.approx((1 + 0.5 + 1) / 3)
    assert response_quality(make_run(stop_reason="forced")) == pytest.approx(2 / 3)
    assert response_quality(make_run(), citation_rate=0.5) == pytest.approx(3.5 / 4)
    # A source returned only by a failed or refused call does not count as real.
    assert response_quality(make_run(good_tools=0, failed_tools=1, cited=[PORT_LINE])) == pytest.approx(2 / 3)


def test_tool_usage_fraction() -> None:
    assert tool_usage(make_run(good_tools=2, failed_tools=1, repeats=1)) == 0.5
    assert tool_usage(make_run(good_tools=3, failed_tools=1)) == 0.75


@pytest.mark.parametrize("seconds,expected", [(0.0, 1.0), (15.0, 1.0), (60.0, 60 / 105), (67.5, 0.5),
                                              (120.0, 0.0), (500.0, 0.0)])
def test_response_speed_curve(seconds: float, expected: float) -> None:
    assert response_speed(make_run(seconds=seconds), max_response_time=MAX_TIME) == pytest.approx(expected)


def test_response_speed_needs_a_positive_limit() -> None:
    with pytest.raises(ValueError, match="positive"):
        response_speed(make_run(), max_response_time=0)


@pytest.mark.parametrize("better,worse", [
    (make_run(), make_run(good_tools=3, failed_tools=2)),
    (make_run(), make_run(cited=[FABRICATED])),
    (make_run(), make_run(stop_reason="forced")),
    (make_run(seconds=10), make_run(seconds=90)),
    (make_run(good_tools=2), make_run(good_tools=2, repeats=2)),
    (make_run(), make_run(NOT_FOUND, cited=[])),
])
def test_a_better_run_never_scores_lower(better: RunResult, worse: RunResult) -> None:
    good, bad = _all(better), _all(worse)
    assert all(good[name] >= bad[name] for name in BUILTIN_REWARDS), (good, bad)
    assert sum(good.values()) > sum(bad.values())


@pytest.mark.parametrize("text,expected", [("The  Port!", "port"), ("an apple, a day", "apple day"),
                                           ("Theory of a thing", "theory of thing"), ("", "")])
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


@pytest.mark.parametrize("prediction,answer,em,f", [
    ("8080", "8080", 1.0, 1.0),
    ("The Port.", "port", 1.0, 1.0),
    ("8081", "8080", 0.0, 0.0),
    ("the cat sat", "cat sat on mat", 0.0, 2 / 3),
    ("a b c", "c b a", 0.0, 1.0),
    ("port port", "port", 0.0, 2 / 3),
    ("", "", 1.0, 1.0),
    ("something", "", 0.0, 0.0),
    ("the", "a", 1.0, 1.0),  # both normalise to nothing
])
def test_exact_match_and_f1(prediction: str, answer: str, em: float, f: float) -> None:
    assert exact_match(prediction, answer) == em
    assert f1(prediction, answer) == pytest.approx(f)


def test_regex_match() -> None:
    assert regex_match("Port 8080", r"\b8080\b") == 1.0
    assert regex_match("port", "PORT") == 1.0
    assert regex_match("80801", r"\b8080\b") == 0.0


def test_task_reward() -> None:
    run = make_run("The server listens on port 8080.")
    assert task_reward(run) is None
    assert task_reward(run, answer="8080") == 1.0  # contained in the answer
    assert task_reward(run, answer="port 8080") == 1.0
    assert task_reward(run, answer="9090") == 0.0
    assert task_reward(run, answer="listens on 9090") == pytest.approx(f1(run.answer, "listens on 9090"))
    assert 0 < task_reward(run, answer="listens on 9090") < 1  # type: ignore[operator]
    assert task_reward(run, answer_regex=r"port\s+80\d\d") == 1.0
    assert task_reward(run, answer="9090", answer_regex="8080") == 1.0
    assert task_reward(run, answer_regex="9090") == 0.0
    # "808" is a token prefix, not a whole-word run of the answer.
    assert task_reward(run, answer="808") == 0.0


def test_compute_rewards_lists_every_reward_and_the_target() -> None:
    run = make_run(good_tools=2, failed_tools=1)
    rewards, target = compute_rewards(run, max_response_time=MAX_TIME, target="research_efficiency")
    assert [r.name for r in rewards] == list(BUILTIN_REWARDS)
    assert all(r.source == "builtin" and r.detail is None for r in rewards)
    assert target == pytest.approx(1 / 1.8)
    assert {r.name: r.value for r in rewards}["tool_usage"] == pytest.approx(2 / 3)


def test_compute_rewards_task_and_citation_rate() -> None:
    rewards, target = compute_rewards(make_run(), max_response_time=MAX_TIME, target="task",
                                      task_answer="8080", citation_rate=0.0)
    assert rewards[-1] == Reward("task", 1.0, "task")
    assert target == 1.0
    assert {r.name: r.value for r in rewards}["response_quality"] == pytest.approx(0.75)


def test_compute_rewards_bad_regex_is_missing_not_fatal() -> None:
    rewards, target = compute_rewards(make_run(), max_response_time=MAX_TIME, target="task",
                                      task_answer_regex="(unclosed")
    task = rewards[-1]
    assert (task.name, task.value, task.source) == ("task", None, "task")
    assert task.detail is not None and task.detail.startswith("invalid answer_regex: ")
    assert target is None
    assert len(rewards) == len(BUILTIN_REWARDS) + 1


def test_compute_rewards_target_without_reward_is_none() -> None:
    _, target = compute_rewards(make_run(), max_response_time=MAX_TIME, target="task")
    assert target is None


def test_compute_rewards_rejects_unknown_target() -> None:
    with pytest.raises(ValueError, match="unknown reward target 'accuracy'"):
        compute_rewards(make_run(), max_response_time=MAX_TIME, target="accuracy")
