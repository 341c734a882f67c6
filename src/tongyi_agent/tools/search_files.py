"""search_files: find the lines that mention a query, best matches first, shown in their sections."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tongyi_agent.tools.base import ToolContext, ToolError, ToolResult
from tongyi_agent.tools.paths import read_lines, relative_label, start_or_root
from tongyi_agent.tools.search_index import IndexUnavailable, search_candidates
from tongyi_agent.tools.search_results import GROUP_SEPARATOR, Hit, render_hits
from tongyi_agent.tools.sections import find_sections, heading_text, innermost
from tongyi_agent.tools.walk import iter_files

MAX_HITS = 10
MAX_FILE_BYTES = 2_000_000  # larger files are data dumps, not prose or code worth scanning
MAX_SHOWN_CHARS = 300  # a longer line is cut when shown
# With an index: the files whose lines are scored, best BM25 first. Well above what MAX_HITS shows.
CANDIDATE_FILES = 50
# Below this many bytes of text under the searched folder a scan is as fast as the index
# (benchmarks/latency.py measures both), and the exact substring matching of the scan is kept.
SCAN_BELOW_BYTES = 1_000_000
_LINK_TARGET = re.compile(r"\]\([^)\s]*\)")  # the `(url)` of a Markdown link `[text](url)`
REGEX_KEY = "\0regex"  # stands for the pattern among a hit's matched words
REGEX_WEIGHT = 100.0
REGEX_CHARS = re.compile(r"[\\.^$*+?{}\[\]|()]")
# A pattern like (a+)+$ backtracks exponentially on some lines: each line gets this long (the `regex`
# package's timeout, matching without the GIL so Ctrl-C still works), and a pattern that runs out of
# time on this many lines is dropped for the rest of the search.
LINE_REGEX_SECONDS = 0.05
MAX_SLOW_LINES = 10
STOP_WORDS = frozenset({
    "the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "had", "her", "was", "one",
    "our", "out", "has", "his", "how", "its", "may", "new", "now", "see", "who", "did", "does", "what",
    "when", "where", "which", "why", "with", "this", "that", "from", "into", "have", "been", "will",
    "would", "there", "their", "they", "them", "then", "than", "these", "those", "some", "such",
    "about", "also", "only", "other", "over", "very", "just",
})

if TYPE_CHECKING:
    import regex as timed_regex


@dataclass
class _Query:
    words: tuple[str, ...]
    regex: timed_regex.Pattern[str] | None
    slow_lines: int = field(default=0)

    @classmethod
    def parse(cls, query: str) -> _Query:
        regex = None
        if REGEX_CHARS.search(query):
            import regex as timed_regex  # here: only a query that looks like a pattern loads it

            try:
                regex = timed_regex.compile(query, timed_regex.IGNORECASE)
            except (timed_regex.error, ValueError, OverflowError):
                regex = None  # not a valid regex: the words still work
        # A version ("3.8", "2.5.0") is one word: split at its dots it would be too short to count.
        words = [w for w in re.findall(r"\d+(?:\.\d+)+|\w+", query.lower()) if len(w) >= 3 and w not in STOP_WORDS]
        if not words and regex is None:
            # Only short or stop words ("is", "C#"): search for the literal text rather than nothing.
            words = [query.strip().lower()]
        return cls(tuple(dict.fromkeys(words)), regex)

    def indexable(self) -> bool:
        """Plain words an FTS5 index can look up; a regex or a literal like "C#" needs the scan."""
        return self.regex is None and all(re.fullmatch(r"\w{3,}", word) for word in self.words)

    def match(self, line: str) -> dict[str, float]:
        """The query words of a line, each with its weight: 1, or 0.5 for one only in a link's target
        (`[3.4.3](.../compare/3.4.2...3.4.3)` is about 3.4.3). A regex match counts as the pattern
        itself, REGEX_WEIGHT. Empty: the line does not match."""
        lowered = line.lower()
        regex = self.regex is not None and self._matches(line)
        if not regex and not any(word in lowered for word in self.words):
            return {}
        visible = _LINK_TARGET.sub("]", lowered)
        found = {word: 1.0 if word in visible else 0.5 for word in self.words if word in lowered}
        if regex:
            found[REGEX_KEY] = REGEX_WEIGHT  # a deliberate pattern outranks any mix of loose words
        return found

    def in_headings(self, headings: str) -> dict[str, float]:
        """The query words in the headings a line sits under, weight 1 each: a hit under "2.5.0 >
        Bugfixes" matches "bugfixes 2.5.0" twice. They only rank lines that match by themselves."""
        visible = _LINK_TARGET.sub("]", headings.lower())
        return {word: 1.0 for word in self.words if word in visible}

    def _matches(self, line: str) -> bool:
        try:
            return self.regex is not None and self.regex.search(line, timeout=LINE_REGEX_SECONDS,
                                                                concurrent=True) is not None
        except TimeoutError:
            self.slow_lines += 1
            if self.slow_lines >= MAX_SLOW_LINES:
                self.regex = None
            return False

    def slow_note(self) -> str:
        if not self.slow_lines:
            return ""
        dropped = " and was dropped for the rest of the search" if self.regex is None else ""
        return (f"Note: the pattern took longer than {LINE_REGEX_SECONDS:g} s on {self.slow_lines} line(s), "
                f"which count as not matching{dropped}; simplify it (nested quantifiers like (a+)+ backtrack).\n")


@dataclass(frozen=True)
class _Hit:
    label: str
    line: int
    lines: tuple[str, ...]  # all lines of the file, for context
    words: dict[str, float]  # the query words matched, with their weights (_Query.match, in_headings)
    topic: float  # how much the file is about the query (its path and text)


def ranked(hits: list[_Hit]) -> list[_Hit]:
    """Best first. A word on few of the matching lines tells them apart, one on all of them (the
    project's name in its own changelog) hardly does, so each word weighs as in BM25's idf: 1 for a
    word on every matching line, more for a rarer one."""
    if not hits:
        return []
    lines_with = Counter(word for hit in hits for word in hit.words)
    idf = {word: 1 + math.log(len(hits) / count) for word, count in lines_with.items()}
    idf[REGEX_KEY] = 1.0

    def score(hit: _Hit) -> float:
        return sum(weight * idf[word] for word, weight in hit.words.items()) + hit.topic

    return sorted(hits, key=lambda h: (-score(h), h.label, h.line))


def _file_hits(query: _Query, root: Path, file: Path) -> list[_Hit]:
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            return []
        lines = tuple(read_lines(file))
    except OSError:
        return []
    label = relative_label(root, file)
    matching = {n: found for n, text in enumerate(lines, start=1) if (found := query.match(text))}
    if not matching:
        return []
    # A line in a file about the question's subject (its name or text mentions the other query
    # words) outranks an equally matching line elsewhere: "search port" prefers search.md's port,
    # and a word in the file's path ("urllib3/CHANGES.rst") weighs as much as one in its text.
    whole = "\n".join(lines).lower()
    lowered_label = label.lower()
    topic = sum(0.5 * (word in whole) + 0.5 * (word in lowered_label) for word in query.words)
    sections = find_sections(label, lines)
    owner = innermost(sections, len(lines))
    headings = {index: query.in_headings(heading_text(sections, lines, index))
                for index in {owner[n] for n in matching} if index is not None}
    return [_Hit(label, n, lines, {**found, **headings.get(owner[n], {})}, topic) for n, found in matching.items()]


def gather_hits(ctx: ToolContext, query: _Query, start: Path) -> list[_Hit]:
    """Every scored line under `start`: from the index's candidate files when the tree is large and
    the query is plain words, else from a scan of every text file."""
    files = None
    if ctx.index_dir is not None and query.indexable():
        progress = ctx.on_progress
        try:
            files = search_candidates(ctx.index_dir, ctx.root, start, query.words, CANDIDATE_FILES,
                                      scan_below_bytes=SCAN_BELOW_BYTES, cancelled=ctx.cancelled,
                                      progress=(lambda done, total: progress("Indexing files", done, total))
                                      if progress else None)
        except IndexUnavailable:
            files = None  # another process is building it, or the cache is not writable: scan
    if files is None:
        files = iter_files(ctx.root, start)
    hits: list[_Hit] = []
    for file in files:
        if ctx.cancelled():
            break  # abandoned at the deadline: nobody reads the result
        hits += _file_hits(query, ctx.root, file)
    return hits


def search_files(ctx: ToolContext, query: str, path: str = ".") -> ToolResult:
    """Search text files for lines containing any of the query words (or matching a regex).

    Hits are grouped by the section they are in (a changelog entry, a heading, a function), under a
    line that names the section, with the read_file call that reads the whole section.

    Args:
        query: words to look for, or a regular expression
        path: folder or file to search, relative to the project root
    """
    if not query.strip():
        raise ToolError("query is empty; give words or a regular expression to search for")
    start, note = start_or_root(ctx.root, path, "searched")
    parsed = _Query.parse(query)
    hits = gather_hits(ctx, parsed, start)
    note += parsed.slow_note()
    if not hits:
        where = relative_label(ctx.root, start)
        # The query is not repeated: a made-up id searched for would otherwise appear in a tool result.
        return ToolResult(output=f"{note}no matches under {where!r}; try other words, "
                                 f"or call list_files to see which files exist")
    hits = ranked(hits)
    shown = hits[:MAX_HITS]
    blocks, sources = render_hits([Hit(h.label, h.line, h.lines) for h in shown], max_chars=MAX_SHOWN_CHARS)
    if len(hits) > MAX_HITS:
        blocks.append(f"... {len(hits) - MAX_HITS} more matching lines; use more specific words or a path")
    return ToolResult(output=note + GROUP_SEPARATOR.join(blocks), sources=sources)
