"""clean_markdown: tidy a Markdown file, previewing the changes as a unified diff unless asked to write.

A writing tool: register it with `Tool.from_function(clean_markdown, writes=True)`. Without `output`
nothing is written; with `output` the result goes there, under the same rules as clean_csv (inside
the root; a new file, or the input itself named explicitly).

Operations run in a fixed order: frontmatter, headings, duplicates, whitespace. Code fences are
never rewritten: tabs, blank lines, `#` comments and repeated lines inside them are code.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from tongyi_agent.tools.base import SourceRef, ToolContext, ToolResult
from tongyi_agent.tools.clean_csv import parse_operations, read_source, resolve_output

OPERATIONS = ("frontmatter", "headings", "duplicates", "whitespace")
MAX_BYTES = 5_000_000
MAX_DIFF_LINES = 200
MAX_DIFF_CHARS = 12_000
# Repeated short blocks ("---", "Example:", a one-word line) are usually structure, not copy-paste accidents.
MIN_DUPLICATE_CHARS = 20
TAB_WIDTH = 4

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^(#{1,6})(?:[ \t]+|$)")
_ATX_NO_SPACE = re.compile(r"^(#{1,6})([^#\s].*)$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_BLOCK_START = re.compile(r"^ {0,3}([-*+]\s|\d+[.)]\s|>|#|\||<)")
_THEMATIC_BREAK = re.compile(r"^ {0,3}([-*_])( *\1){2,} *$")


@dataclass
class Doc:
    lines: list[str]
    notes: list[str] = field(default_factory=list)


def _fenced(lines: list[str]) -> list[bool]:
    """For each line, whether it is inside (or delimits) a fenced code block."""
    inside: list[bool] = []
    fence: str | None = None
    for line in lines:
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
            inside.append(True)
        elif fence is not None:
            inside.append(True)
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) \
                    and not line.strip()[len(match.group(1)):].strip():
                fence = None
        else:
            inside.append(False)
    return inside


def _frontmatter_end(lines: list[str]) -> int | None:
    """Index of the closing `---`/`...` of a leading front matter block, or None."""
    if not lines or lines[0].strip() != "---":
        return None
    for index in range(1, len(lines)):
        if lines[index].strip() in ("---", "..."):
            return index
    return None


def _frontmatter(doc: Doc) -> str:
    end = _frontmatter_end(doc.lines)
    if end is None:
        return "frontmatter: none found"
    # Top-level `key: value` lines are enough to report; nested YAML is kept out of the report, not parsed.
    keys = [m.group(1) for line in doc.lines[1:end] if (m := re.match(r"^([A-Za-z0-9_][\w.-]*)\s*:", line))]
    doc.lines = doc.lines[end + 1:]
    while doc.lines and not doc.lines[0].strip():
        doc.lines.pop(0)
    return f"frontmatter: removed ({len(keys)} key(s): {', '.join(keys) or 'none'})"


def _headings(doc: Doc) -> str:
    lines = doc.lines
    skip_until = _frontmatter_end(lines)
    fenced = _fenced(lines)
    out: list[str] = []
    setext = spaced = 0
    index = 0
    while index < len(lines):
        line = lines[index]
        if (skip_until is not None and index <= skip_until) or fenced[index]:
            out.append(line)
            index += 1
            continue
        following = lines[index + 1] if index + 1 < len(lines) else ""
        underline = _SETEXT.match(following) if index + 1 < len(lines) and not fenced[index + 1] else None
        # A Setext heading is a single paragraph line directly over === or ---; `---` after a blank line
        # or after a list item is a thematic break or list content, and stays as it is.
        if (underline and line.strip() and not _BLOCK_START.match(line) and not line.startswith("    ")
                and (not out or not out[-1].strip() or index - 1 == skip_until)):
            level = "#" if underline.group(1)[0] == "=" else "##"
            out.append(f"{level} {line.strip()}")
            setext += 1
            index += 2
            continue
        if match := _ATX_NO_SPACE.match(line):
            line = f"{match.group(1)} {match.group(2)}"
            spaced += 1
        out.append(line)
        index += 1
    doc.lines = out

    skipped: list[str] = []
    previous = 0
    fenced = _fenced(out)
    for number, line in enumerate(out, start=1):
        if fenced[number - 1] or (skip_until is not None and number - 1 <= skip_until):
            continue
        if match := _ATX.match(line):
            level = len(match.group(1))
            if previous and level > previous + 1:
                skipped.append(f"line {number} (h{previous} -> h{level})")
            previous = level
    report = f"headings: {setext} Setext heading(s) converted to #, {spaced} heading(s) given a space after #"
    if skipped:
        report += f"; skipped levels (not changed): {', '.join(skipped)}"
    return report


def _blocks(lines: list[str]) -> list[tuple[list[str], bool]]:
    """Blank-line separated blocks; a fenced code block (with its blank lines) is one block, flagged True."""
    fenced = _fenced(lines)
    blocks: list[tuple[list[str], bool]] = []
    current: list[str] = []
    current_fenced = False
    for line, in_fence in zip(lines, fenced, strict=True):
        if in_fence != current_fenced or (not in_fence and not line.strip()):
            if current:
                blocks.append((current, current_fenced))
            current, current_fenced = [], in_fence
            if not in_fence and not line.strip():
                blocks.append(([line], False))
                continue
        current.append(line)
    if current:
        blocks.append((current, current_fenced))
    return blocks


def _duplicates(doc: Doc) -> str:
    seen: set[str] = set()
    kept: list[str] = []
    removed = 0
    for block, is_code in _blocks(doc.lines):
        key = "\n".join(line.rstrip() for line in block).strip()
        removable = (not is_code and len(key) >= MIN_DUPLICATE_CHARS and not _ATX.match(key)
                     and not _THEMATIC_BREAK.match(key))
        if removable and key in seen:
            removed += 1
            # Drop the blank line that separated the removed block too, so no gap is left behind.
            if kept and not kept[-1].strip():
                kept.pop()
            continue
        if removable:
            seen.add(key)
        kept.extend(block)
    doc.lines = kept
    return f"duplicates: {removed} repeated block(s) removed"


def _whitespace(doc: Doc) -> str:
    fenced = _fenced(doc.lines)
    out: list[str] = []
    trailing = tabs = blank_runs = 0
    blank_run = 0
    for index, (line, in_fence) in enumerate(zip(doc.lines, fenced, strict=True)):
        if in_fence:
            out.append(line)
            blank_run = 0
            continue
        new = line
        if "\t" in new:
            new = new.expandtabs(TAB_WIDTH)
            tabs += 1
        stripped = new.rstrip()
        # Two or more trailing spaces inside a paragraph are a Markdown hard line break: keep exactly two.
        # On a heading or a paragraph's last line they do nothing and go.
        following = doc.lines[index + 1] if index + 1 < len(doc.lines) else ""
        hard_break = (bool(stripped) and new.endswith("  ") and bool(following.strip())
                      and not _ATX.match(stripped) and not fenced[index + 1])
        new = stripped + ("  " if hard_break else "")
        if new != line.expandtabs(TAB_WIDTH):
            trailing += 1
        if not new:
            blank_run += 1
            if blank_run > 1:  # more than one blank line in a row renders the same as one
                blank_runs += 1
                continue
        else:
            blank_run = 0
        out.append(new)
    while out and not out[0].strip():
        out.pop(0)
    while out and not out[-1].strip():
        out.pop()
    doc.lines = out
    return (f"whitespace: {trailing} line(s) with trailing spaces trimmed, {tabs} line(s) with tabs expanded, "
            f"{blank_runs} extra blank line(s) removed")


_OPS: dict[str, Callable[[Doc], str]] = {"frontmatter": _frontmatter, "headings": _headings,
                                         "duplicates": _duplicates, "whitespace": _whitespace}


def clean_markdown(ctx: ToolContext, path: str, operations: str = "whitespace,duplicates",
                   output: str | None = None) -> ToolResult:
    """Clean a Markdown file: shows the changes as a diff; writes only when output is given.

    Operations: frontmatter (remove the leading YAML block, reporting its keys), duplicates (remove
    repeated paragraphs), whitespace (trailing spaces, extra blank lines, tabs, final newline),
    headings (underlined headings to #, a space after #, report skipped levels).

    Args:
        path: Markdown file relative to the project root
        operations: comma-separated operation names, e.g. "whitespace,headings"
        output: file to write the cleaned Markdown to (inside the project); omit to only preview
    """
    ops = parse_operations(operations, OPERATIONS)
    label, raw = read_source(ctx, path, MAX_BYTES, "Markdown")
    text = raw.decode("utf-8", errors="replace")
    newline = "\r\n" if "\r\n" in text else "\n"
    original = text.replace("\r\n", "\n").split("\n")
    if original and original[-1] == "":
        original.pop()
    doc = Doc(lines=list(original))
    summary = [f"file: {label} ({len(original)} lines)", *(_OPS[op](doc) for op in ops)]
    # Every cleaned file ends with exactly one newline; whitespace already dropped trailing blank lines.
    new_text = "\n".join(doc.lines) + ("\n" if doc.lines else "")
    old_text = text.replace("\r\n", "\n")
    if new_text == old_text:
        summary.append("no changes")
    sources = [SourceRef(path=label)]
    if output is not None:
        out_label, target = resolve_output(ctx, path, output)
        target.parent.mkdir(parents=True, exist_ok=True)
        ctx.check_cancelled()  # abandoned at its deadline while cleaning: write nothing
        target.write_text(new_text.replace("\n", newline), encoding="utf-8", newline="")
        summary.append(f"wrote {len(doc.lines)} lines to {out_label}")
        sources.append(SourceRef(path=out_label))
    elif new_text != old_text:
        summary.append("preview only: nothing written; pass output=<file> to save")
    parts = ["\n".join(summary)]
    if new_text != old_text:
        parts.append(_diff(old_text, new_text, label))
    return ToolResult(output="\n\n".join(parts), sources=sources)


def _diff(old: str, new: str, label: str) -> str:
    diff = list(difflib.unified_diff(old.splitlines(), new.splitlines(), f"a/{label}", f"b/{label}", lineterm=""))
    if not old.endswith("\n") and new.endswith("\n"):
        diff.append("(a final newline is added)")
    shown: list[str] = []
    used = 0
    for line in diff:
        if len(shown) >= MAX_DIFF_LINES or used + len(line) + 1 > MAX_DIFF_CHARS:
            shown.append(f"[diff cut: {len(diff) - len(shown)} more line(s)]")
            break
        shown.append(line)
        used += len(line) + 1
    return "\n".join(shown)
