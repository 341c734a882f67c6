"""Real, small PDFs for tests, written by hand.

pypdf reads PDFs well but cannot lay out text, and reportlab is not a dependency. A text-only PDF is
small enough to write directly: one Helvetica font, one content stream per page, and an xref table
whose byte offsets are computed as the objects are written (a wrong offset is what makes readers
fall back to "repairing" the file, so the tests would not exercise the normal path).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def _pdf_string(text: str) -> bytes:
    """A PDF literal string; backslashes and parentheses must be escaped inside `( )`."""
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return b"(" + escaped.encode("latin-1", errors="replace") + b")"


def _content_stream(lines: Sequence[str]) -> bytes:
    # `T*` moves to the next line by the leading `TL`, so each string lands on its own text line
    # and pypdf's extractor returns one line per entry.
    ops = [b"BT", b"/F1 12 Tf", b"14 TL", b"72 720 Td"]
    for index, line in enumerate(lines):
        if index:
            ops.append(b"T*")
        ops.append(_pdf_string(line) + b" Tj")
    ops.append(b"ET")
    return b"\n".join(ops)


def make_pdf(pages: Sequence[Sequence[str]], *, title: str | None = None, author: str | None = None) -> bytes:
    """Bytes of a valid PDF with one page per entry of `pages`, each a list of text lines."""
    # Object numbers: 1 catalog, 2 page tree, 3 font, then (page, content) pairs, then the info dict.
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + b" ".join(f"{p} 0 R".encode() for p in page_ids)
        + f"] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for page_id, lines in zip(page_ids, pages, strict=True):
        stream = _content_stream(lines)
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
                       f"/Contents {page_id + 1} 0 R >>".encode())
        objects.append(f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream")
    info_entries = []
    if title is not None:
        info_entries.append(b"/Title " + _pdf_string(title))
    if author is not None:
        info_entries.append(b"/Author " + _pdf_string(author))
    info_id = len(objects) + 1
    objects.append(b"<< " + b" ".join(info_entries) + b" >>")

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref_at = len(out)
    out += f"xref\n0 {len(objects) + 1}\n".encode()
    out += b"0000000000 65535 f \n"  # each xref entry is exactly 20 bytes, trailing space included
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info {info_id} 0 R >>\n"
            f"startxref\n{xref_at}\n%%EOF\n").encode()
    return bytes(out)


def write_pdf(path: Path, pages: Sequence[Sequence[str]], *, title: str | None = None,
              author: str | None = None) -> Path:
    """Write `make_pdf(...)` to `path` (parents created) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(make_pdf(pages, title=title, author=author))
    return path


def write_encrypted_pdf(path: Path, pages: Sequence[Sequence[str]], password: str = "secret") -> Path:
    """A copy of `make_pdf(pages)` locked with a user password (RC4, which pypdf handles without extras)."""
    from io import BytesIO

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(BytesIO(make_pdf(pages))))
    writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="RC4-128")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        writer.write(handle)
    return path
