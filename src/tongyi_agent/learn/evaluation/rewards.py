"""Rewards: numbers in [0, 1] that say how good a finished run was.

Every built-in is a pure function of the ``RunResult`` (plus a setting where named), so a reward can
be recomputed from a recorded trajectory at any time. A custom reward is user code named by a dotted
path; it never breaks a run: any failure is recorded as a missing value with a one-line reason.
"""

from __future__ import annotations

import collections
import importlib
import inspect
import math
import numbers
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tongyi_agent.agent.loop import NOT_FOUND
from tongyi_agent.agent.steps import RunResult
from tongyi_agent.config.training import OPTIMIZATION_TARGETS

__all__ = [
    "BUILTIN_REWARDS",
    "Reward",
    "compute_rewards",
    "custom_reward",
    "exact_match",
    "f1",
    "load_custom_reward",
    "normalize_answer",
    "regex_match",
    "research_efficiency",
    "response_quality",
    "response_speed",
    "task_reward",
    "tool_usage",
]

# Fewest calls a sourced answer can take: the model asks for a tool, the tool runs, the model answers.
MIN_CALLS = 3
# Each call beyond MIN_CALLS adds this to the efficiency denominator (5 extra calls halve the reward).
CALL_PENALTY = 0.2
# "Not found" answers are short admissions; a long answer that mentions a missing file still answers.
_NOT_FOUND_MAX_CHARS = 200
_NOT_FOUND = re.compile(
    r"\b(?:not\s+(?:been\s+)?found|could\s*n[o']t\s+find|can\s*(?:no|')t\s+find|unable\s+to\s+find|"
    r"no\s+(?:relevant\s+)?information|do(?:es)?\s*n[o']t\s+(?:contain|mention))\b",
    re.IGNORECASE,
)
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_DETAIL_MAX = 200


@dataclass(frozen=True)
class Reward:
    """One reward of one run. ``value`` is None when it could not be computed (``detail`` says why)."""

    name: str
    value: float | None
    source: str  # "builtin", "custom" or "task"
    detail: str | None = None


# ----------------------------------------------------------------------------------------------------
# Facts about a run, shared by the rewards


def is_answered(result: RunResult) -> bool:
    """An answer is present and is not the loop's fallback or a short "not found" admission."""
    answer = result.answer.strip()
    if not answer or result.stop_reason in ("error", "deadline") or answer == NOT_FOUND:
        return False
    return not (len(answer) <= _NOT_FOUND_MAX_CHARS and _NOT_FOUND.search(answer))


def returned_labels(result: RunResult) -> set[str]:
    """`path:line` labels of every source that an executed, successful tool call returned."""
    return {ref.label() for step in result.tool_calls if step.skipped is None and step.result.ok
            for ref in step.result.sources}


def executed_tool_names(result: RunResult) -> list[str]:
    """Names of the tool calls that actually ran, in order (repeats the loop skipped are left out)."""
    return [step.call.name for step in result.tool_calls if step.skipped is None]


def _clip(value: float) -> float:
    return 0.0 if math.isnan(value) else min(1.0, max(0.0, value))


# ----------------------------------------------------------------------------------------------------
# Built-in rewards


def research_efficiency(result: RunResult) -> float:
    """research_efficiency: 0 unless the run answered with at least one source; otherwise
    1 / (1 + 0.2 * max(0, calls - 3)), where calls = model calls + executed tool calls
    (3 is the fewest a sourced answer can take: ask for a tool, run it, answer).
    """
    if not is_answered(result) or not result.sources:
        return 0.0
    calls = result.model_calls + len(executed_tool_names(result))
    return _clip(1.0 / (1.0 + CALL_PENALTY * max(0, calls - MIN_CALLS)))


def response_quality(result: RunResult, *, citation_rate: float | None = None) -> float:
    """response_quality: the unweighted mean of
    (a) answered: 1 if an answer is present and is not the fallback or a "not found" admission, else 0;
    (b) grounded: the fraction of the answer's sources whose `path:line` some executed, successful tool
        call returned (0 with no sources);
    (c) finished: 1 if the model answered on its own (stop_reason "answer"), 0 if forced or errored;
    (d) cited: the citation verification rate in [0, 1], only when one is given.
    """
    parts = [float(is_answered(result))]
    if result.sources:
        real = returned_labels(result)
        parts.append(sum(ref.label() in real for ref in result.sources) / len(result.sources))
    else:
        parts.append(0.0)
    parts.append(float(result.stop_reason == "answer"))
    if citation_rate is not None:
        parts.append(_clip(float(citation_rate)))
    return _clip(sum(parts) / len(parts))


def tool_usage(result: RunResult) -> float:
    """tool_usage: the fraction of tool calls that ran and succeeded; failed calls and repeats the loop
    refused count against it; 0 when the run made no tool calls (a research run should use its tools).
    """
    calls = result.tool_calls
    if not calls:
        return 0.0
    good = sum(step.skipped is None and step.result.ok for step in calls)
    return _clip(good / len(calls))


def response_speed(result: RunResult, *, max_response_time: float) -> float:
    """response_speed: 1 when the run took at most max_response_time / 4 seconds, falling linearly to 0
    at 2 * max_response_time and staying 0 beyond; 0 for a run that did not answer (as in
    response_quality), since otherwise failing fast would pay.
    """
    if not max_response_time > 0:
        raise ValueError(f"max_response_time must be positive, got {max_response_time!r}")
    full, zero = max_response_time / 4, 2 * max_response_time
    seconds = result.seconds
    if not is_answered(result) or math.isnan(seconds):
        return 0.0
    if seconds <= full:
        return 1.0
    return _clip((zero - seconds) / (zero - full))


BUILTIN_REWARDS: tuple[str, ...] = OPTIMIZATION_TARGETS


# ----------------------------------------------------------------------------------------------------
# Task rewards: against a known answer


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, drop punctuation and articles, collapse whitespace."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, answer: str) -> float:
    """1.0 if prediction and answer are equal after SQuAD normalisation, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(answer))


def f1(prediction: str, answer: str) -> float:
    """SQuAD token F1 between normalised prediction and answer (1.0 if both are empty)."""
    pred, gold = normalize_answer(prediction).split(), normalize_answer(answer).split()
    if not pred or not gold:
        return float(pred == gold)
    common = sum((collections.Counter(pred) & collections.Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def contains_answer(prediction: str, answer: str) -> float:
    """1.0 if the normalised answer appears as a whole-word run inside the normalised prediction."""
    gold = normalize_answer(answer)
    return float(bool(gold) and f" {gold} " in f" {normalize_answer(prediction)} ")


def regex_match(prediction: str, pattern: str) -> float:
    """1.0 if ``pattern`` (case-insensitive) matches anywhere in the prediction; raises re.error if invalid."""
    return float(re.search(pattern, prediction, re.IGNORECASE | re.MULTILINE) is not None)


def task_reward(result: RunResult, answer: str | None = None, answer_regex: str | None = None) -> float | None:
    """task: :func:`answer_score` of the run's answer."""
    return answer_score(result.answer, answer, answer_regex)


def answer_score(prediction: str, answer: str | None = None, answer_regex: str | None = None) -> float | None:
    """The best of three checks of an answer, or None when the task gives neither: 1 if answer_regex
    matches it; 1 if it contains the reference answer (after SQuAD normalisation); else the SQuAD token
    F1 against the reference. ("Not found" answers are scored like any other, so a task may expect an
    abstention.)
    """
    if answer is None and answer_regex is None:
        return None
    scores = [0.0]
    if answer_regex is not None:
        scores.append(regex_match(prediction, answer_regex))
    if answer is not None:
        scores += [contains_answer(prediction, answer), f1(prediction, answer)]
    return max(scores)


# ----------------------------------------------------------------------------------------------------
# Custom rewards


def _split_path(path: str) -> tuple[str, str]:
    if ":" in path:
        module, _, attr = path.partition(":")
    else:
        module, _, attr = path.rpartition(".")
    if not module or not attr:
        raise ValueError(f"expected 'package.module:function', got {path!r}")
    return module, attr


def load_custom_reward(path: str) -> Callable[[RunResult], Any]:
    """Import the function named ``pkg.mod:func`` (or ``pkg.mod.func``) and adapt it to take a RunResult.

    Two signatures are accepted: the guide's ``(query, response, tools_used)``, called with the
    question, the answer and the names of the tools that ran; and ``(trajectory)``, called with the
    RunResult itself. Raises ImportError, AttributeError or ValueError when neither can be used.
    """
    module_name, attr = _split_path(path)
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"{path} is not callable")
    params = list(inspect.signature(target).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    names = {p.name for p in positional}
    # Names decide first (a guide function may give tools_used a default); else the count of required
    # positional parameters; `*args` alone is ambiguous and rejected.
    if {"query", "response"} <= names or len(required) == 3:
        func = target
        return lambda result: func(result.question, result.answer, executed_tool_names(result))
    if len(required) == 1 or (len(positional) == 1 and not required):
        return target
    shown = ", ".join(p.name for p in params) or "no parameters"
    raise ValueError(f"{path} takes ({shown}); expected (query, response, tools_used) or (trajectory)")


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_MAX else text[: _DETAIL_MAX - 1] + "…"


def _failure(exc: BaseException) -> str:
    return _one_line(f"{type(exc).__name__}: {exc}")


def custom_reward(result: RunResult, path: str) -> Reward:
    """Run the custom reward at ``path``; never raises.

    Import failures, exceptions, and returns that are not a finite number in [0, 1] (a string, None,
    NaN, 1.5 ...) give ``value=None`` with a one-line reason. Out-of-range values are not clipped:
    a reward function that returns 7 is more likely broken than very pleased. Booleans count as 0/1.
    """
    try:
        func = load_custom_reward(path)
    except Exception as exc:  # user code: any import-time error must become a recorded reason
        return Reward("custom", None, "custom", f"cannot load {path}: {_failure(exc)}")
    try:
        value = func(result)
    except Exception as exc:
        return Reward("custom", None, "custom", f"{path} raised {_failure(exc)}")
    if inspect.iscoroutine(value):
        value.close()  # never awaited: close it so Python does not warn at garbage collection
        return Reward("custom", None, "custom", f"{path} is async; a reward function must return a number")
    if not isinstance(value, numbers.Real):
        return Reward("custom", None, "custom",
                      _one_line(f"{path} returned {type(value).__name__} {value!r}, expected a number in [0, 1]"))
    number = float(value)
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        return Reward("custom", None, "custom", f"{path} returned {number!r}, outside [0, 1]")
    return Reward("custom", number, "custom", path)


# ----------------------------------------------------------------------------------------------------
# All rewards of one run


def compute_rewards(
    result: RunResult,
    *,
    max_response_time: float,
    target: str,
    custom: str | None = None,
    task_answer: str | None = None,
    task_answer_regex: str | None = None,
    citation_rate: float | None = None,
) -> tuple[list[Reward], float | None]:
    """Every reward of one run, and the value of ``target`` (a built-in name, "custom" or "task").

    The target's value is None when that reward is missing (a failed custom reward, a task without
    an answer). An unknown target is a programming error and raises ValueError.
    """
    if target not in (*BUILTIN_REWARDS, "custom", "task"):
        raise ValueError(f"unknown reward target {target!r}; expected one of {', '.join(BUILTIN_REWARDS)}, "
                         "custom, task")
    rewards = [
        Reward("research_efficiency", research_efficiency(result), "builtin"),
        Reward("response_quality", response_quality(result, citation_rate=citation_rate), "builtin"),
        Reward("tool_usage", tool_usage(result), "builtin"),
        Reward("response_speed", response_speed(result, max_response_time=max_response_time), "builtin"),
    ]
    if custom:
        rewards.append(custom_reward(result, custom))
    if task_answer is not None or task_answer_regex is not None:
        try:
            rewards.append(Reward("task", task_reward(result, task_answer, task_answer_regex), "task"))
        except re.error as exc:
            # A bad regex in a task file must not lose the run's other rewards.
            rewards.append(Reward("task", None, "task", _one_line(f"invalid answer_regex: {exc}")))
    by_name = {reward.name: reward.value for reward in rewards}
    return rewards, by_name.get(target)
