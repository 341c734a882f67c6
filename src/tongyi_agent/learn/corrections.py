"""Corrections: a run that got a known answer wrong is followed by a worked example that finds it.

The experience memory learns only from runs that went right, so a question the small model always
gets wrong ("Which supplier did the team choose for project Plover?" answered with a made-up
supplier) never gets an example to copy. A known answer (a task file, a rollout, a benchmark) says
what the run should have found; the folder says where. So for a wrong run the memory looks for the
one tool call a later run can copy that shows the answer: a search with the question's own words
(its names plus one or two of its other words) whose *best* hit holds the answer, or else reading a
small file named after the question's subject that holds it. The call is made with the product's own
tools, so the example shows a real result; the answer shown is the known one, with the line it
stands on.

Only calls a later question can repeat with its own names are kept: the question's words, or a file
named after its subject. An answer no file states (a computed mean) has no line to find: it gets the
short program that computes it instead (learn/computations.py), tried first. A nested question ("the
organisation of the lead of ...") needs more than one look-up (agent/bridges.py takes it step by
step) and gets no correction.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tongyi_agent.agent.bridges import chain_of
from tongyi_agent.learn.computations import programs
from tongyi_agent.learn.evaluation.rewards import contains_answer, regex_match
from tongyi_agent.tools.base import SourceRef, ToolContext, ToolError, ToolResult
from tongyi_agent.tools.read_file import read_file
from tongyi_agent.tools.run_python import run_python
from tongyi_agent.tools.search_files import search_files
from tongyi_agent.tools.walk import iter_files

MAX_FILE_CHARS = 3000  # a file read whole in an example; a longer one would crowd the context
MAX_SEARCHES = 12  # search calls tried per correction
# A value picked out of a data file is usually computed (the highest, a count): an example that reads
# the file and states the value would teach reading where the question needs run_python.
DATA_SUFFIXES = frozenset({".csv", ".tsv", ".json", ".jsonl", ".parquet", ".xlsx"})
_QUESTION_WORDS = frozenset(
    "a an the of in on at to for by with and or is are was were be does did do what which who whom whose when "
    "where how many much why their its".split())


@dataclass(frozen=True)
class Reference:
    """A known answer: the text, a pattern that also accepts it, or both."""

    answer: str | None = None
    regex: str | None = None

    def holds(self, text: str) -> bool:
        """Whether ``text`` states the answer (the task reward's own checks)."""
        if self.regex is not None and regex_match(text, self.regex):
            return True
        return self.answer is not None and bool(contains_answer(text, self.answer))


@dataclass
class Correction:
    """The example for a wrong run: one tool call, its result, the line holding the answer and the answer."""

    tool: str
    arguments: dict[str, Any]
    observation: str
    cited: SourceRef
    answer: str

    def trajectory(self, observation_chars: int) -> dict[str, Any]:
        """In the compact form experiences keep (learn/memory.py)."""
        thought = {"search_files": "I will search for the question's words.",
                   "run_python": "I will compute it from the data with a short program."}.get(
                       self.tool, f"I will read {self.arguments.get('path')}.")
        return {"steps": [{"thought": thought, "tool": self.tool, "arguments": self.arguments,
                           "observation": self.observation[:observation_chars]}],
                "cited": [{"path": self.cited.path, "line": self.cited.line, "text": self.cited.text}]}


def find_correction(question: str, root: Path, reference: Reference) -> Correction | None:
    """A call that shows ``reference``'s answer for ``question`` in ``root``, or None."""
    if chain_of(question) is not None:
        return None
    ctx = ToolContext(root=root)
    path_answer = _existing_path(root, reference.answer)
    if path_answer is None:
        computed = _computed_correction(ctx, question, reference)
        if computed is not None:
            return computed
    for query in itertools.islice(_queries(question), MAX_SEARCHES):
        result = _call(search_files, ctx, query=query)
        best = result.sources[0] if result is not None and result.sources else None
        if best is None:
            continue
        if path_answer is not None and best.path == path_answer:
            return Correction("search_files", {"query": query}, result.output, best, path_answer)
        if path_answer is None and reference.holds(best.text):
            return Correction("search_files", {"query": query}, result.output, best, _answer(reference, best))
    if path_answer is None:
        return _read_correction(ctx, question, reference)
    return None


def _computed_correction(ctx: ToolContext, question: str, reference: Reference) -> Correction | None:
    """A program that computes the answer from a table the question names (learn/computations.py)."""
    for code in programs(question, ctx.root, _names(question)):
        found = _showing(reference, "run_python", {"code": code}, _call(run_python, ctx, code=code))
        if found is not None:
            return found
    return None


def _read_correction(ctx: ToolContext, question: str, reference: Reference) -> Correction | None:
    """Reading a small file named after one of the question's names, which holds the answer."""
    names = {name.lower() for name in _names(question)}
    root = ctx.root.resolve()
    for file in iter_files(root, root):  # the files search_files sees: ignored ones and binaries skipped
        relative = file.relative_to(root).as_posix()
        if (file.suffix.lower() in DATA_SUFFIXES or file.stat().st_size > MAX_FILE_CHARS
                or not names & set(re.split(r"[^a-z0-9]+", relative.lower()))):
            continue
        found = _showing(reference, "read_file", {"path": relative}, _call(read_file, ctx, path=relative))
        if found is not None:
            return found
    return None


def _showing(reference: Reference, tool: str, arguments: dict[str, Any],
             result: ToolResult | None) -> Correction | None:
    """The correction made of a call whose result has a source holding the answer, else None."""
    if result is None:
        return None
    holding = [s for s in result.sources if reference.holds(s.text)]
    return Correction(tool, arguments, result.output, holding[0], _answer(reference, holding[0])) if holding else None


def _queries(question: str) -> Iterator[str]:
    """Searches built from the question's words: its names with one other word, then with two, then alone."""
    names = _names(question)
    if not names:
        return
    others = [w for w in _words(question)[1:] if w not in names]
    for word in others:
        yield " ".join([*names, word])
    for pair in itertools.combinations(others, 2):
        yield " ".join([*names, *pair])
    yield " ".join(names)


def _words(question: str) -> list[str]:
    words = [w.removesuffix("'s").removesuffix("’s") for w in re.findall(r"[\w'’-]+", question)]
    return [w for w in words if w.lower() not in _QUESTION_WORDS and not re.search(r"[\d_]", w)]


def _names(question: str) -> list[str]:
    """The capitalised words after the first: what the question is about ("Plover", "Harrowgate Systems")."""
    return [w for w in _words(question)[1:] if w[:1].isupper()]


def _existing_path(root: Path, answer: str | None) -> str | None:
    """The answer when it is the path of a file under ``root`` (a "which file" question)."""
    if not answer or ("/" not in answer and "." not in answer):
        return None
    top = root.resolve()
    candidate = (top / answer.strip()).resolve()
    if not candidate.is_relative_to(top) or not candidate.is_file():
        return None
    return candidate.relative_to(top).as_posix()


def _answer(reference: Reference, line: SourceRef) -> str:
    """The known answer as the example's final answer, with the line it stands on."""
    text = reference.answer
    if text is None and reference.regex is not None:
        found = re.search(reference.regex, line.text, re.IGNORECASE)
        text = found.group(0) if found else line.text.strip()
    return f"{text} ({line.label()})"


def _call(tool: Any, ctx: ToolContext, **arguments: Any) -> ToolResult | None:
    try:
        result: ToolResult = tool(ctx, **arguments)
    except ToolError:
        return None
    return result if result.ok else None
