from __future__ import annotations

import itertools
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.learn.builders import make_run
from tongyi_agent.learn.evaluation.rewards import Reward, compute_rewards, custom_reward, load_custom_reward

_counter = itertools.count()

# Writes `source` as a fresh module under tmp_path and returns its import name.
MakeModule = Callable[[str], str]


@pytest.fixture
def reward_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeModule]:
    monkeypatch.syspath_prepend(str(tmp_path))
    names: list[str] = []

    def make(source: str) -> str:
        # A new name each time: importlib caches modules by name for the whole test session.
        name = f"user_rewards_{next(_counter)}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        names.append(name)
        return name

    yield make
    for name in names:
        sys.modules.pop(name, None)


def _missing(reward: Reward) -> str:
    assert (reward.name, reward.value, reward.source) == ("custom", None, "custom")
    assert reward.detail and "\n" not in reward.detail
    return reward.detail


def test_guide_signature_gets_query_response_and_tools(reward_module: MakeModule) -> None:
    module = reward_module("""
        seen = []

        def score(query, response, tools_used):
            seen.append((query, response, tools_used))
            return 0.75
    """)
    run = make_run(good_tools=2, failed_tools=1, repeats=1)
    reward = custom_reward(run, f"{module}:score")
    assert reward == Reward("custom", 0.75, "custom", f"{module}:score")
    # Tools that ran, in order; the refused repeat is not a use of a tool.
    assert sys.modules[module].seen == [(run.question, run.answer, ["search", "search", "read_file"])]


def test_trajectory_signature_gets_the_run(reward_module: MakeModule) -> None:
    module = reward_module("""
        def score(trajectory):
            return trajectory.model_calls / 10
    """)
    run = make_run(good_tools=3)
    assert custom_reward(run, f"{module}:score").value == pytest.approx(0.4)
    # The dotted spelling without a colon names the same function.
    assert custom_reward(run, f"{module}.score").value == pytest.approx(0.4)


def test_signature_detection(reward_module: MakeModule) -> None:
    module = reward_module("""
        def named(query, response, tools_used=()):
            return 1.0 if tools_used else 0.5

        def keyword_only(run, *, weight=1.0):
            return weight * (run.stop_reason == "answer")

        class Scorer:
            @staticmethod
            def score(result):
                return 0.25

        def boolean(trajectory):
            return bool(trajectory.sources)
    """)
    run = make_run()
    assert custom_reward(run, f"{module}:named").value == 1.0  # names win over the default
    assert custom_reward(run, f"{module}:keyword_only").value == 1.0
    assert custom_reward(run, f"{module}:Scorer.score").value == 0.25
    assert custom_reward(run, f"{module}:boolean").value == 1.0
    assert callable(load_custom_reward(f"{module}:named"))


@pytest.mark.parametrize("body,reason", [
    ("def score(trajectory):\n    return 1 / 0\n", "raised ZeroDivisionError: division by zero"),
    ("def score(trajectory):\n    return float('nan')\n", "returned nan, outside [0, 1]"),
    ("def score(trajectory):\n    return 1.5\n", "returned 1.5, outside [0, 1]"),
    ("def score(trajectory):\n    return -0.1\n", "returned -0.1, outside [0, 1]"),
    ("def score(trajectory):\n    return '0.9'\n", "returned str '0.9', expected a number in [0, 1]"),
    ("def score(trajectory):\n    return None\n", "returned NoneType None, expected a number"),
    ("def score(trajectory):\n    raise RuntimeError('bad\\nthing')\n", "raised RuntimeError: bad thing"),
    ("async def score(trajectory):\n    return 1.0\n", "is async; a reward function must return a number"),
    ("def score(a, b):\n    return 1.0\n", "takes (a, b); expected (query, response, tools_used) or (trajectory)"),
    ("def score():\n    return 1.0\n", "takes (no parameters); expected"),
    ("score = 0.5\n", "is not callable"),
    ("import not_a_real_module_xyz\n", "cannot load"),
    ("def score(trajectory)\n    return 1\n", "SyntaxError"),
    ("raise ValueError('boom at import')\n", "ValueError: boom at import"),
])
def test_failures_are_recorded_as_missing(reward_module: MakeModule, body: str, reason: str) -> None:
    module = reward_module(body)
    assert reason in _missing(custom_reward(make_run(), f"{module}:score"))


@pytest.mark.parametrize("path,reason", [
    ("no_such_module_abc:score", "cannot load no_such_module_abc:score: ModuleNotFoundError"),
    ("justaname", "cannot load justaname: ValueError: expected 'package.module:function'"),
    ("os:no_such_function", "AttributeError"),
])
def test_bad_paths_are_recorded_as_missing(path: str, reason: str) -> None:
    assert reason in _missing(custom_reward(make_run(), path))


def test_missing_attribute_names_the_path(reward_module: MakeModule) -> None:
    module = reward_module("def other(trajectory):\n    return 1.0\n")
    assert _missing(custom_reward(make_run(), f"{module}:score")).startswith(f"cannot load {module}:score: ")


def test_compute_rewards_includes_custom_and_can_target_it(reward_module: MakeModule) -> None:
    module = reward_module("def score(query, response, tools_used):\n    return 0.3\n")
    rewards, target = compute_rewards(make_run(), max_response_time=60, target="custom", custom=f"{module}:score")
    assert [r.name for r in rewards][-1] == "custom"
    assert rewards[-1].value == 0.3 and rewards[-1].source == "custom"
    assert target == 0.3


def test_failing_custom_reward_keeps_the_builtins(reward_module: MakeModule) -> None:
    module = reward_module("def score(trajectory):\n    raise KeyError('x')\n")
    rewards, target = compute_rewards(make_run(), max_response_time=60, target="response_quality",
                                      custom=f"{module}:score")
    assert target == 1.0
    assert [r.value for r in rewards[:4]] == [1.0, 1.0, 1.0, 1.0]
    assert "raised KeyError" in _missing(rewards[-1])
    _, custom_target = compute_rewards(make_run(), max_response_time=60, target="custom", custom=f"{module}:score")
    assert custom_target is None
