"""Verified citations: each claim of the answer checked against the tool result it cites.

A claim is a sentence of the answer. Its sources are the ones it cites explicitly (`path:line`, a
path, a DOI, a URL) or, when it cites nothing, the selected Sources that share its words. A claim is
verified when every quoted text and every number in it occurs in the cited tool output; a DOI must
have come back from a scholarly tool. Claims with nothing checkable (no quote, no number) are
verified when most of their distinctive words occur there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tongyi_agent.agent.citations import content_tokens
from tongyi_agent.tools.base import SourceRef

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(*-])|\n+")
_QUOTE = re.compile(r"[\"“”]([^\"“”]{3,})[\"“”]")
_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?%?")
_LINE_REF = re.compile(r"([\w./-]+\.\w+):(\d+)")
_DOI = re.compile(r"\b(10\.\d{4,9}/[^\s\"'<>),;]+)", re.I)
_URL = re.compile(r"https?://[^\s)\"'<>]+")
_PATH = re.compile(r"(?<![\w/])((?:[\w-]+/)*[\w-]+\.(?:md|txt|csv|py|json|yaml|yml|toml|ini|rst|html|pdf|tsv|log))\b")
_NOT_FOUND = re.compile(r"\bnot (?:be )?(?:found|listed|mentioned|present|available)\b|\bno (?:information|mention)\b",
                        re.I)
CONTEXT_LINES = 2  # a claim about line n may rest on the lines around it


@dataclass(frozen=True)
class Evidence:
    claim: str
    source: str | None  # label of the source it rests on; None when no tool result supports it
    snippet: str
    verified: bool


def _claims(answer: str) -> list[str]:
    parts = (p.strip(" -*\t") for p in _SENTENCE.split(answer))
    return [p for p in parts if len(p) > 2]


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "").rstrip("%") for n in _NUMBER.findall(text)}


def _checkable(claim: str) -> tuple[list[str], set[str]]:
    """Quoted texts and numbers of a claim, ignoring the numbers inside its own citations."""
    bare = _DOI.sub(" ", _URL.sub(" ", _LINE_REF.sub(" ", claim)))
    return [q.strip() for q in _QUOTE.findall(bare)], _numbers(bare)


def _supports(claim: str, snippet: str) -> bool:
    quotes, numbers = _checkable(claim)
    lowered = " ".join(snippet.split()).lower()
    if quotes or numbers:
        return (all(" ".join(q.split()).lower() in lowered for q in quotes)
                and numbers <= _numbers(snippet.replace(",", "")))
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


def verify(answer: str, sources: list[SourceRef], returned: list[SourceRef]) -> list[Evidence]:
    """One Evidence per claim that cites something or states something checkable."""
    index = EvidenceIndex(returned)
    evidence: list[Evidence] = []
    for claim in _claims(answer):
        if _NOT_FOUND.search(claim):
            continue  # "X is not in the files" states an absence; there is nothing to check it against
        cited = index.cited(claim)
        if cited:
            for label, output in cited:
                if label.startswith("doi:"):
                    ok = bool(output)  # a DOI must have come back from a scholarly tool
                    evidence.append(Evidence(claim, label, output.splitlines()[0] if ok else "", ok))
                else:
                    evidence.append(Evidence(claim, label, _best_line(claim, output), _supports(claim, output)))
            continue
        quotes, numbers = _checkable(claim)
        candidates = [s for s in sources if _supports(claim, index.around(s.path, s.line) if s.line else s.text)]
        if candidates:
            best = candidates[0]
            evidence.append(Evidence(claim, best.label(), best.text, True))
        elif quotes or numbers:
            evidence.append(Evidence(claim, None, "", False))
    return evidence


def _best_line(claim: str, output: str) -> str:
    words = content_tokens(claim) | _numbers(claim)
    lines = [line for line in output.splitlines() if line.strip()]
    return max(lines, key=lambda line: len(words & (content_tokens(line) | _numbers(line))), default="")

