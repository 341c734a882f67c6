"""Sections of a text file: the headings a line sits under, detected by the kind of file.

A search hit alone loses its context: in a changelog the version, date and signer of an entry sit
in its heading or trailer, in code the function a line belongs to sits in its signature, in a CSV
the meaning of a value sits in the header row. `find_sections` returns each file's sections as a
tree (by level), so a hit can be shown with every heading above it and with a range that reads the
whole section.

Detectors by file type:

- Markdown (.md, .markdown): ATX (``# Title``) and setext (underlined) headings, outside code fences;
- reStructuredText and plain text (.rst, .txt, no suffix, anything else): underlined (and
  overlined) headings, levels in order of first use, as docutils assigns them;
- changelogs and NEWS in any of those: Debian entries (``pkg (1.2-1) unstable; urgency=low``, whose
  ``-- Name <email>  date`` trailer belongs to the header), Keep a Changelog (``## [1.2.3] - date``),
  ``Version 1.2`` and ``1.2.3 (date)`` / ``1.2 - date`` lines, underlined or not; a date line right
  under a heading (``Released 2025-09-15``) and ``Signed-off-by:`` trailers count as header too;
- Python and JavaScript/TypeScript: ``def``/``class`` and ``function``/``class``/arrow functions,
  nested by indentation;
- INI/TOML/cfg: ``[section]`` lines;
- CSV/TSV: the header row heads the whole file;
- plain text with no headings of the kinds above: a short line followed by a blank line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

MARKDOWN = frozenset({".md", ".markdown", ".mdown"})
PYTHON = frozenset({".py", ".pyi"})
JAVASCRIPT = frozenset({".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx"})
INI = frozenset({".ini", ".cfg", ".conf", ".toml", ".properties", ".desktop"})
TABLES = frozenset({".csv", ".tsv"})
MAX_TITLE_CHARS = 80  # longer lines are prose, not headings (plain-text fallback and changelog lines)

_ATX = re.compile(r"^ {0,3}(#{1,6})\s+(\S.*?)\s*#*\s*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+<>:._])\1{2,}\s*$")
_DATE = r"\d{4}-\d{2}-\d{2}|\d{1,2} \w{3,9},? \d{4}|\w{3,9} \d{1,2},? \d{4}"
_VERSION = r"v?\d+(?:\.\d+)+(?:[-.]?(?:a|b|rc|dev|post)\d*)?"
_CHANGELOG_ENTRY = re.compile(
    rf"^(?:#+\s*)?(?:\[?(?:version|release|v)\s*{_VERSION}\]?\b.*"  # Version 8.3.0 / Release 2.1
    rf"|\[?{_VERSION}\]?(?:\([^)]*\))?\s*(?:\(\s*(?:{_DATE}|unreleased)[^)]*\)|[-–—:]\s*(?:{_DATE}|unreleased)).*)$",
    re.I)
_DEBIAN_ENTRY = re.compile(r"^[a-z0-9][a-z0-9.+-]+ \([^)\s]+\) [^;]+; *urgency=\w+")
_DEBIAN_TRAILER = re.compile(r"^ -- \S.*<[^>]+>\s+\S")
_SIGNED_OFF = re.compile(r"^\s*Signed-off-by:\s*\S", re.I)
_DATE_LINE = re.compile(rf"^\s*(?:(?:released|release date|date)\s*:?\s*)?\(?(?:{_DATE})\)?\s*$", re.I)
_PY_DEF = re.compile(r"^(\s*)(?:async\s+def|def|class)\s+\w+")
_JS_DEF = re.compile(r"^(\s*)(?:export\s+)?(?:default\s+)?(?:(?:async\s+)?function\s*\*?\s*\w+\s*\("
                     r"|(?:abstract\s+)?class\s+\w+"
                     r"|(?:const|let|var)\s+\w+\s*=\s*(?:async\s+)?(?:function\b|\([^)]*\)\s*=>|\w+\s*=>))")
_INI = re.compile(r"^\s*\[\[?[^\]\n]+\]\]?\s*(?:[#;].*)?$")


@dataclass(frozen=True)
class Section:
    """Lines `start`..`end` (1-based, inclusive) under one heading; `header` are the line numbers
    that name it (heading, date line, trailer); `parent` is the enclosing section's index."""

    start: int
    end: int
    level: int
    header: tuple[int, ...]
    parent: int | None = None


@dataclass(frozen=True)
class _Heading:
    line: int
    style: str  # headings of one style share a level
    extra: tuple[int, ...] = ()  # more header lines (a date line just below)


def _suffix(label: str) -> str:
    return "." + label.rsplit(".", 1)[-1].lower() if "." in label.rsplit("/", 1)[-1] else ""


def find_sections(label: str, lines: Sequence[str]) -> list[Section]:
    """The sections of a file named `label` (its suffix picks the detector), in file order."""
    suffix = _suffix(label)
    if suffix in TABLES:
        return [Section(1, len(lines), 0, (1,))] if lines else []
    if suffix in PYTHON:
        return _by_indent(lines, _PY_DEF)
    if suffix in JAVASCRIPT:
        return _by_indent(lines, _JS_DEF)
    if suffix in INI:
        return _nest(lines, [_Heading(n, "ini") for n, text in enumerate(lines, 1) if _INI.match(text)], {})
    headings = _markdown(lines) if suffix in MARKDOWN else _underlined(lines)
    headings = _with_changelog_entries(lines, headings)
    if not headings and suffix not in MARKDOWN:
        headings = _plain(lines)
    headings = [_with_date_line(lines, h) for h in headings]
    return _nest(lines, headings, _trailers(lines))


_LIST_ITEM = re.compile(r"^(\s*)(?:[-*+\u2022]|\d{1,3}[.)])\s+\S")


def is_prose(label: str) -> bool:
    """Documents (Markdown, reStructuredText, text, changelogs), not code, tables or config."""
    return _suffix(label) not in PYTHON | JAVASCRIPT | INI | TABLES


def list_items(lines: Sequence[str], sections: Sequence[Section], index: int) -> int:
    """Top-level list items (``- x``, ``* x``, ``1. x``) in section `index`'s own text, its
    subsections left out: what a reader counts for "how many changes does 2.4.0 list"."""
    section = sections[index]
    end = min((s.start - 1 for s in sections if s.parent == index), default=section.end)
    indents = [len(m.group(1).expandtabs()) for n in range(section.start, end + 1)
               if n not in section.header and (m := _LIST_ITEM.match(lines[n - 1]))]
    return indents.count(min(indents)) if indents else 0


def is_rule(text: str) -> bool:
    """An underline or a horizontal rule: punctuation repeated, no words."""
    return bool(_UNDERLINE.match(text.strip()))


def enclosing(sections: Sequence[Section], line: int) -> list[int]:
    """Indexes of the sections that contain `line`, outermost first."""
    inner = None
    for index, section in enumerate(sections):
        if section.start <= line <= section.end:
            inner = index  # later starts are deeper: the last match is the innermost
    return ancestry(sections, inner)[::-1]


def innermost(sections: Sequence[Section], total: int) -> list[int | None]:
    """For each line 1..`total` (index 0 unused), the index of the innermost section holding it."""
    owner: list[int | None] = [None] * (total + 1)
    for index, section in enumerate(sections):  # file order: a subsection overwrites its parent
        for n in range(section.start, min(section.end, total) + 1):
            owner[n] = index
    return owner


def ancestry(sections: Sequence[Section], index: int | None) -> list[int]:
    """Section `index` and every section around it, innermost first (none for None)."""
    chain: list[int] = []
    while index is not None:
        chain.append(index)
        index = sections[index].parent
    return chain


def heading_text(sections: Sequence[Section], lines: Sequence[str], index: int) -> str:
    """The header lines of section `index` and of every section around it, one per line."""
    return "\n".join(lines[n - 1] for i in reversed(ancestry(sections, index)) for n in sections[i].header)


def _markdown(lines: Sequence[str]) -> list[_Heading]:
    headings: list[_Heading] = []
    fenced = False
    for n, text in enumerate(lines, 1):
        if _FENCE.match(text):
            fenced = not fenced
            continue
        if fenced:
            continue
        atx = _ATX.match(text)
        if atx:
            headings.append(_Heading(n, "#" * len(atx.group(1))))
        elif n < len(lines) and _is_title(text) and re.fullmatch(r" {0,3}(=+|-+)\s*", lines[n]) \
                and not text.lstrip().startswith(("-", "*", "+", ">")):
            headings.append(_Heading(n, "#" if lines[n].strip()[0] == "=" else "##"))
    return headings


def _underlined(lines: Sequence[str]) -> list[_Heading]:
    """reStructuredText-style titles: a text line with an underline at least about as long."""
    headings: list[_Heading] = []
    for n, text in enumerate(lines, 1):
        if n >= len(lines) or not _is_title(text) or text[:1].isspace():
            continue
        under = _UNDERLINE.match(lines[n])
        if not under or len(lines[n].rstrip()) < min(len(text.rstrip()), 3):
            continue
        over = n >= 2 and lines[n - 2].strip() == lines[n].strip()
        headings.append(_Heading(n, ("over" if over else "") + under.group(1)))
    return headings


def _with_changelog_entries(lines: Sequence[str], headings: list[_Heading]) -> list[_Heading]:
    """Changelog entries are one level whatever their markup; bare entry lines join that level."""
    by_line = {h.line: h for h in headings}
    entry_style = next((h.style for h in headings if _is_entry(lines[h.line - 1])), None)
    for n, text in enumerate(lines, 1):
        if n in by_line or not _is_entry(text):
            continue
        if (n >= 2 and lines[n - 2].strip()) and not _DEBIAN_ENTRY.match(text):
            continue  # an entry line starts a paragraph; mid-paragraph it is prose that quotes a version
        by_line[n] = _Heading(n, entry_style or "entry")
    return sorted(by_line.values(), key=lambda h: h.line)


def _is_entry(text: str) -> bool:
    return bool(_DEBIAN_ENTRY.match(text)) or (len(text) <= MAX_TITLE_CHARS and not text[:1].isspace()
                                               and bool(_CHANGELOG_ENTRY.match(text.strip())))


def _plain(lines: Sequence[str]) -> list[_Heading]:
    """Fallback: a short line that stands alone (blank or nothing before, blank after)."""
    headings = []
    for n, text in enumerate(lines, 1):
        if (_is_title(text) and not text[:1].isspace() and not text.rstrip().endswith((".", ",", ";"))
                and (n == 1 or not lines[n - 2].strip()) and n < len(lines) and not lines[n].strip()):
            headings.append(_Heading(n, "plain"))
    return headings


def _is_title(text: str) -> bool:
    stripped = text.strip()
    return bool(stripped) and len(stripped) <= MAX_TITLE_CHARS and not _UNDERLINE.match(stripped)


def _with_date_line(lines: Sequence[str], heading: _Heading) -> _Heading:
    """`Released 2025-09-15` just under a heading (past its underline and a blank line) names it too."""
    n = heading.line + 1
    if n <= len(lines) and _UNDERLINE.match(lines[n - 1].strip() or "x"):
        n += 1
    while n <= len(lines) and not lines[n - 1].strip() and n <= heading.line + 3:
        n += 1
    if n <= len(lines) and _DATE_LINE.match(lines[n - 1]):
        return _Heading(heading.line, heading.style, (n,))
    return heading


def _trailers(lines: Sequence[str]) -> list[int]:
    return [n for n, text in enumerate(lines, 1) if _DEBIAN_TRAILER.match(text) or _SIGNED_OFF.match(text)]


def _nest(lines: Sequence[str], headings: list[_Heading], trailers: list[int] | dict) -> list[Section]:
    """Sections from headings: levels by first use of each style; a section runs until the next
    heading of the same or a higher level; trailers join the innermost section they close."""
    levels: dict[str, int] = {}
    for heading in headings:
        levels.setdefault(heading.style, _style_level(heading.style, len(levels)))
    sections: list[Section] = []
    stack: list[int] = []
    for i, heading in enumerate(headings):
        level = levels[heading.style]
        while stack and sections[stack[-1]].level >= level:
            stack.pop()
        end = next((h.line - 1 for h in headings[i + 1:] if levels[h.style] <= level), len(lines))
        while end > heading.line and not lines[end - 1].strip():
            end -= 1
        sections.append(Section(heading.line, end, level, (heading.line, *heading.extra),
                                stack[-1] if stack else None))
        stack.append(len(sections) - 1)
    for line in trailers or ():
        chain = enclosing(sections, line)
        if chain:
            inner = chain[-1]
            # A Debian entry ends at its trailer: the blank lines after it belong to nothing.
            section = sections[inner]
            sections[inner] = Section(section.start, section.end, section.level, (*section.header, line),
                                      section.parent)
    return sections


def _style_level(style: str, order: int) -> int:
    # Markdown levels are fixed by the number of #; other styles rank by first use (as docutils does).
    return len(style) - 1 if style and set(style) == {"#"} else order


def _by_indent(lines: Sequence[str], pattern: re.Pattern[str]) -> list[Section]:
    """Code: a definition's section runs until the next line indented as deep or less (blank lines
    and comments aside); nesting follows indentation."""
    sections: list[Section] = []
    stack: list[int] = []
    for n, text in enumerate(lines, 1):
        match = pattern.match(text)
        if not match:
            continue
        indent = len(match.group(1).expandtabs())
        end = len(lines)
        for m in range(n + 1, len(lines) + 1):
            body = lines[m - 1]
            if body.strip() and not body.lstrip().startswith(("#", "//", ")", "]", "}")) \
                    and len(body) - len(body.lstrip()) <= indent and not body.lstrip().startswith("@"):
                end = m - 1
                break
            if body.strip() in ("}", "};", "});") and len(body) - len(body.lstrip()) == indent:
                end = m  # a JavaScript body's closing brace belongs to it
                break
        while end > n and not lines[end - 1].strip():
            end -= 1
        while stack and sections[stack[-1]].level >= indent:
            stack.pop()
        sections.append(Section(n, end, indent, (n,), stack[-1] if stack else None))
        stack.append(len(sections) - 1)
    return sections
