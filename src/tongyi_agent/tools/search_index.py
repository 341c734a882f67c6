"""A full-text index (SQLite FTS5, BM25) of a root's text files, so search_files need not read them all.

One database per root in the index folder (the user cache directory). It is built on first use and
refreshed before every query from each file's size and modification time, so a changed, new or
deleted file is never answered from stale rows. The same walker as list_files decides which files
count (.gitignore, SKIP_DIRS, binary files, links leaving the root). A database that SQLite cannot
read, or that was written for another root or schema, is deleted and rebuilt, never trusted.

The index only picks candidate files: search_files still scores their lines itself, so the ranking
(words matched per line, the topic boost, a line of context) is the scan's. A difference to know:
FTS5 matches query words at the start of a token ("port" finds "ports" and "port:8443" but not
"export"), where the scan matches them anywhere in a line.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tongyi_agent.tools.paths import BINARY_SNIFF_BYTES
from tongyi_agent.tools.walk import iter_unignored

SCHEMA_VERSION = "1"
# Files larger than this are data dumps; the scan skips them too.
MAX_FILE_BYTES = 2_000_000
# Rows are committed in batches so an interrupted build keeps what it has done.
COMMIT_EVERY = 500
# The progress callback is only called once a build has run this long: quick builds stay silent.
PROGRESS_AFTER_SECONDS = 1.0
# How long to wait for another process that is updating the same index before scanning instead.
BUSY_TIMEOUT_SECONDS = 5.0

Progress = Callable[[int, int], None]  # (files done, files to index)


class IndexUnavailable(Exception):
    """The index cannot answer now (locked by another process, unwritable folder); scan instead."""


@dataclass(frozen=True)
class FileEntry:
    label: str  # posix path relative to the root
    path: str | Path
    size: int
    mtime_ns: int
    is_link: bool


def index_path(index_dir: Path, root: Path) -> Path:
    """The database file for `root` (one per resolved root path)."""
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:20]
    return index_dir / f"{digest}.sqlite"


def fts_query(words: Iterable[str]) -> str:
    """An FTS5 MATCH expression: any of the words, each as a token prefix."""
    return " OR ".join('"' + w.replace('"', '""') + '"*' for w in words)


class SearchIndex:
    """The index of one root: `open` it, `refresh` it, then ask for `candidates`."""

    def __init__(self, db: sqlite3.Connection, root: Path, file: Path) -> None:
        self.db = db
        self.root = root
        self.file = file

    @classmethod
    def open(cls, index_dir: Path, root: Path, *, on_note: Callable[[str], None] | None = None) -> SearchIndex:
        """Open (or create) the index of `root`; an unreadable or foreign database is replaced."""
        root = root.resolve()
        file = index_path(index_dir, root)
        try:
            index_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IndexUnavailable(f"cannot create {index_dir}: {exc}") from exc
        try:
            return cls._open_checked(file, root)
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise IndexUnavailable(str(exc)) from exc
            reason = str(exc)
        except (sqlite3.DatabaseError, _Mismatch) as exc:
            reason = str(exc)
        if on_note:
            on_note(f"search index {file.name} unusable ({reason}); rebuilding it")
        _remove(file)
        try:
            return cls._open_checked(file, root)
        except sqlite3.Error as exc:
            raise IndexUnavailable(f"cannot create the search index {file}: {exc}") from exc

    @classmethod
    def _open_checked(cls, file: Path, root: Path) -> SearchIndex:
        db = sqlite3.connect(file, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            _create_or_check(db, root)
        except BaseException:
            db.close()
            raise
        return cls(db, root, file)

    def close(self) -> None:
        self.db.close()

    def refresh(self, start: Path, progress: Progress | None = None, entries: list[FileEntry] | None = None,
                cancelled: Callable[[], bool] | None = None) -> int:
        """Bring the rows for files under `start` up to date; returns how many files were (re)indexed.

        Unchanged files (same size and mtime) are not read. Rows of files that are gone, now
        ignored, or turned binary are deleted. `entries` is `walk(root, start)` when the caller
        already has it. When `cancelled()` turns true (the call was abandoned at its deadline) the
        files indexed so far are kept and IndexUnavailable is raised.
        """
        start = start.resolve()
        prefix = _label(self.root, start)
        known = {row[0]: (row[1], row[2], row[3]) for row in self.db.execute(
            "SELECT path, size, mtime_ns, id FROM files WHERE ? = '' OR path = ? OR path LIKE ? ESCAPE '\\'",
            (prefix, prefix, _like_prefix(prefix)))}
        seen: set[str] = set()
        stale: list[FileEntry] = []
        for entry in walk(self.root, start) if entries is None else entries:
            seen.add(entry.label)
            old = known.get(entry.label)
            if entry.is_link or old is None or old[0] != entry.size or old[1] != entry.mtime_ns:
                stale.append(entry)
        gone = [known[label][2] for label in known.keys() - seen]
        if not stale and not gone:
            return 0
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for file_id in gone:
                self.db.execute("DELETE FROM docs WHERE rowid = ?", (file_id,))
                self.db.execute("DELETE FROM files WHERE id = ?", (file_id,))
            started = time.monotonic()
            for done, entry in enumerate(stale, start=1):
                if cancelled is not None and cancelled():
                    self.db.execute("COMMIT")
                    raise IndexUnavailable("the search was abandoned while the index was being built")
                self._index_file(entry, known.get(entry.label))
                if done % COMMIT_EVERY == 0:
                    self.db.execute("COMMIT")
                    self.db.execute("BEGIN IMMEDIATE")
                if progress and time.monotonic() - started > PROGRESS_AFTER_SECONDS:
                    progress(done, len(stale))
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        if progress and time.monotonic() - started > PROGRESS_AFTER_SECONDS:
            progress(len(stale), len(stale))
        return len(stale)

    def _index_file(self, entry: FileEntry, old: tuple[int, int, int] | None) -> None:
        if old is not None:
            self.db.execute("DELETE FROM docs WHERE rowid = ?", (old[2],))
            self.db.execute("DELETE FROM files WHERE id = ?", (old[2],))
        text = _read_text(entry)
        cursor = self.db.execute("INSERT INTO files(path, size, mtime_ns, searchable) VALUES (?, ?, ?, ?)",
                                 (entry.label, entry.size, entry.mtime_ns, text is not None))
        if text is not None:
            self.db.execute("INSERT INTO docs(rowid, path, body) VALUES (?, ?, ?)",
                            (cursor.lastrowid, entry.label.replace("/", " "), text))

    def candidates(self, words: Iterable[str], start: Path, limit: int) -> list[Path]:
        """Up to `limit` files under `start` that contain any of `words`, best BM25 first.

        The path counts too (weighted double): a file named after the subject is a good candidate.
        """
        prefix = _label(self.root, start)
        rows = self.db.execute(
            "SELECT f.path FROM docs JOIN files f ON f.id = docs.rowid WHERE docs MATCH ? "
            "AND (? = '' OR f.path = ? OR f.path LIKE ? ESCAPE '\\') ORDER BY bm25(docs, 2.0, 1.0) LIMIT ?",
            (fts_query(words), prefix, prefix, _like_prefix(prefix), limit)).fetchall()
        return [self.root / row[0] for row in rows]

    def file_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM files WHERE searchable").fetchone()[0])


class _Mismatch(Exception):
    """The database belongs to another root or schema version."""


def _create_or_check(db: sqlite3.Connection, root: Path) -> None:
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
    if "meta" not in tables:
        db.execute("BEGIN IMMEDIATE")
        db.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("CREATE TABLE files(id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, size INTEGER NOT NULL, "
                   "mtime_ns INTEGER NOT NULL, searchable INTEGER NOT NULL)")
        db.execute("CREATE VIRTUAL TABLE docs USING fts5(path, body, tokenize='unicode61')")
        db.executemany("INSERT INTO meta VALUES (?, ?)", [("schema", SCHEMA_VERSION), ("root", str(root))])
        db.execute("COMMIT")
        return
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    if meta.get("schema") != SCHEMA_VERSION or meta.get("root") != str(root):
        raise _Mismatch(f"written for schema {meta.get('schema')!r} and root {meta.get('root')!r}")
    if not {"files", "docs"} <= tables:
        raise _Mismatch("tables missing")
    # Cheap structural check of the rows we rely on; deeper damage surfaces as DatabaseError later
    # and search_files then rebuilds.
    db.execute("SELECT count(*) FROM files").fetchone()
    db.execute("SELECT rowid FROM docs WHERE docs MATCH 'a*' LIMIT 1").fetchall()


def walk(root: Path, start: Path) -> Iterable[FileEntry]:
    """Files under `start` that the walker would consider, with their stat; contents not read."""
    root = root.resolve()
    if start.is_file():
        entry = _entry(root, _label(root, start), start, start.is_symlink())
        return [] if entry is None else [entry]
    return (entry for label, item in iter_unignored(root, start)
            if (entry := _entry(root, label, item.path, item.is_symlink())) is not None)


def _entry(root: Path, label: str, path: str | Path, is_link: bool) -> FileEntry | None:
    try:
        # A linked file may point anywhere; only the ones that stay inside the root count.
        if is_link and not Path(path).resolve().is_relative_to(root):
            return None
        info = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):  # fifos and devices would block or never end
        return None
    return FileEntry(label, path, info.st_size, info.st_mtime_ns, is_link)


def _read_text(entry: FileEntry) -> str | None:
    """The file's text, or None for files the scan would skip (binary, too large, unreadable)."""
    if entry.size > MAX_FILE_BYTES:
        return None
    try:
        data = Path(entry.path).read_bytes()
    except OSError:
        return None
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        return None
    return data.decode("utf-8", errors="replace")


def _label(root: Path, path: Path) -> str:
    rel = path.relative_to(root).as_posix()
    return "" if rel == "." else rel


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}/%"


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def _remove(file: Path) -> None:
    for path in (file, file.with_name(file.name + "-wal"), file.with_name(file.name + "-shm")):
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise IndexUnavailable(f"cannot remove the damaged index {path}: {exc}") from exc


def search_candidates(index_dir: Path, root: Path, start: Path, words: Iterable[str], limit: int, *,
                      scan_below_bytes: int = 0, progress: Progress | None = None,
                      on_note: Callable[[str], None] | None = None,
                      cancelled: Callable[[], bool] | None = None) -> list[Path] | None:
    """Refresh the root's index under `start`, then its best `limit` candidate files for `words`.

    None when the files under `start` hold fewer than `scan_below_bytes` bytes: scanning them is as
    quick, and no index is created for a small folder. A database found damaged on the way is
    deleted and rebuilt once. Raises IndexUnavailable when the index cannot answer (another process
    holds it, the folder is not writable).
    """
    root = root.resolve()
    entries = list(walk(root, start))
    if sum(min(e.size, MAX_FILE_BYTES) for e in entries) < scan_below_bytes:
        return None
    failure: sqlite3.Error | None = None
    for _attempt in range(2):
        index = SearchIndex.open(index_dir, root, on_note=on_note)
        try:
            index.refresh(start, progress, entries, cancelled)
            return index.candidates(words, start, limit)
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise IndexUnavailable(str(exc)) from exc
            failure = exc
        except sqlite3.DatabaseError as exc:
            failure = exc
        finally:
            index.close()
        if on_note:
            on_note(f"search index {index.file.name} damaged ({failure}); rebuilding it")
        _remove(index.file)
    raise IndexUnavailable(f"the search index was damaged twice: {failure}")
