"""How search_files shows its hits: grouped by the section they sit in, under that section's headers.

Each group opens with one line that names the section in words, from the headings above its hits
(with any date line or trailer that names it): `[CHANGES.rst, section "2.5.0 (2025-06-18) > Bugfixes":]`.
Then each hit with a line of context either side, every line at most once even where the context
windows of adjacent hits overlap, and the call that reads the whole section. Groups come in the
order of their best hit. Header lines, and a section's first lines shown under a hit on its heading,
are among the returned sources too, so answers can cite them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tongyi_agent.tools.base import SourceRef
from tongyi_agent.tools.sections import Section, ancestry, enclosing, find_sections, is_prose, is_rule, list_items

CONTEXT = 1  # lines shown either side of a hit
# A hit on a section's own heading ("idna 3.9" finds `3.9 (2024-09-13)`) says only that the section
# exists; its first lines say what it holds. Shown for the best few such groups, to bound the output.
HEADING_BODY_LINES = 5
HEADING_BODY_GROUPS = 3
GROUP_SEPARATOR = "\n--\n"  # between the groups of one search result
_SECTION_LINE = re.compile(r'^\[(.*?), section "(.*)"(?:, (\d+) list items?)?:\]$')
_WHOLE_SECTION = re.compile(r'^\[whole section: read_file\(path="(.*)", start_line=(\d+), end_line=(\d+)\)\]$', re.M)
_MARKDOWN_LINK = re.compile(r"\[([^\]]*)\]\([^)\s]*\)")
_SEPARATOR_MARKS = str.maketrans("", "", "|:-")
_PLACE = re.compile(r"^\S+?[:-]\d+[:-] ?")  # "path:9: " before a hit, "path-10- " before a context line


@dataclass(frozen=True)
class Hit:
    """One matching line: `line` (1-based) of the file `label`, whose lines are `lines`."""

    label: str
    line: int
    lines: Sequence[str]


def shorten(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[:max_chars] + " [...]"


def render_hits(hits: Sequence[Hit], max_chars: int = 300) -> tuple[list[str], list[SourceRef]]:
    """One text block per group, and the sources shown: the hits (in the given order), then the
    header lines, then the first lines shown under a heading hit, each once. Lines longer than
    `max_chars` are cut."""
    sections_of: dict[str, list[Section]] = {}
    groups: dict[tuple[str, int | None], list[Hit]] = {}
    for hit in hits:
        if hit.label not in sections_of:
            sections_of[hit.label] = find_sections(hit.label, hit.lines)
        chain = enclosing(sections_of[hit.label], hit.line)
        groups.setdefault((hit.label, chain[-1] if chain else None), []).append(hit)

    blocks: list[str] = []
    header_refs: list[SourceRef] = []
    body_refs: list[SourceRef] = []
    hit_lines = {(h.label, h.line) for h in hits}
    bodies_left = HEADING_BODY_GROUPS
    for (label, inner), members in groups.items():
        sections = sections_of[label]
        lines = members[0].lines
        headers = _header_lines(sections, inner, len(lines))
        shown: set[int] = set()
        matched = {h.line for h in members}
        for hit in members:
            # Blank lines and underlines carry nothing and cost context space; headers are named above.
            shown.update(n for n in range(max(1, hit.line - CONTEXT), min(len(lines), hit.line + CONTEXT) + 1)
                         if n in matched or (lines[n - 1].strip() and n not in headers and not is_rule(lines[n - 1])))
        # A table row means little without its column names ("| Jonas Quist | Senior scientist |
        # Brightmoor Research | 2009 |"): its table's header row is shown with it.
        tables = {header for hit in members if (header := table_header(lines, hit.line)) is not None}
        shown.update(tables)
        body: list[int] = sorted(tables - matched)
        if inner is not None and bodies_left and matched & set(sections[inner].header):
            bodies_left -= 1
            body += _body(lines, sections[inner])
            shown.update(body)
        out: list[str] = []
        if inner is not None:
            # The headers in words, in front of the hits: a small model reads "section X" as where the
            # hit belongs, where bare header lines above it were often skipped.
            out.append(section_line(label, lines, sections, inner, max_chars))
        previous = None
        for number in sorted(shown):
            skipped = range(previous + 1, number) if previous is not None else range(0)
            if previous is not None and any(lines[n - 1].strip() and not is_rule(lines[n - 1]) for n in skipped):
                out.append("...")
            sep = ":" if number in matched else "-"  # result_text reads this back
            out.append(f"{label}{sep}{number}{sep} {shorten(lines[number - 1], max_chars)}")
            previous = number
        if inner is not None:
            section = sections[inner]
            out.append(f"[whole section: read_file(path=\"{label}\", start_line={section.start}, "
                       f"end_line={section.end})]")  # section_range reads it back
        blocks.append("\n".join(out))
        header_refs.extend(SourceRef(label, n, lines[n - 1]) for n in headers if (label, n) not in hit_lines)
        body_refs.extend(SourceRef(label, n, lines[n - 1]) for n in body if (label, n) not in hit_lines)
    sources = [SourceRef(h.label, h.line, h.lines[h.line - 1]) for h in hits]
    return blocks, list(dict.fromkeys(sources + header_refs + body_refs))


def is_table_row(text: str) -> bool:
    """A line of a Markdown table (header, separator or body row)."""
    return text.lstrip().startswith("|")


def table_header(lines: Sequence[str], number: int) -> int | None:
    """The header row (1-based) of the Markdown table whose body row is line `number`, or None when
    the line is not a table body row."""
    def row(n: int) -> bool:
        return 1 <= n <= len(lines) and is_table_row(lines[n - 1])

    if not row(number):
        return None
    top = number
    while row(top - 1):
        top -= 1
    # Under the header a separator row of pipes, dashes and colons ("| --- | :-: |"); the body below.
    if number <= top + 1 or lines[top].translate(_SEPARATOR_MARKS).strip():
        return None
    return top


def result_text(line: str) -> str:
    """A search result line without the place in front of it: "projects/a.md:9: - Lead: X" -> "- Lead: X"."""
    return _PLACE.sub("", line, count=1).strip()


def section_line(label: str, lines: Sequence[str], sections: Sequence[Section], index: int,
                 max_chars: int = 300) -> str:
    """The line naming section `index` in words, with the headers around it and the count of its
    list items (`[CHANGES.rst, section "2.4.0 (2025-04-10) > Features", 3 list items:]`): the count
    answers "how many" without counting lines, which small models do badly."""
    names = " > ".join(title(lines[n - 1]) for n in _header_lines(sections, index, len(lines)))
    items = list_items(lines, sections, index) if is_prose(label) else 0
    count = f", {items} list item{'s' if items != 1 else ''}" if items else ""
    return f"[{label}, section \"{shorten(names, max_chars)}\"{count}:]"


def is_section_line(line: str) -> bool:
    return bool(_SECTION_LINE.match(line))


def _body(lines: Sequence[str], section: Section) -> list[int]:
    """The first lines of a section's text: not blank, not a heading of its own, not an underline."""
    body = [n for n in range(section.start, section.end + 1)
            if n not in section.header and lines[n - 1].strip() and not is_rule(lines[n - 1])]
    return body[:HEADING_BODY_LINES]


def title(line: str) -> str:
    """A header line without its markup: `## [1.2.0] - 2025-01-02` -> `[1.2.0] - 2025-01-02`. A link
    shows as its text: `## [3.4.3](https://x/compare/3.4.2...3.4.3)` is about 3.4.3, not 3.4.2."""
    return _MARKDOWN_LINK.sub(r"\1", line.strip().strip("#*=").strip())


def section_of(group: str) -> str | None:
    """The line naming a search group's section, or None for other text. It is the group's first
    line, or the first after the notes a result may open with ("Note: 'docs' does not exist; ...")."""
    for line in group.split("\n", 3)[:3]:
        if _SECTION_LINE.match(line):
            return line
        if not line.startswith("Note:"):
            return None
    return None


def section_range(group: str) -> tuple[str, int, int] | None:
    """Where a search group's whole section is, from the call it shows for reading it:
    `[whole section: read_file(path="a.md", start_line=4, end_line=9)]` -> ("a.md", 4, 9)."""
    match = _WHOLE_SECTION.search(group)
    return (match.group(1), int(match.group(2)), int(match.group(3))) if match else None


def section_count(section_line: str) -> tuple[str, int] | None:
    """The section's name and the count of its list items that a group's section line shows
    (`[a.md, section "2.4.0 > Features", 3 list items:]` -> ("2.4.0 > Features", 3)), else None."""
    match = _SECTION_LINE.match(section_line)
    return (match.group(2), int(match.group(3))) if match and match.group(3) else None


def section_place(section_line: str) -> tuple[str, str] | None:
    """The file and the section's name that a section line shows
    (`[a.md, section "2.4.0 (2025-04-10) > Features":]` -> ("a.md", "2.4.0 (2025-04-10) > Features"))."""
    match = _SECTION_LINE.match(section_line)
    return (match.group(1), match.group(2)) if match else None


def _header_lines(sections: Sequence[Section], inner: int | None, total: int) -> list[int]:
    """Header lines of the section `inner` and of every section around it, outermost first; a
    document title around everything (``# Changelog``) says nothing about where a hit is."""
    chain = [i for i in ancestry(sections, inner)
             if i == inner or not (sections[i].start <= 5 and sections[i].end >= total - 1)]
    return [n for index in reversed(chain) for n in sections[index].header]
