"""Cited lines: does the line an answer cites state what the answer claims?

An answer in the form worked examples teach ("EUR 1,470,000 (projects/lapwing.md:10)") can cite the
right line and still state another value: the archive's superseded budget that another search hit
showed, or another project's supplier. Every key fact is then in some tool result, so the grounding
check's corpus test passes it. Here the cited lines are looked up in the tool results themselves
(search hits are `path:line: text`, a read_file result of a sectioned file is headed `[path, ...]`
and numbers its lines), and an answer none of whose key facts is on any line it cites is not
supported by its citation. Only lines seen in the run are judged: a read_file result of a file
without sections does not name its path, so a citation of it is left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tongyi_agent.tools.search_results import section_place

_CITED = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w-][\w.-]*\.[A-Za-z]\w{0,4}):(\d+)(?:-(\d+))?")
_SEARCH_LINE = re.compile(r"^((?:[\w.-]+/)*[\w.-]+)([:-])(\d+)\2 ?(.*)$")
_NUMBERED = re.compile(r"^(\d+): ?(.*)$")
MAX_SPAN = 20  # a cited range longer than this is a section, not a line: not judged


def cited_lines(answer: str) -> list[tuple[str, int, int]]:
    """The `path:line` and `path:first-last` citations in ``answer``, as (path, first, last)."""
    found = []
    for match in _CITED.finditer(answer):
        first = int(match.group(2))
        last = int(match.group(3)) if match.group(3) else first
        if first <= last <= first + MAX_SPAN:
            found.append((match.group(1), first, last))
    return found


def seen_lines(outputs: Iterable[str]) -> dict[tuple[str, int], str]:
    """Every line the tool results showed with its path and number: search hits and context lines,
    and the numbered lines of read_file results headed by their path."""
    seen: dict[tuple[str, int], str] = {}
    for output in outputs:
        current: str | None = None
        for line in output.splitlines():
            place = section_place(line)  # `[path, section "...":]`, the one header that names a file
            if place is not None:
                current = place[0]
                continue
            hit = _SEARCH_LINE.match(line)
            if hit and ("/" in hit.group(1) or "." in hit.group(1)):
                seen[(hit.group(1), int(hit.group(3)))] = hit.group(4)
                continue
            numbered = _NUMBERED.match(line)
            if numbered and current is not None:
                seen[(current, int(numbered.group(1)))] = numbered.group(2)
    return seen


def cited_texts(answer: str, outputs: Iterable[str]) -> tuple[str, list[str]] | None:
    """The answer's first citation as `path:line` and the texts of all the lines it cites, when every
    cited line is one the tool results showed; None when it cites nothing or a line not seen."""
    citations = cited_lines(answer)
    if not citations:
        return None
    seen = seen_lines(outputs)
    texts: list[str] = []
    for path, first, last in citations:
        lines = [seen.get((path, n)) for n in range(first, last + 1)]
        if any(text is None for text in lines):
            return None
        texts += [text for text in lines if text is not None]
    path, first, last = citations[0]
    return (f"{path}:{first}" if first == last else f"{path}:{first}-{last}"), texts
