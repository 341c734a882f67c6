"""A full-text index (SQLite FTS5, BM25) of a root's text files, so search_files need not read them all.

One database per root in the index folder (the user cache directory). It is built on first use and
refreshed before every query from each file's size and modification time, so a changed, new or
deleted file is never answered from stale rows. The same walker as list_files decides which files
count (.gitignore, SKIP_DIRS, binary files, links leaving the root). A database that SQLite cannot
read, or that was written for another root or schema, is deleted and rebuilt, never trusted.

Keeping a query fast on a large tree (benchmarks/latency.py): every query still stats every file,
since only a file's own size and mtime can show that its contents changed (a folder's mtime does
not). What is saved is the rest: a digest of the walked (path, size, mtime) list is stored with the
rows it matches, so an unchanged tree is recognised without reading the files table or taking a
write lock. Any change to the rows drops every stored digest. A file whose mtime is within
RACY_SECONDS of when it was read is stored as needing another look: a same-size rewrite within one
tick of the file system's clock leaves size and mtime as they were (git's "racily clean" files).

The index only picks candidate files: search_files still scores their lines itself, so the ranking
(words matched per line, the topic boost, a line of context) is the scan's. A difference to know:
FTS5 matches query words at the start of a token ("port" finds "ports" and "port:8443" but not
"export"), where the scan matches them anywhere in a line.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tongyi_agent.tools.paths import BINARY_SNIFF_BYTES
from tongyi_agent.tools.walk import iter_unignored

# 2: rows of racily clean files carry RECHECK as their mtime, and meta holds tree digests.
SCHEMA_VERSION = "2"
# Files larger than this are data dumps; the scan skips them too.
MAX_FILE_BYTES = 2_000_000
# Rows are committed in batches so an interrupted build keeps what it has done.
COMMIT_EVERY = 500
# The progress callback is only called once a build has run this long: quick builds stay silent.
PROGRESS_AFTER_SECONDS = 1.0
# How long to wait for another process that is updating the same index before scanning instead.
BUSY_TIMEOUT_SECONDS = 5.0
# A file modified this close to the moment it was read may change again without its mtime moving
# (the clock of FAT ticks in 2 s, of ext4 in milliseconds): its row is read again next time.
RACY_SECONDS = 2.0
RECHECK = -1  # the mtime stored for such a file: it never equals a real one
DIGEST_KEY = "tree:"  # meta key prefix; the rest of the key is the searched folder's label

Progress = Callable[[int, int], None]  # (files done, files to index)


class IndexUnavailable(Exception):
    """The index cannot answer now (locked by another process, unwritable folder); scan instead."""


@dataclass
class TreeState:
    """The files under a folder that the walker considers, with their size and mtime; contents not read."""

    files: dict[str, tuple[int, int]] = field(default_factory=dict)  # label -> (size, mtime_ns)
    links: set[str] = field(default_factory=set)  # labels that are symbolic links

    def text_bytes(self) -> int:
        return sum(min(size, MAX_FILE_BYTES) for size, _mtime in self.files.values())

    def digest(self) -> str:
        """Changes whenever a file is added, removed, resized or touched (marshal version 2 writes
        no back-references, so the same state gives the same bytes in every process)."""
        return hashlib.sha256(marshal.dumps((self.files, sorted(self.links)), 2)).hexdigest()


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

    def refresh(self, start: Path, progress: Progress | None = None, tree: TreeState | None = None,
                cancelled: Callable[[], bool] | None = None) -> int:
        """Bring the rows for files under `start` up to date; returns how many files were (re)indexed.

        Unchanged files (same size and mtime) are not read; when no file under `start` changed since
        the last refresh, neither are the rows, and nothing is written. Rows of files that are gone,
        now ignored, or turned binary are deleted. Links are always read again (their target may
        change without them). `tree` is `scan_tree(root, start)` when the caller already has it.
        When `cancelled()` turns true (the call was abandoned at its deadline) the files indexed so
        far are kept and IndexUnavailable is raised.
        """
        start = start.resolve()
        prefix = _label(self.root, start)
        tree = scan_tree(self.root, start) if tree is None else tree
        digest = tree.digest()
        key = DIGEST_KEY + prefix
        if not tree.links and self._stored_digest(key) == digest:
            return 0
        stale, gone = self._changes(prefix, tree)
        if not stale and not gone:
            if not tree.links:
                self._try_store_digest(key, digest, prefix, tree)
            return 0
        self.db.execute("BEGIN IMMEDIATE")
        try:
            # Read again under the write lock: another process may have refreshed these rows meanwhile.
            stale, gone = self._changes(prefix, tree)
            # The rows change: no stored digest describes them any more.
            self.db.execute("DELETE FROM meta WHERE key LIKE ? ESCAPE '\\'", (_like_start(DIGEST_KEY),))
            for file_id in gone:
                self.db.execute("DELETE FROM docs WHERE rowid = ?", (file_id,))
                self.db.execute("DELETE FROM files WHERE id = ?", (file_id,))
            started = time.monotonic()
            racy = False
            for done, (label, old_id) in enumerate(stale, start=1):
                if cancelled is not None and cancelled():
                    self.db.execute("COMMIT")
                    raise IndexUnavailable("the search was abandoned while the index was being built")
                racy |= self._index_file(label, tree.files[label], old_id)
                if done % COMMIT_EVERY == 0:
                    self.db.execute("COMMIT")
                    self.db.execute("BEGIN IMMEDIATE")
                if progress and time.monotonic() - started > PROGRESS_AFTER_SECONDS:
                    progress(done, len(stale))
            if not racy and not tree.links:
                self.db.execute("INSERT INTO meta VALUES (?, ?)", (key, digest))
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        if progress and time.monotonic() - started > PROGRESS_AFTER_SECONDS:
            progress(len(stale), len(stale))
        return len(stale)

    def _changes(self, prefix: str, tree: TreeState) -> tuple[list[tuple[str, int | None]], list[int]]:
        """(label, id of its old row) of the files to read again, and the ids of rows whose file is gone."""
        known = {row[0]: (row[1], row[2], row[3]) for row in self.db.execute(
            "SELECT path, size, mtime_ns, id FROM files WHERE ? = '' OR path = ? OR path LIKE ? ESCAPE '\\'",
            (prefix, prefix, _like_prefix(prefix)))}
        stale: list[tuple[str, int | None]] = []
        for label, (size, mtime_ns) in tree.files.items():
            old = known.get(label)
            if old is None:
                stale.append((label, None))
            elif old[0] != size or old[1] != mtime_ns or label in tree.links:
                stale.append((label, old[2]))
        gone = [known[label][2] for label in known.keys() - tree.files.keys()]
        return stale, gone

    def _stored_digest(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _try_store_digest(self, key: str, digest: str, prefix: str, tree: TreeState) -> None:
        """Remember that the rows match `tree` (checked again under the write lock, as another process
        may have changed them since); skipped at once, not waited for, when another process writes."""
        self.db.execute("PRAGMA busy_timeout = 0")
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                stale, gone = self._changes(prefix, tree)
                if not stale and not gone:
                    self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, digest))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
        finally:
            self.db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")

    def _index_file(self, label: str, state: tuple[int, int], old_id: int | None) -> bool:
        """(Re)index one file; True when it was racily clean and its row asks for another look."""
        if old_id is not None:
            self.db.execute("DELETE FROM docs WHERE rowid = ?", (old_id,))
            self.db.execute("DELETE FROM files WHERE id = ?", (old_id,))
        size, mtime_ns = state
        read_at = time.time_ns()
        text = _read_text(self.root / label, size)
        racy = mtime_ns >= read_at - int(RACY_SECONDS * 1e9)
        cursor = self.db.execute("INSERT INTO files(path, size, mtime_ns, searchable) VALUES (?, ?, ?, ?)",
                                 (label, size, RECHECK if racy else mtime_ns, text is not None))
        if text is not None:
            self.db.execute("INSERT INTO docs(rowid, path, body) VALUES (?, ?, ?)",
                            (cursor.lastrowid, label.replace("/", " "), text))
        return racy

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
    # Cheap structural check of the tables we rely on (a one-token lookup reads the FTS structure
    # without the doclists a prefix query would); deeper damage surfaces as DatabaseError later and
    # search_files then rebuilds.
    db.execute("SELECT count(*) FROM files").fetchone()
    db.execute("SELECT rowid FROM docs WHERE docs MATCH 'a' LIMIT 1").fetchall()


def scan_tree(root: Path, start: Path) -> TreeState:
    """The files under `start` that the walker would consider, with their size and mtime.

    One stat per file, and nothing else per file: this runs before every query.
    """
    root = root.resolve()
    tree = TreeState()
    if start.is_file():
        items: Iterable[tuple[str, str, bool]] = [(_label(root, start), str(start), start.is_symlink())]
    else:
        items = ((label, entry.path, entry.is_symlink()) for label, entry in iter_unignored(root, start))
    for label, path, is_link in items:
        try:
            # A linked file may point anywhere; only the ones that stay inside the root count.
            if is_link and not Path(path).resolve().is_relative_to(root):
                continue
            info = os.stat(path)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):  # fifos and devices would block or never end
            continue
        tree.files[label] = (info.st_size, info.st_mtime_ns)
        if is_link:
            tree.links.add(label)
    return tree


def _read_text(path: Path, size: int) -> str | None:
    """The file's text, or None for files the scan would skip (binary, too large, unreadable)."""
    if size > MAX_FILE_BYTES:
        return None
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        return None
    return data.decode("utf-8", errors="replace")


def _label(root: Path, path: Path) -> str:
    rel = path.relative_to(root).as_posix()
    return "" if rel == "." else rel


def _like_prefix(prefix: str) -> str:
    return _like_start(f"{prefix}/")


def _like_start(text: str) -> str:
    """A LIKE pattern (with ESCAPE '\\') for strings that start with `text`."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"


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
    tree = scan_tree(root, start)
    if tree.text_bytes() < scan_below_bytes:
        return None
    failure: sqlite3.Error | None = None
    for _attempt in range(2):
        index = SearchIndex.open(index_dir, root, on_note=on_note)
        try:
            index.refresh(start, progress, tree, cancelled)
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
