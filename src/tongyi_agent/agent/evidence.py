"""Verified citations: each claim of the answer checked against the tool results of the run.

A claim is a sentence of the answer. Its key facts (identifiers, versions, dates, numbers, quoted
strings, names; see grounding.py, whose check the loop runs before it accepts an answer) must occur
in the tool output it cites (`path:line`, a path, a DOI, a URL) or, when it cites nothing, in some
tool result of the run; a DOI must have come back from a scholarly tool. A claim with no key fact
but at least MIN_CLAIM_WORDS distinctive words is verified when a selected Source shares most of
them. Every claim that no tool result supports is listed as unverified, never left out, so
``verification_rate`` is not inflated by what could not be matched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tongyi_agent.agent.citations import content_tokens
from tongyi_agent.agent.grounding import SAYS_NOT_FOUND, Corpus, key_facts
from tongyi_agent.tools.base import SourceRef

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(*-])|\n+")
_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?%?")
_LINE_REF = re.compile(r"([\w./-]+\.\w+):(\d+)")
_DOI = re.compile(r"\b(10\.\d{4,9}/[^\s\"'<>),;]+)", re.I)
_URL = re.compile(r"https?://[^\s)\"'<>]+")
_PATH = re.compile(r"(?<![\w/])((?:[\w-]+/)*[\w-]+\.(?:md|txt|csv|py|json|yaml|yml|toml|ini|rst|html|pdf|tsv|log))\b")
CONTEXT_LINES = 2  # a claim about line n may rest on the lines around it
MIN_CLAIM_WORDS = 3  # fewer distinctive words and no key fact ("I looked at the files."): nothing to check
TOOL_OUTPUT = "tool output"  # source label of a fact found in a tool result that names no line


@dataclass(frozen=True)
class Evidence:
    claim: str
    source: str | None  # label of the source it rests on; None when no tool result supports it
    snippet: str
    verified: bool


def _claims(answer: str) -> list[str]:
    parts = (p.strip(" -*\t") for p in _SENTENCE.split(answer))
    return [p for p in parts if len(p) > 2]


def _supports(claim: str, snippet: str, question: str = "") -> bool:
    facts = key_facts(claim, question)
    if facts:
        corpus = Corpus([snippet])
        return all(corpus.contains(f) for f in facts)
    words = content_tokens(_PATH.sub(" ", claim))
    return bool(words) and len(words & content_tokens(snippet)) * 2 >= len(words)


class EvidenceIndex:
    """Everything the tools returned in one run, looked up by what a claim may cite."""

    def __init__(self, returned: list[SourceRef]) -> None:
        self.by_path: dict[str, dict[int | None, str]] = {}
        for ref in returned:
            self.by_path.setdefault(ref.path, {}).setdefault(ref.line, ref.text)

    def around(self, path: str, line: int) -> str:
        lines = self.by_path.get(path, {})
        return "\n".join(lines[n] for n in range(line - CONTEXT_LINES, line + CONTEXT_LINES + 1) if n in lines)

    def whole(self, path: str) -> str:
        return "\n".join(text for _, text in sorted(self.by_path.get(path, {}).items(), key=lambda kv: kv[0] or 0))

    def cited(self, claim: str) -> list[tuple[str, str]]:
        """(label, tool output) for each source the claim names explicitly; unknown ones get ''."""
        found: list[tuple[str, str]] = []
        for path, line in _LINE_REF.findall(claim):
            found.append((f"{path}:{line}", self.around(path, int(line))))
        for doi in _DOI.findall(claim):
            doi = doi.rstrip(".").lower()
            found.append((f"doi:{doi}", self.whole(f"doi:{doi}") if f"doi:{doi}" in self.by_path else ""))
        for url in _URL.findall(claim):
            url = url.rstrip(".,")
            found.append((url, self.whole(url)))
        if not found:
            for path in _PATH.findall(claim):
                found.append((path, self.whole(path)))
        return found


def verify(answer: str, sources: list[SourceRef], returned: list[SourceRef],
           outputs: list[str] | None = None, question: str = "") -> list[Evidence]:
    """One Evidence per claim that cites something or states something checkable.

    `outputs` are the tool results the model saw (default: the text of `returned`); facts the
    `question` states are given, not claimed."""
    index = EvidenceIndex(returned)
    corpus = Corpus(outputs if outputs is not None else [ref.text for ref in returned])
    evidence: list[Evidence] = []
    for claim in _claims(answer):
        if SAYS_NOT_FOUND.search(claim):
            continue  # "X is not in the files" states an absence; there is nothing to check it against
        cited = index.cited(claim)
        if cited:
            for label, output in cited:
                if label.startswith("doi:"):
                    ok = bool(output)  # a DOI must have come back from a scholarly tool
                    evidence.append(Evidence(claim, label, output.splitlines()[0] if ok else "", ok))
                else:
                    evidence.append(Evidence(claim, label, _best_line(claim, output),
                                             _supports(claim, output, question)))
            continue
        facts = key_facts(claim, question)
        if facts:
            if all(corpus.contains(f) for f in facts):
                ref = _holding(facts, sources) or _holding(facts, returned)
                evidence.append(Evidence(claim, ref.label() if ref else TOOL_OUTPUT, ref.text if ref else "", True))
            else:
                evidence.append(Evidence(claim, None, "", False))
            continue
        if len(content_tokens(_PATH.sub(" ", claim))) < MIN_CLAIM_WORDS:
            continue
        candidates = [s for s in sources
                      if _supports(claim, index.around(s.path, s.line) if s.line else s.text, question)]
        best = candidates[0] if candidates else None
        evidence.append(Evidence(claim, best.label() if best else None, best.text if best else "", bool(best)))
    return evidence


def _holding(facts: list, refs: list[SourceRef]) -> SourceRef | None:
    """The first returned line that holds the most of `facts`."""
    scored = [(sum(Corpus([ref.text]).contains(f) for f in facts), -i, ref) for i, ref in enumerate(refs)]
    best = max(scored, default=None, key=lambda item: item[:2])
    return best[2] if best and best[0] else None


def _best_line(claim: str, output: str) -> str:
    words = content_tokens(claim)
    lines = [line for line in output.splitlines() if line.strip()]
    return max(lines, key=lambda line: len(words & content_tokens(line)), default="")
