"""Nested questions: "Which organisation does the lead of project Avocet work for?" asks about the
lead of project Avocet, not for the lead.

A small model looks the project up, finds "Lead: Farah Zamora" and answers the name: one step
short. The lead is a *bridge*: the thing the question leads through on its way to what it asks.
An answer whose names all sit on the line that links the subject to the bridge (a line naming the
question's relation, "lead", and its subject, "Avocet") is that bridge, and so is an answer taken
from the subject's own lines (the project's start year for the year the lead started): the next
step is to look the bridge up. Questions nest at most twice here ("Who directs the organisation that employs
the lead of project Siskin?": the lead, then their organisation), so a second answer that only
names what sits beside the first bridge in its look-up is a bridge too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tongyi_agent.tools.search_results import GROUP_SEPARATOR, is_section_line, is_table_row, result_text

_NAMED = r"(?P<subject>(?:[a-z]+ )?[A-Z][\w.-]*(?: [A-Z][\w.-]*)*)"
# "the lead of project Avocet", "the person who leads project Merlin"
_INNER = re.compile(rf"\bthe (?:(?:person|people|one|team|group) (?:who|that) (?P<verb>[a-z]+)|(?P<noun>[a-z]+) of) "
                    rf"{_NAMED}")
# "What is the role of": the noun is what is asked, not a step on the way.
_ASKED_NOUN = re.compile(r"^\W*(?:what|which|who)\s+(?:is|was|are|were)\s+the\s+[a-z]+\s+of\s*$", re.I)
# "What is", "Who was": the inner phrase is the question itself ("Who is the lead of project X?").
_DIRECT = re.compile(r"^\W*(?:what|which|who)(?:\s+[a-z]+)?\s+(?:is|was|are|were)\s*$", re.I)
# "the organisation that employs", "the organisation of": one more step between bridge and answer.
_STEP = re.compile(r"\bthe ([a-z]+) (?:of|that|which|who)\b")
MAX_DEPTH = 2


@dataclass(frozen=True)
class Chain:
    """A nested question's path: from `subject` through the value of `relation` to what is asked."""

    subject: str  # as the question names it: "project Avocet"
    relation: str  # the inner relation, as a stem that its lines contain: "lead"
    depth: int  # steps from the subject to what is asked: 1 or 2
    steps: tuple[str, ...] = ()  # what the later steps are, outermost first: ("organisation",)

    @property
    def subject_word(self) -> str:
        """The subject's own name, which its lines or its file carry: "Avocet"."""
        return self.subject.split()[-1]


def chain_of(question: str) -> Chain | None:
    """The path of a nested question, or None when it asks for the inner relation itself."""
    inner = _INNER.search(question)
    if inner is None:
        return None
    prefix = question[:inner.start()]
    if not prefix.strip() or _DIRECT.match(prefix):
        return None
    relation = _stem(inner.group("verb") or inner.group("noun"))
    steps = () if _ASKED_NOUN.match(prefix) else tuple(_STEP.findall(prefix))
    return Chain(inner.group("subject"), relation, min(1 + len(steps), MAX_DEPTH), steps[:MAX_DEPTH - 1])


def _stem(word: str) -> str:
    """"leads" → "lead", "directs" → "direct": the form a fact line writes ("Lead: ...")."""
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


@dataclass(frozen=True)
class Bridge:
    name: str  # "Farah Zamora"
    line: str  # the result line that links it to the step before, without its path: "- Lead: Farah Zamora"


def bridge(chain: Chain, answered: Sequence[str], names: Sequence[str], outputs: Sequence[str],
           previous: Sequence[str], names_of: Callable[[str], list[str]]) -> Bridge | None:
    """The bridge an answer stopped at, or None.

    Either `names` (the answer's proper names) all sit on one result line that links the previous
    step to them: the first step's line names the relation and the subject ("projects/avocet.md:9:
    - Lead: Farah Zamora"), a later step's line names the bridge before it ("| Jonas Quist | Senior
    scientist | Brightmoor Research | 2009 |"). Or, at the first step, every key fact the answer
    gives (`answered`) sits only on lines of the subject's own ("2021" from "projects/whimbrel.md:8:
    Work started on 2021-04-03"): a nested question's answer is in the bridge's record, not the
    subject's, so the bridge is the name (`names_of`) on the subject's link line."""
    if len(previous) >= chain.depth or any(n in previous for n in names):
        return None
    lines = [line for output in outputs for line in output.splitlines() if not is_section_line(line)]
    if names:
        for line in lines:
            if all(n in line for n in names) and _links(line, chain, previous):
                return Bridge(" ".join(names), result_text(line))
    if previous or not answered or any(f in line and not _names_subject(line, chain)
                                       for f in answered for line in lines):
        return None
    for line in lines:
        if _links(line, chain, previous) and (found := names_of(result_text(line))):
            return Bridge(found[0], result_text(line))
    return None


def _links(line: str, chain: Chain, previous: Sequence[str]) -> bool:
    if previous:
        return previous[-1] in line
    return re.search(rf"\b{re.escape(chain.relation)}", line.lower()) is not None and _names_subject(line, chain)


def _names_subject(line: str, chain: Chain) -> bool:
    """The line (or its file) names the subject: "projects/avocet.md:9: - Lead: ..." for Avocet."""
    return chain.subject_word.lower() in line.lower()


def next_bridge(shown: str, chain: Chain, previous: Bridge) -> Bridge | None:
    """The next step read off the previous bridge's table row, for a question nested twice: the
    cell under the column that the question's step names ("the organisation that employs the lead
    ..." → the row's "Organisation" cell). None without such a row and column."""
    if not chain.steps:
        return None
    lines = [result_text(line) for line in shown.splitlines()]
    table = [line for line in lines if is_table_row(line)]
    if len(table) < 2:
        return None
    columns = _cells(table[0])
    wanted = chain.steps[-1][:5].lower()
    column = next((i for i, c in enumerate(columns) if c[:5].lower() == wanted), None)
    row = next((line for line in table[1:] if previous.name in _cells(line)), None)
    if column is None or row is None or column >= len(_cells(row)):
        return None
    value = _cells(row)[column]
    return Bridge(value, row) if value and value != previous.name else None


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split("|")]


def about_bridge(output: str, bridge_name: str, chain: Chain, limit: int) -> str:
    """A look-up of the bridge as the retry note shows it: in each search group only the lines that
    name the bridge (under the group's section line and a table's header row), and not the subject's
    own lines the answer came from. A section named after the bridge is its record and comes whole
    and first, then table rows (a row is a record too), then the rest. Neighbouring
    rows of a table name other people; a small model answered from them."""
    records: list[str] = []  # groups in a section named after the bridge: shown whole
    rows: list[str] = []
    others: list[str] = []
    for group in output.split(GROUP_SEPARATOR):
        lines = group.splitlines()
        if lines and is_section_line(lines[0]) and bridge_name in lines[0]:
            records.append(group)
            continue
        named = [line for line in lines if bridge_name in line and not is_section_line(line)
                 and not _names_subject(line, chain)]
        if not named:
            continue
        table = [line for line in lines if is_table_row(result_text(line))]
        in_table = any(line in table for line in named)
        header = table[:1] if in_table and table[0] not in named else []
        kept = "\n".join([*(line for line in lines[:1] if is_section_line(line)), *header, *named])
        (rows if in_table else others).append(kept)
    kept_groups = records + rows + others
    return GROUP_SEPARATOR.join(kept_groups[:limit]) if kept_groups else output
