"""Sources for an answer, chosen from what the tools actually returned.

A source is a `path:line` that some tool result contained. We never cite from the model's text
alone: a `path:line` the model writes is kept only if a tool returned that line. Other sources are
the returned lines that share the answer's distinctive words and numbers.
"""

from __future__ import annotations

import re

from tongyi_agent.tools.base import SourceRef

_TOKEN = re.compile(r"[A-Za-z_][\w.-]*[A-Za-z0-9]|\d+(?:[.,:]\d+)*")
_CITED = re.compile(r"([\w./-]+\.\w+):(\d+)")
_SOURCES_BLOCK = re.compile(r"\n\s*(?:\*\*)?Sources?(?:\*\*)?\s*:?\s*\n(?:\s*[-*\d.].*\n?)*\s*$", re.I)
_STOP = set(
    """the and for are was were with that this from into have has had not but you your our its their there
    what which who when where how why does did can could would should will file files line lines answer
    found project folder value named called given also than then them they these those about over under
    more most some any all each per use used using""".split()
)
MAX_SOURCES = 5


def content_tokens(text: str) -> set[str]:
    """Distinctive lower-cased words and numbers of a text (stop words and short words dropped)."""
    found = set()
    for token in _TOKEN.findall(text):
        lowered = token.lower().strip(".-")
        if lowered and (lowered[0].isdigit() or (len(lowered) >= 3 and lowered not in _STOP)):
            found.add(lowered)
    return found


def strip_model_sources(answer: str) -> str:
    """Drop a trailing 'Sources:' list the model wrote itself; ours replaces it."""
    return _SOURCES_BLOCK.sub("", answer).rstrip()


def select_sources(answer: str, question: str, returned: list[SourceRef]) -> list[SourceRef]:
    """Pick up to MAX_SOURCES returned lines that support the answer, best first."""
    by_label: dict[str, SourceRef] = {}
    for ref in returned:
        by_label.setdefault(ref.label(), ref)
    chosen: list[SourceRef] = [by_label[f"{p}:{n}"] for p, n in _CITED.findall(answer) if f"{p}:{n}" in by_label]

    answer_tokens = content_tokens(answer) - content_tokens(question)
    answer_numbers = {t for t in answer_tokens if t[0].isdigit()}
    scored: list[tuple[float, int, SourceRef]] = []
    for order, ref in enumerate(by_label.values()):
        line_tokens = content_tokens(ref.text)
        overlap = answer_tokens & line_tokens
        if not overlap:
            continue
        # Numbers and rare words identify a supporting line far better than common words.
        score = len(overlap) + 2 * len(overlap & answer_numbers) + 0.1 * len(content_tokens(question) & line_tokens)
        scored.append((score, order, ref))
    scored.sort(key=lambda item: (-item[0], item[1]))
    best = scored[0][0] if scored else 0
    for score, _, ref in scored:
        if score >= max(1.0, best / 2) and ref not in chosen:
            chosen.append(ref)
    return chosen[:MAX_SOURCES]
