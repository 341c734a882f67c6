"""Grounding: is every key fact of an answer in what the tools returned during the run?

Key facts are the parts of an answer a reader would act on and a model is most tempted to recall
instead of read: identifiers (CVE, GHSA, PEP, RFC, DOI, issue and PR numbers), versions, dates,
numbers of two or more digits, quoted strings and proper names. A fact is supported when it occurs
in a tool result of the same run (run_python's printed output counts); facts the question itself
states are given, not claimed. Single-digit numbers are left out: they are mostly counts the model
derived from what it read, and a digit occurs in almost any text.

The loop calls `check_answer` before it accepts an answer (one retry per run, see GroundingGate),
and the evidence list (evidence.py) uses `unsupported` for every claim, so both judge alike.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field

from tongyi_agent.agent.bridges import Bridge, Chain, about_bridge, bridge, chain_of, next_bridge
from tongyi_agent.agent.cited import cited_lines, cited_texts
from tongyi_agent.agent.dates import DATE_PATTERNS, iso, iso_of
from tongyi_agent.agent.periods import PeriodCheck, in_period, period_check
from tongyi_agent.agent.prompts import load_prompt
from tongyi_agent.llm.base import ToolCall
from tongyi_agent.tools.search_results import (
    GROUP_SEPARATOR,
    is_section_line,
    section_count,
    section_of,
    section_range,
)

_IDS = re.compile(
    r"\b(?:CVE-\d{4}-\d{4,}|GHSA(?:-[0-9a-z]{4}){3}|(?:PEP|RFC|BPO|GH)[\s-]?\d+"
    r"|(?:issue|PR|pull request|bug)\s+#?\d+)\b|(?<![\w&])#\d{2,}\b|\b10\.\d{4,9}/[^\s\"'<>),;]+"
    r"|(?<![\w/])[A-Za-z]{2,}/\d+(?:\.\d+)?(?![\w/])", re.I)  # the last: protocol versions, HTTP/3
_QUOTED = re.compile(r"``([^`]{2,})``|`([^`]{2,})`|\"([^\"]{3,})\"|“([^”]{3,})”")
_VERSION = re.compile(r"(?<![\w.])v?(\d+(?:\.\d+)+(?:(?:a|b|rc|\.?dev|\.?post)\d*)?)(?![\w]|\.\d)", re.I)
_NUMBER = re.compile(r"(?<![\w.,])-?(?:\d{1,3}(?:,\d{3})+|\d{2,})(?:\.\d+)?(?![\w]|[.,]\d)")
# `path:line`, URLs, paths and file names cite where a fact is; their digits are not facts (DOIs are).
_URL = re.compile(r"https?://\S+")
_CITATION = re.compile(r"(?:[\w.-]+/)*[\w-]+\.[A-Za-z]\w{0,4}:\d+(?:-\d+)?|" + _URL.pattern +
                       r"|(?<![\w/.])(?!10\.\d{4,9}/|[A-Za-z]{2,}/\d+(?:\.\d+)?(?![\w/]))(?:[\w-]+/)+[\w.-]+"
                       r"|\b[\w-]+\.(?:md|rst|txt|csv|py|json|ya?ml|toml|ini|cfg|log|tsv)\b")
_NAME_PARTICLE = r"(?:van|von|der|den|de|da|di|du|la|le|del|dos|bin|al)"
_MULTIWORD = re.compile(rf"\b[A-Z][\w'’-]*[a-z][\w'’-]*(?:\s+(?:{_NAME_PARTICLE}\s+)*[A-Z][\w'’-]*[a-z][\w'’-]*)+")
_ONE_WORD = re.compile(r"\b(?:[A-Z]+[a-z]+[A-Z][A-Za-z]*|[A-Z]{2,}[a-z]{2,}[A-Za-z]*|[a-z]+[A-Z][A-Za-z]*"
                       r"|[A-Z][A-Z0-9]*_[A-Z0-9_]+)\b")
# Capitalised words that open sentences or are everyday terms, not names: "The Bugfixes Section".
_NOT_NAMES = frozenset("""the a an in on at of for to by and or but it its this that these those there
    according yes no version release released changelog bugfixes features fixed added changed removed deprecated
    misc security note notes see also section file files answer which what when who where how python
    january february march april may june july august september october november december
    monday tuesday wednesday thursday friday saturday sunday""".split())


_QUERY_STOP = frozenset("""the and for are was were with that this from into have has had not but you your
    what which who whom when where how why does did can could would should will there their they them
    about over under some any all each per its it's according file files released release version""".split())


_HOW_MANY = re.compile(r"^\W*how many\b", re.I)
_NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
_COUNT = re.compile(r"(?<![\w.,])(\d+)(?![\w]|[.,]\d)|\b(" + "|".join(_NUMBER_WORDS) + r")\b", re.I)
# Words that add nothing to a question when an answer repeats it: "The revert was in requests 2.32.5."
# Yes, no and not are answers, and a choice ("A or B?") is answered with words of the question.
_FILLER_WORDS = frozenset("""is be been being in on at as by of so
    listed mentioned named called entry entries item items library package project module""".split())
# Folded as `restates` folds words.
_FILLER = frozenset(w.rstrip("s") for w in (_QUERY_STOP | _NOT_NAMES | _FILLER_WORDS) - {"yes", "no", "not"})
_CHOICE = re.compile(r"\bor\b", re.I)
_ASKS_VERSION = re.compile(r"\b(?:which|what)\b[^?]*\bversion\b", re.I)
_ASKS_FILE = re.compile(r"\b(?:which|what)\s+(?:file|document)\b", re.I)
_LINE_SUFFIX = re.compile(r":\d+(?:-\d+)?$")
# An answer saying the files do not hold it: the question's subject needs no support then.
SAYS_NOT_FOUND = re.compile(r"\bnot (?:be )?(?:found|listed|mentioned|present|available)\b"
                            r"|\bno (?:information|mention)\b", re.I)


@dataclass(frozen=True)
class Fact:
    text: str  # as written in the answer
    kind: str  # id | date | version | number | quote | name | count | restated | type


@dataclass
class Grounding:
    """The answer's key facts and those no tool result of the run contains."""

    facts: list[Fact] = field(default_factory=list)
    unsupported: list[Fact] = field(default_factory=list)
    subjects: list[Fact] = field(default_factory=list)  # the question's versions and ids, facts must sit with
    counts: list[tuple[str, int]] = field(default_factory=list)  # sections about the subjects, their list items
    count_range: tuple[str, int, int] | None = None  # where the best of `counts` is: path, first and last line
    nowhere: list[Fact] = field(default_factory=list)  # facts no tool result contains anywhere
    period: PeriodCheck | None = None  # a "same month as X" question's date relation (periods.py)

    @property
    def grounded(self) -> bool:
        return not self.unsupported

    @property
    def failed_period(self) -> PeriodCheck | None:
        """The date relation of a "same month as X" question when the answer was not accepted for
        its date, or for naming no version at all."""
        failed = any(f.kind in ("period", "type") for f in self.unsupported)
        return self.period if failed else None

    def unsupported_texts(self) -> list[str]:
        return [f"{f.text} (the cited line does not state the answer)" if f.kind == "cited" else f.text
                for f in self.unsupported]

    @property
    def absent_subjects(self) -> list[Fact]:
        """The question's versions and ids that no tool result of the run names at all."""
        return [s for s in self.subjects if s in self.unsupported]

    @property
    def absent_ids(self) -> list[Fact]:
        """The identifiers (CVE, PEP, issue ids) an answer gives that no tool result names anywhere,
        when none of the answer's key facts is supported: the answer is then only a recalled id."""
        ids = [f for f in self.nowhere if f.kind == "id"]
        return ids if ids and all(f in self.unsupported for f in self.facts) else []


def absent_answer(subjects: list[Fact], answered: list[Fact] | None = None) -> str:
    """The answer when what the question is about, or the only thing the model answered, is in no
    tool result: not in the files."""
    if answered:  # not named again: the answer would claim it once more (the steps keep it)
        return "Not found in the files: the id the model answered is in no tool result of this run."
    named = ", ".join(f.text for f in subjects)
    return f"Not found in the files: no tool result of this run mentions {named}."


def key_facts(text: str, given: str = "") -> list[Fact]:
    """The key facts stated in `text`, leaving out citations and what `given` (the question) states."""
    rest = _CITATION.sub(" ", text)
    facts: list[Fact] = []

    def take(pattern: re.Pattern[str], kind: str, value: object = None) -> None:
        nonlocal rest
        for match in pattern.finditer(rest):
            piece = next((g for g in match.groups() if g), match.group(0)) if kind == "quote" else match.group(0)
            facts.append(Fact(piece.strip(), kind))
        rest = pattern.sub(" ", rest)

    take(_QUOTED, "quote")
    take(_IDS, "id")
    for pattern in DATE_PATTERNS:
        take(pattern, "date")
    take(_VERSION, "version")
    take(_NUMBER, "number")
    for match in _MULTIWORD.finditer(rest):
        words = match.group(0).split()
        while words and words[0].lower() in _NOT_NAMES:
            words.pop(0)
        while words and words[-1].lower() in _NOT_NAMES:
            words.pop()
        capitalised = [w for w in words if w[:1].isupper() and w.lower() not in _NOT_NAMES]
        if len(capitalised) >= 2:
            facts.append(Fact(" ".join(words), "name"))
    facts.extend(Fact(m.group(0), "name") for m in _ONE_WORD.finditer(rest))
    question = Corpus([given]) if given else None
    unique = list(dict.fromkeys(facts))
    return [f for f in unique if question is None or not question.contains(f)]


class Corpus:
    """Texts the tools returned, indexed for fact look-ups."""

    def __init__(self, texts: Iterable[str]) -> None:
        raw = "\n".join(texts)
        self.text = " ".join(_strip_number_commas(raw).split()).lower()
        self.words = set(re.findall(r"[\w'’-]+", self.text))
        self.dates = {iso(m) for p in DATE_PATTERNS for m in p.finditer(raw)} - {None}

    def contains(self, fact: Fact) -> bool:
        text = " ".join(fact.text.split()).lower()
        if fact.kind == "date":
            return text in self.text or iso_of(fact.text) in self.dates
        if fact.kind == "version":
            core = re.escape(text.lstrip("v"))
            return bool(re.search(rf"(?<![\w.])v?{core}(?:\.0)*(?![\w]|\.\d)", self.text))
        if fact.kind == "number":
            value = re.escape(_strip_number_commas(text))
            return bool(re.search(rf"(?<![\w.]){value}(?![\w]|\.\d)", self.text))
        if fact.kind == "id":
            return self._has_id(text)
        if fact.kind == "name":
            return text in self.text or all(w in self.words for w in re.findall(r"[\w'’-]{3,}", text))
        return text in self.text  # quote

    def contains_any(self, facts: Iterable[Fact]) -> bool:
        return any(self.contains(f) for f in facts)

    def _has_id(self, text: str) -> bool:
        if re.search(rf"(?<![\w-]){re.escape(text)}(?![\w-])", self.text):
            return True
        number = re.search(r"\d+$", text)
        prefix = re.match(r"[a-z]+", text.lstrip("#"))
        if number and (text.startswith("#") or (prefix and prefix.group(0) in ("issue", "pr", "pull", "bug", "gh"))):
            # "#3615", "issue 3615", ":issue:`3615`" and ".../issues/3615" name the same issue.
            return bool(re.search(rf"(?<![\d.]){number.group(0)}(?!\d)", self.text))
        if number and prefix and prefix.group(0) in ("pep", "rfc", "bpo"):
            return bool(re.search(rf"\b{prefix.group(0)}[\s-]?0*{int(number.group(0))}(?!\d)", self.text))
        return False


def check_answer(answer: str, tool_outputs: Iterable[str], question: str = "") -> Grounding:
    """Which key facts of `answer` no tool output supports.

    When the question names its subject by a version or id ("When was charset-normalizer 3.4.2
    released?"), a fact counts only where it occurs in the same block of a tool result as that
    subject (a search group, which names its section, or one read_file result): a date taken from
    the entry of 3.4.3 does not answer a question about 3.4.2. An answer that claims anything about
    a subject no tool result mentions at all ("click 8.4.0") rests on nothing: the subject itself is
    unsupported then. Two more answers rest on nothing: one that only repeats the question ("The
    revert was in requests 2.32.5."), and a "how many" count that differs from every count of list
    items the search results showed for sections about the subject (a small model picks a number
    from the text instead of counting), or that counts a subject no tool result names yet."""
    outputs = list(tool_outputs)
    facts = key_facts(answer, question)
    corpus = Corpus(outputs)
    unsupported = [f for f in facts if not corpus.contains(f)]
    nowhere = list(unsupported)
    subjects = [f for f in key_facts(question) if f.kind in ("version", "id")] if question else []
    counts: list[tuple[str, int, tuple[str, int, int] | None]] = []
    named = Corpus(_URL.sub(" ", output) for output in outputs)
    absent = [s for s in subjects if not named.contains(s)]  # subjects no tool result names
    period = period_check(question, [f.text for f in facts if f.kind == "version"], outputs) if question else None
    if facts and subjects:
        if period is None:  # a "same month as X" answer is about another entry: its dates decide below
            about = _about(outputs, subjects)
            unsupported += [f for f in facts if f not in unsupported and not any(b.contains(f) for b in about)]
        unsupported += absent
    if period is not None and period.answered and not period.holds:
        unsupported.append(Fact(period.subject, "period"))
    if subjects and _HOW_MANY.search(question):
        counts = _counts_about(outputs, subjects, question)
        stated = _COUNT.search(_CITATION.sub(" ", answer))
        if stated and counts and _count_value(stated) not in {c for _, c, _ in counts}:
            unsupported.append(Fact(stated.group(0), "count"))
        elif stated and absent == subjects:  # counted before anything about the subject was seen
            unsupported += [Fact(stated.group(0), "count"), *absent]
    if question and restates(answer, question):
        unsupported.append(Fact("an answer beyond the question", "restated"))
    elif (question and _ASKS_VERSION.search(question) and not _VERSION.search(answer)
          and not SAYS_NOT_FOUND.search(answer)):
        unsupported.append(Fact("a version", "type"))  # "2025-04-10" to "which packaging version"
    if question and _ASKS_FILE.search(question) and not SAYS_NOT_FOUND.search(answer):
        # "Which file records ...?" answered with a file no tool result showed ("src/supplier_chosen.py"):
        # paths are citations elsewhere, so no other rule looks at them.
        paths = answered_paths(answer)
        unsupported += [Fact(p, "path") for p in paths if not any(p in output for output in outputs)] if paths \
            else [Fact("a file", "type")]
    cited = cited_texts(answer, outputs) if facts else None
    if cited is not None and not Corpus(cited[1]).contains_any(facts):
        # "EUR 1,470,000 (projects/lapwing.md:10)" where line 10 says EUR 1,405,000 (agent/cited.py)
        unsupported.append(Fact(cited[0], "cited"))
    counted = any(f.kind == "count" for f in unsupported)
    return Grounding(facts, list(dict.fromkeys(unsupported)), subjects if facts or counts or counted else [],
                     [(name, n) for name, n, _ in counts], counts[0][2] if counts else None, nowhere, period)


def _names_in(text: str) -> list[str]:
    return [f.text for f in key_facts(text) if f.kind == "name"]


def answered_paths(answer: str) -> list[str]:
    """The file paths an answer names (without line numbers or URLs)."""
    found = (_LINE_SUFFIX.sub("", m.group(0)).strip("./") for m in _CITATION.finditer(answer)
             if not _URL.match(m.group(0)))
    return list(dict.fromkeys(p for p in found if p))


def restates(answer: str, question: str) -> bool:
    """The answer says nothing the question does not: no word or number of its own beyond filler."""

    def words(text: str) -> set[str]:
        return {w.lower().rstrip("s") for w in re.findall(r"\w+(?:[.'’/-]\w+)*", text)} - {""}

    return bool(answer.strip()) and not _CHOICE.search(question) and not (words(answer) - words(question) - _FILLER)


def _counts_about(outputs: list[str], subjects: list[Fact],
                  question: str) -> list[tuple[str, int, tuple[str, int, int] | None]]:
    """Sections about `subjects` whose list items a tool result counted, with where each is when a
    search showed it; the sections sharing most words with the question first ("Features in
    urllib3 2.4.0" -> "2.4.0 > Features")."""
    asked = {w.lower() for w in re.findall(r"\w+", question)}
    found: dict[str, tuple[int, tuple[str, int, int] | None]] = {}
    for block, section in _groups(outputs):
        shown = section_count(section) if section else None
        if shown and _names(shown[0], subjects):
            where = section_range(block)
            if shown[0] not in found or (where and not found[shown[0]][1]):
                found[shown[0]] = (shown[1], where)
    ranked = sorted(found.items(), key=lambda item: -len(asked & {w.lower() for w in re.findall(r"\w+", item[0])}))
    return [(name, n, where) for name, (n, where) in ranked]


def _count_value(match: re.Match[str]) -> int:
    return int(match.group(1)) if match.group(1) else _NUMBER_WORDS[match.group(2).lower()]


def _about(outputs: list[str], subjects: list[Fact]) -> list[Corpus]:
    """The parts of the tool results that are about one of `subjects`: a search group whose section
    names it, else each line of the group that names it, with the section's name (a hit under 2.9
    that mentions "Python 3.7" is not about idna 3.7, but the date of 2.9 is about that hit); one
    read_file result that names it. Link targets do not name anything
    (`compare/3.4.2...3.4.3` is in the heading of 3.4.3)."""

    parts: list[Corpus] = []
    for block, section in _groups(outputs):
        if section is None or _names(section, subjects):
            parts += [Corpus([block])] if _names(block, subjects) else []
        else:
            after = block.split(section, 1)[1]
            parts += [Corpus([section, line]) for line in after.splitlines() if _names(line, subjects)]
    return parts


def _groups(outputs: list[str]) -> Iterator[tuple[str, str | None]]:
    """Each block of the tool results with its section line: a search group, a section of a
    read_file page (each opens with the line naming it), or a whole other result."""
    for output in outputs:
        for group in output.split(GROUP_SEPARATOR):
            block: list[str] = []
            for line in group.split("\n"):
                if block and is_section_line(line) and not all(b.startswith("Note:") for b in block):
                    yield "\n".join(block), section_of("\n".join(block))
                    block = []
                block.append(line)
            yield "\n".join(block), section_of("\n".join(block))


def _names(text: str, subjects: list[Fact]) -> bool:
    """Whether `text` names one of `subjects`; link targets name nothing."""
    return Corpus([_URL.sub(" ", text)]).contains_any(subjects)


LOOKUP_GROUPS = 4  # search groups a look-up shows
CITED_CONTEXT = 2  # lines shown around a cited line that does not state the answer (an off-by-one citation)


class GroundingGate:
    """The loop's check before it accepts an answer: at most one retry per run for unsupported facts,
    and one per step of a nested question's path for an answer that stopped at a bridge (bridges.py),
    so it never loops."""

    def __init__(self, question: str, enabled: bool = True) -> None:
        self.question = question
        self.enabled = enabled
        self.retried = False
        self.lookup: ToolCall | None = None  # what the loop runs for the model with a retry note
        self._subjects: list[Fact] = []
        self._period: PeriodCheck | None = None  # a "same month as X" relation the answer failed
        self._seen: list[str] = []  # the tool results the rejected answer was checked against
        self._follow = ""  # how the note names the follow-up look-up, once one ran
        self._chain = chain_of(question) if enabled else None
        self._bridges: list[Bridge] = []  # the bridges earlier answers stopped at, in order
        self._bridged = False  # the current look-up is the last bridge's (see _bridge_chain)

    def retry_note(self, answer: str, tool_outputs: list[str], can_retry: bool,
                   tools: Collection[str] = ()) -> str | None:
        """The note asking the model to answer again from the files, or None to accept the answer.
        With the tools to look it up (`tools`: the names available), `lookup` is set and the loop
        runs it and puts its output, through `focus`, where the note says `{results}`: a count
        that is not the section's reads that section; anything else searches with the question's
        words. Without them the note asks the model to make that search."""
        self.lookup = None
        if not self.enabled or not can_retry:
            return None
        check = check_answer(answer, tool_outputs, self.question)
        if check.grounded:
            return self._bridge_note(check, tool_outputs, tools)
        if self.retried:
            return None
        self.retried = True
        self._bridged = False  # the look-up below is not a bridge's
        self._subjects = check.subjects
        self._period = check.failed_period
        self._seen = list(tool_outputs)
        query = lookup_query(self.question)
        why = _why(check)
        counted = any(f.kind == "count" for f in check.unsupported)
        if counted and check.count_range and "read_file" in tools:
            path, first, last = check.count_range
            self.lookup = ToolCall(id="grounding_lookup", name="read_file",
                                   arguments={"path": path, "start_line": first, "end_line": last})
            did = f'I read section "{check.counts[0][0]}" ({path}, lines {first}-{last}), which lists ' \
                  f"{check.counts[0][1]} items"
        elif (cited := next((f for f in check.unsupported if f.kind == "cited"), None)) and "read_file" in tools:
            path, first, last = cited_lines(cited.text)[0]
            start = max(1, first - CITED_CONTEXT)
            self.lookup = ToolCall(id="grounding_lookup", name="read_file",
                                   arguments={"path": path, "start_line": start, "end_line": last + CITED_CONTEXT})
            did = f"I read the lines around the one it cites ({cited.text})"
        elif self._period is not None and "search_files" in tools:
            self.lookup, did = _period_lookup(self._period)
        elif "search_files" in tools:
            self.lookup = ToolCall(id="grounding_lookup", name="search_files", arguments={"query": query})
            did = f'I searched the files for "{query}" and found'
        else:
            return load_prompt("grounding_retry").format(why=why, query=query)
        # `{results}` stays for the loop to fill in with the look-up's output
        return load_prompt("grounding_lookup").replace("{why}", why).replace("{lookup}", did)

    def _bridge_note(self, check: Grounding, tool_outputs: list[str], tools: Collection[str]) -> str | None:
        """The note for a nested question's answer that stopped at a bridge: it looks the bridge up."""
        if self._chain is None or "search_files" not in tools:
            return None
        names = [f.text for f in check.facts if f.kind == "name"]
        found = bridge(self._chain, [f.text for f in check.facts], names, tool_outputs,
                       [b.name for b in self._bridges], _names_in)
        if found is None:
            return None
        self._bridges.append(found)
        self._bridged = True
        self.lookup = ToolCall(id="grounding_lookup", name="search_files", arguments={"query": found.name})
        return load_prompt("bridge_lookup").replace("{bridge}", found.name).replace("{link}", found.line) \
            .replace("{question}", self.question)

    @property
    def _bridge_chain(self) -> Chain | None:
        """The nested question's path while the current look-up is a bridge's, else None."""
        return self._chain if self._bridged else None

    def focus(self, output: str) -> str:
        """A search look-up's result as the note shows it: the groups whose section names the
        question's subject first, at most `LOOKUP_GROUPS` of them. A small model answered from
        whichever group came first, often another version's. For a "same month as X" answer, only
        the entries dated in X's period (not X's own)."""
        if self.lookup is None or self.lookup.name != "search_files":
            return output
        if (chain := self._bridge_chain) is not None:
            return about_bridge(output, self._bridges[-1].name, chain, LOOKUP_GROUPS)
        if self._period is not None and self._period.subject_date is not None:
            return self._in_period(output)
        return self._about_subjects(output)

    def follow_up(self, output: str) -> ToolCall | None:
        """A second look-up that the first made possible, at most one: once it dated the subject of a
        "same month as X" question, the search for the entries dated in X's period. Shown alone, X's
        entry made the model answer X's date."""
        if (chain := self._bridge_chain) is not None and not self._follow:
            return self._next_bridge(output, chain)
        if self._follow or self._period is None or self._period.subject_date is not None:
            return None
        dated = period_check(self.question, [a.version for a in self._period.answered], [*self._seen, output])
        if dated is None or dated.subject_date is None:
            return None
        self._period = dated
        self.lookup, self._follow = _period_lookup(dated)
        return self.lookup

    def results(self, outputs: list[str]) -> str:
        """What the note shows where it says `{results}`: the look-up's output (`focus`), or with a
        follow-up, both in turn."""
        if len(outputs) > 1 and (chain := self._bridge_chain) is not None:
            first, then = self._bridges[-2:]
            return (f"{about_bridge(outputs[0], first.name, chain, LOOKUP_GROUPS)}\n\n{self._follow}:\n"
                    f"{about_bridge(outputs[1], then.name, chain, LOOKUP_GROUPS)}")
        if len(outputs) == 1 or self._period is None or self._period.subject_date is None:
            return self.focus(outputs[0])
        period = self._period
        return (f"{self._about_subjects(outputs[0], 1)}\n\n{period.subject} is dated {period.subject_date}. "
                f"Then {self._follow}:\n{self._in_period(outputs[1])}")

    def _next_bridge(self, output: str, chain: Chain) -> ToolCall | None:
        """For a question nested twice, the second step's look-up, read off the first bridge's row."""
        if len(self._bridges) >= chain.depth:
            return None
        found = next_bridge(about_bridge(output, self._bridges[-1].name, chain, LOOKUP_GROUPS), chain,
                            self._bridges[-1])
        if found is None:
            return None
        self._bridges.append(found)
        self._follow = f'{found.name} is the {chain.steps[-1]} in that row. Then I searched the files for ' \
                       f'"{found.name}" and found'
        self.lookup = ToolCall(id="grounding_lookup", name="search_files", arguments={"query": found.name})
        return self.lookup

    def _about_subjects(self, output: str, limit: int = LOOKUP_GROUPS) -> str:
        groups = output.split(GROUP_SEPARATOR)
        about = [g for g in groups if self._subjects and _names(section_of(g) or "", self._subjects)]
        return GROUP_SEPARATOR.join((about + [g for g in groups if g not in about])[:limit])

    def _in_period(self, output: str) -> str:
        assert self._period is not None
        groups = output.split(GROUP_SEPARATOR)
        dated = [g for g in groups if in_period(section := section_of(g) or "", self._period)
                 and not _names(section, self._subjects)]  # not the subject's own entry
        return GROUP_SEPARATOR.join((dated or groups)[:LOOKUP_GROUPS])

    def final(self, answer: str, tool_outputs: list[str]) -> Grounding | None:
        return check_answer(answer, tool_outputs, self.question) if self.enabled else None


def _period_lookup(check: PeriodCheck) -> tuple[ToolCall, str]:
    """The search a "same month as X" answer needs next: X's own entry while no result dates it,
    else the entries dated in X's period, in the file the question asks about when one was seen."""
    if check.subject_date is None:
        call = ToolCall(id="grounding_lookup", name="search_files", arguments={"query": check.subject})
        return call, f'I searched the files for "{check.subject}" and found'
    arguments = {"query": check.search_pattern(), **({"path": check.target} if check.target else {})}
    where = check.target or "the files"
    return (ToolCall(id="grounding_lookup", name="search_files", arguments=arguments),
            f"I searched {where} for entries dated in {check.period_text()} and found")


_KIND_WORDS = {"id": "ids", "version": "versions", "date": "dates", "number": "numbers", "quote": "quoted words",
               "name": "names", "path": "file paths"}


def _why(check: Grounding) -> str:
    """Why an answer was not accepted, in the words of the retry note."""
    # A "same month as X" answer is about another entry than X: its dates are judged instead.
    about = " about " + ", ".join(f'"{f.text}"' for f in check.subjects) if check.subjects and not check.period else ""
    reasons = []
    # The values themselves are not repeated: a small model shown its rejected value answered it again.
    kinds = [f.kind for f in check.unsupported if f.kind not in ("count", "restated", "type", "period", "cited")
             and f not in check.subjects]
    if kinds:
        listed = " and ".join(dict.fromkeys(_KIND_WORDS.get(k, k) for k in kinds))
        reasons.append(f"the {listed} in it appear in no tool result of this run{about}, so they may come from "
                       "memory, not from the files.")
    if check.absent_subjects:
        reasons.append("No tool result of this run names " + ", ".join(f'"{f.text}"' for f in check.absent_subjects)
                       + " yet.")
    for fact in check.unsupported:
        if fact.kind == "count" and check.counts:
            shown = "; ".join(f'{n} list items in section "{name}"' for name, n in check.counts[:3])
            reasons.append(f"its count is not one the search results show{about}: they counted {shown}. "
                           "Answer with the count of the section the question asks about.")
        elif fact.kind == "count":
            reasons.append("its count cannot come from the files yet.")
        elif fact.kind == "type":
            reasons.append(f"the question asks which {fact.text.split()[-1]}, and the answer names none.")
        elif fact.kind == "cited":
            reasons.append(f"the line it cites ({fact.text}) does not state what it answers.")
        elif fact.kind == "restated":
            reasons.append("it only repeats the question and does not give what was asked.")
    if check.failed_period is not None:
        reasons.append(_period_reason(check.failed_period))
    return " ".join(reasons)


def _period_reason(check: PeriodCheck) -> str:
    period = check.period
    if check.subject_date is None:
        return f"the question asks for the {period} of {check.subject}, and no tool result of this run dates it yet."
    dated = [a.date for a in check.answered if a.date]
    answered = (f", and the version answered is dated {dated[0]}, another {period}" if dated
                else ", and no tool result dates the version answered" if check.answered else "")
    return (f"{check.subject} is dated {check.subject_date} in the tool results{answered}. Answer with the "
            f"version of the entry dated in {check.period_text()} that the question asks about.")


def lookup_query(question: str, max_words: int = 6) -> str:
    """The question's distinctive words in order, as a search query a small model can copy."""
    words = re.findall(r"\d+(?:\.\d+)+|[\w-]+", question)
    kept = [w for w in words if (len(w) >= 3 or w[0].isdigit()) and w.lower() not in _QUERY_STOP]
    return " ".join(dict.fromkeys(kept[:max_words])) or question.strip()


def _strip_number_commas(text: str) -> str:
    return re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
