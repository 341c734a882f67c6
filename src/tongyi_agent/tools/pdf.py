"""PDF tools: pdf_text, pdf_search and pdf_info, over files in the project or downloads in the cache.

A PDF is named either by a path under the project root or by a cache handle such as
`cache:papers/<sha>.pdf` or `cache:web/<sha>.pdf` (what fetch_paper and web_fetch hand out). Handles
resolve under `ctx.cache_dir` and, like project paths, may never leave it.

Citations point into pages: each source is `SourceRef(path="<label>#page=N", line=<line within the
page>, text=<line>)`, so `paper.pdf#page=3:12` means line 12 of page 3's extracted text.

Text read through a cache handle came from the web, so those results are marked untrusted like
web_fetch's (see tongyi_agent.tools.web.mark_untrusted); PDFs in the project are the user's own files.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tongyi_agent.tools.base import SourceRef, ToolContext, ToolError, ToolResult
from tongyi_agent.tools.paths import checked_range, is_regular_file, relative_label, resolve_in_root
from tongyi_agent.tools.web import mark_untrusted

CACHE_PREFIX = "cache:"
# Only the download folders are addressable; the cache also holds things a model has no business reading.
CACHE_AREAS = ("papers", "web")
MAX_CHARS = 16_000
MAX_LINE_CHARS = 2_000
MAX_MATCHES = 50

if TYPE_CHECKING:
    from pypdf import PdfReader

# pypdf warns through `logging` about every small defect of real-world PDFs; those are not ours to report.
# pypdf itself is imported when a PDF is opened: it takes longer to import than the CLI takes to start.
logging.getLogger("pypdf").setLevel(logging.ERROR)


@dataclass(frozen=True)
class PdfFile:
    """A resolved PDF and the label citations use for it."""

    path: Path
    label: str

    @property
    def downloaded(self) -> bool:
        """Cached downloads came from the web: their text is untrusted data."""
        return self.label.startswith(CACHE_PREFIX)


def _result(pdf: PdfFile, output: str, sources: list[SourceRef]) -> ToolResult:
    if pdf.downloaded:
        return mark_untrusted(output, sources)
    return ToolResult(output=output, sources=sources)


def resolve_pdf(ctx: ToolContext, path: str) -> PdfFile:
    """Resolve a project path or a `cache:<area>/<name>` handle; refuse anything outside root or cache."""
    raw = path.strip()
    if raw.startswith(CACHE_PREFIX):
        file = _resolve_cache_handle(ctx, raw)
        label = raw
    else:
        file = resolve_in_root(ctx.root, raw)
        label = relative_label(ctx.root, file)
    if not file.exists():
        raise ToolError(f"no such file: {path!r}; use list_files or search_files to find the right path")
    if file.is_dir():
        raise ToolError(f"{path!r} is a folder, not a PDF file")
    if not is_regular_file(file):  # a FIFO would block the read forever
        raise ToolError(f"{path!r} is not a regular file (a FIFO, device or socket) and is not read")
    return PdfFile(path=file, label=label)


def _resolve_cache_handle(ctx: ToolContext, handle: str) -> Path:
    if ctx.cache_dir is None:
        raise ToolError(f"{handle!r} names a cached download, but no cache folder is configured")
    rest = handle[len(CACHE_PREFIX):]
    area, _, name = rest.partition("/")
    if area not in CACHE_AREAS or not name:
        raise ToolError(f"{handle!r} is not a cache handle; expected cache:<area>/<file> with area "
                        f"one of {', '.join(CACHE_AREAS)}")
    base = (ctx.cache_dir / area).resolve()
    try:
        file = (base / name).resolve()
    except (OSError, ValueError, RuntimeError) as exc:
        raise ToolError(f"cache handle {handle!r} cannot be used: {exc}") from exc
    # `..` or a symlink in the name must not reach other cache areas or the rest of the disk.
    if not file.is_relative_to(base):
        raise ToolError(f"cache handle {handle!r} points outside the cache")
    return file


def _pdf_errors() -> tuple[type[Exception], ...]:
    """What reading a PDF may raise: pypdf reports malformed files through many exception types."""
    from pypdf.errors import PyPdfError

    return (PyPdfError, ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError)


def _load(pdf: PdfFile) -> tuple[PdfReader, bool]:
    """Open a PDF; returns the reader and whether it is locked by a password we do not have."""
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError

    with pdf.path.open("rb") as handle:
        head = handle.read(1024)
    if b"%PDF-" not in head:
        raise ToolError(f"{pdf.label} is not a PDF file (no %PDF header)")
    try:
        # PdfReader tries the empty user password itself, so files merely "protected" against editing open.
        reader = PdfReader(pdf.path)
        len(reader.pages)  # forces the page tree to load, so a broken one fails here with a clear message
    except FileNotDecryptedError:
        return reader, True
    except _pdf_errors() as exc:
        # pypdf reports malformed files through many exception types, not only PdfReadError.
        raise ToolError(f"{pdf.label} is damaged or not a valid PDF: {exc}") from exc
    return reader, False


def open_pdf(pdf: PdfFile) -> PdfReader:
    """Open a PDF for reading text; encrypted or unreadable files become a ToolError the model can act on."""
    reader, locked = _load(pdf)
    if locked:
        raise ToolError(f"{pdf.label} is encrypted with a password; its text cannot be read")
    return reader


def page_lines(reader: PdfReader, number: int) -> list[str]:
    """Extracted text lines of page `number` (1-based); a page that fails to extract yields a note line."""
    try:
        text = reader.pages[number - 1].extract_text() or ""
    except _pdf_errors() as exc:
        return [f"[text of page {number} could not be extracted: {exc}]"]
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return [line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + " [... line cut]" for line in lines]


def pdf_text(ctx: ToolContext, path: str, start_page: int = 1, end_page: int | None = None) -> ToolResult:
    """Read the text of a PDF, page by page, each page under a "--- page N ---" header.

    Args:
        path: PDF path relative to the project root, or a cache handle such as cache:papers/<sha>.pdf
        start_page: first page to read (1-based)
        end_page: last page to read (inclusive); omit to read to the end
    """
    pdf = resolve_pdf(ctx, path)
    reader = open_pdf(pdf)
    total = len(reader.pages)
    if total == 0:
        return _result(pdf, f"{pdf.label} has no pages", [SourceRef(path=pdf.label)])
    start_page, last = checked_range(start_page, end_page, total, pdf.label, "page")

    out: list[str] = []
    sources: list[SourceRef] = []
    chars = 0
    shown_last = start_page - 1
    cut_page = False
    for number in range(start_page, last + 1):
        lines = page_lines(reader, number)
        block = [f"--- page {number} ---", *(lines or ["[no extractable text on this page; it may be a scan]"])]
        size = sum(len(line) + 1 for line in block)
        if out and chars + size > MAX_CHARS:
            break
        if not out and size > MAX_CHARS:
            # A single huge page: show its start rather than nothing, so paging still makes progress.
            block, cut_page = _cut(block, MAX_CHARS), True
        out.extend(block)
        page_ref = f"{pdf.label}#page={number}"
        shown = lines[:len(block) - 1]  # block = header + the page's lines, possibly cut
        sources.extend(SourceRef(path=page_ref, line=i, text=line)
                       for i, line in enumerate(shown, start=1) if line.strip())
        chars += size
        shown_last = number
        if cut_page:
            break
    if cut_page:
        out.append(f"[truncated: page {shown_last} is longer than {MAX_CHARS} characters and was cut; "
                   f"use pdf_search to find passages in it]")
    if shown_last < last:
        out.append(f"[truncated: showing pages {start_page}-{shown_last} of {total}; "
                   f"call pdf_text with start_page={shown_last + 1} to continue]")
    elif not cut_page and (start_page > 1 or last < total):
        out.append(f"[showing pages {start_page}-{last} of {total}]")
    return _result(pdf, "\n".join(out), sources)


def _cut(block: list[str], limit: int) -> list[str]:
    kept: list[str] = []
    used = 0
    for line in block:
        if used + len(line) + 1 > limit:
            break
        kept.append(line)
        used += len(line) + 1
    return kept


def _query_words(query: str) -> list[str]:
    words = [w for w in re.findall(r"\w+", query.lower()) if len(w) > 1]
    if not words:
        raise ToolError("query must contain at least one word of two or more letters")
    return list(dict.fromkeys(words))


def _iter_lines(reader: PdfReader) -> Iterator[tuple[int, int, str]]:
    for number in range(1, len(reader.pages) + 1):
        for index, line in enumerate(page_lines(reader, number), start=1):
            yield number, index, line


def pdf_search(ctx: ToolContext, path: str, query: str) -> ToolResult:
    """Find the lines of a PDF that contain any word of the query, with their page numbers.

    Args:
        path: PDF path relative to the project root, or a cache handle such as cache:papers/<sha>.pdf
        query: words to look for (case-insensitive; a line matches if it contains any of them)
    """
    pdf = resolve_pdf(ctx, path)
    reader = open_pdf(pdf)
    words = _query_words(query)
    pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)
    out: list[str] = []
    sources: list[SourceRef] = []
    more = 0
    for page, line_no, line in _iter_lines(reader):
        if not pattern.search(line):
            continue
        if len(out) >= MAX_MATCHES:
            more += 1
            continue
        out.append(f"page {page}, line {line_no}: {line}")
        sources.append(SourceRef(path=f"{pdf.label}#page={page}", line=line_no, text=line))
    if not out:
        return _result(pdf, f"no lines in {pdf.label} contain any of: {', '.join(words)}", [])
    header = f"{len(out) + more} matching line(s) in {pdf.label} ({len(reader.pages)} pages):"
    if more:
        out.append(f"[{more} more match(es) not shown; use a more specific query or read pages with pdf_text]")
    return _result(pdf, "\n".join([header, *out]), sources)


def pdf_info(ctx: ToolContext, path: str) -> ToolResult:
    """Show a PDF's page count, title and author, and whether it is encrypted.

    Args:
        path: PDF path relative to the project root, or a cache handle such as cache:papers/<sha>.pdf
    """
    pdf = resolve_pdf(ctx, path)
    reader, locked = _load(pdf)
    lines = [f"file: {pdf.label}", f"size: {pdf.path.stat().st_size} bytes"]
    if locked:
        lines.append("encrypted: yes, with a password; pages and text cannot be read")
        return _result(pdf, "\n".join(lines), [SourceRef(path=pdf.label)])
    lines.append(f"encrypted: {'yes (opens without a password)' if reader.is_encrypted else 'no'}")
    lines.append(f"pages: {len(reader.pages)}")
    try:
        meta = reader.metadata
    except _pdf_errors() as exc:
        lines.append(f"metadata: unreadable ({exc})")
        meta = None
    if meta is not None:
        for key, value in (("title", meta.title), ("author", meta.author), ("subject", meta.subject),
                           ("producer", meta.producer)):
            if value:
                lines.append(f"{key}: {str(value).strip()}")
    return _result(pdf, "\n".join(lines), [SourceRef(path=pdf.label)])
