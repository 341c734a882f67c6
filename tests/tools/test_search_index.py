"""search_files on the full-text index: same answers as the scan, never stale, never trusted when damaged."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest

from tongyi_agent.tools import search_files as search_module
from tongyi_agent.tools import search_index
from tongyi_agent.tools.base import ToolContext
from tongyi_agent.tools.search_files import search_files
from tongyi_agent.tools.search_index import SearchIndex, index_path

AN_HOUR_AGO_NS = time.time_ns() - 3600 * 1_000_000_000


@pytest.fixture
def indexed(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ToolContext:
    """A context whose searches go through the index, however small the tree."""
    monkeypatch.setattr(search_module, "SCAN_BELOW_BYTES", 0)
    (project / "services").mkdir()
    (project / "services" / "billing.md").write_text("# Billing\n\nListens on port 8443.\nOwner: payments team.\n")
    (project / "services" / "search.md").write_text("# Search\n\nListens on port 9200.\n")
    # Files written long before the search, as usual: a file written within RACY_SECONDS of being
    # indexed is read again by the next search (see test_a_same_tick_rewrite_is_not_missed).
    for file in project.rglob("*"):
        if file.is_file():
            os.utime(file, ns=(AN_HOUR_AGO_NS, AN_HOUR_AGO_NS))
    return ToolContext(root=project, index_dir=tmp_path / "index")


def hits(ctx: ToolContext, query: str, path: str = ".") -> list[tuple[str, int]]:
    """The matching lines (marked `path:line:` in the output), without the section headers shown above them."""
    result = search_files(ctx, query, path)
    return [(s.path, s.line) for s in result.sources if f"{s.path}:{s.line}: " in result.output]


def db_file(ctx: ToolContext) -> Path:
    assert ctx.index_dir is not None
    return index_path(ctx.index_dir, ctx.root)


def indexed_paths(ctx: ToolContext) -> set[str]:
    with sqlite3.connect(db_file(ctx)) as db:
        return {row[0] for row in db.execute("SELECT path FROM files WHERE searchable")}


def bump(path: Path, text: str) -> None:
    """Rewrite a file and move its mtime on, so the change shows even within one clock tick."""
    before = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


def test_index_answers_like_the_scan(indexed: ToolContext) -> None:
    scanned = search_files(ToolContext(root=indexed.root), "billing port")
    from_index = search_files(indexed, "billing port")
    assert db_file(indexed).is_file()
    assert from_index.output == scanned.output
    # The port line ranks above the heading it sits under: it matches "port", and "billing" above it.
    assert [(s.path, s.line) for s in from_index.sources][:2] == [("services/billing.md", 3),
                                                                   ("services/billing.md", 1)]


def test_a_changed_file_is_never_answered_stale(indexed: ToolContext) -> None:
    assert hits(indexed, "8443") == [("services/billing.md", 3)]
    bump(indexed.root / "services" / "billing.md", "# Billing\n\nMoved to port 8555.\n")
    assert hits(indexed, "8443") == []
    assert hits(indexed, "8555") == [("services/billing.md", 3)]


def test_same_size_edit_is_seen_from_the_mtime(indexed: ToolContext) -> None:
    file = indexed.root / "services" / "search.md"
    hits(indexed, "9200")
    bump(file, file.read_text().replace("9200", "9300"))
    assert hits(indexed, "9300") == [("services/search.md", 3)]
    assert hits(indexed, "9200") == []


def test_new_and_deleted_files(indexed: ToolContext) -> None:
    hits(indexed, "port")
    (indexed.root / "services" / "auth.md").write_text("Auth listens on port 7001.\n")
    (indexed.root / "services" / "search.md").unlink()
    found = hits(indexed, "listens port")
    assert ("services/auth.md", 1) in found
    assert all(path != "services/search.md" for path, _ in found)
    assert "services/search.md" not in indexed_paths(indexed)


def test_gitignored_and_binary_files_are_not_indexed(indexed: ToolContext) -> None:
    root = indexed.root
    (root / "build").mkdir()
    (root / "build" / "out.md").write_text("port 8443 in a build artefact\n")
    (root / "blob.dat").write_bytes(b"port 8443\0\x01\x02")
    (root / ".gitignore").write_text("build/\n")
    assert hits(indexed, "8443") == [("services/billing.md", 3)]
    assert {"build/out.md", "blob.dat"}.isdisjoint(indexed_paths(indexed))
    # A .gitignore that starts to cover an indexed file takes it out at once.
    bump(root / ".gitignore", "build/\nservices/billing.md\n")
    assert hits(indexed, "8443") == []


def test_path_limits_the_indexed_search(indexed: ToolContext) -> None:
    assert {p for p, _ in hits(indexed, "port", "services")} == {"services/billing.md", "services/search.md"}
    assert hits(indexed, "port", "services/search.md") == [("services/search.md", 3)]
    assert hits(indexed, "agent", "docs") == [("docs/guide.md", 2)]


@pytest.mark.parametrize("damage", [b"this is not a database at all" * 100, b""])
def test_a_damaged_index_is_rebuilt_not_trusted(indexed: ToolContext, damage: bytes) -> None:
    hits(indexed, "port")
    file = db_file(indexed)
    for extra in (file.with_name(file.name + "-wal"), file.with_name(file.name + "-shm")):
        extra.unlink(missing_ok=True)
    if damage:
        file.write_bytes(damage)
    else:  # cut in half: the header survives, the pages do not
        file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    assert hits(indexed, "8443") == [("services/billing.md", 3)]
    with sqlite3.connect(file) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_an_index_of_another_root_is_replaced(indexed: ToolContext, tmp_path: Path) -> None:
    hits(indexed, "port")
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.md").write_text("port 1234\n")
    # Copy the first root's database to where the other root's would be: it must not answer.
    assert indexed.index_dir is not None
    target = index_path(indexed.index_dir, other)
    target.write_bytes(db_file(indexed).read_bytes())
    ctx = ToolContext(root=other, index_dir=indexed.index_dir)
    assert hits(ctx, "port") == [("a.md", 1)]


def test_regex_and_literal_queries_keep_scanning(indexed: ToolContext) -> None:
    assert hits(indexed, r"port\s+84\d+")[0] == ("services/billing.md", 3)
    assert hits(indexed, "C#") == []
    assert not db_file(indexed).exists()


def test_small_trees_are_scanned_without_an_index(project: Path, tmp_path: Path) -> None:
    ctx = ToolContext(root=project, index_dir=tmp_path / "index")
    assert hits(ctx, "agent") == [("README.md", 2), ("docs/guide.md", 2)]
    assert not (tmp_path / "index").exists()


def test_a_busy_index_falls_back_to_the_scan(indexed: ToolContext, monkeypatch: pytest.MonkeyPatch) -> None:
    hits(indexed, "port")
    monkeypatch.setattr(search_index, "BUSY_TIMEOUT_SECONDS", 0.05)
    holder = sqlite3.connect(db_file(indexed), isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        bump(indexed.root / "services" / "billing.md", "Now on port 8999.\n")
        assert hits(indexed, "8999") == [("services/billing.md", 1)]
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_build_reports_progress(indexed: ToolContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search_index, "PROGRESS_AFTER_SECONDS", 0.0)
    seen: list[tuple[str, int, int]] = []
    ctx = ToolContext(root=indexed.root, index_dir=indexed.index_dir,
                      on_progress=lambda what, done, total: seen.append((what, done, total)))
    hits(ctx, "port")
    assert seen and seen[-1] == ("Indexing files", 5, 5)
    seen.clear()
    hits(ctx, "port")  # nothing changed: nothing to report
    assert seen == []


def test_refresh_counts_only_changed_files(indexed: ToolContext) -> None:
    assert indexed.index_dir is not None
    index = SearchIndex.open(indexed.index_dir, indexed.root)
    try:
        assert index.refresh(indexed.root) == 5
        assert index.refresh(indexed.root) == 0
        bump(indexed.root / "README.md", "changed\n")
        assert index.refresh(indexed.root) == 1
        assert index.file_count() == 5
    finally:
        index.close()


def test_an_abandoned_search_stops_building_and_keeps_what_it_indexed(indexed: ToolContext) -> None:
    import threading

    cancel = threading.Event()
    cancel.set()
    ctx = ToolContext(root=indexed.root, index_dir=indexed.index_dir, cancel=cancel)
    assert search_files(ctx, "port").sources == []  # nobody reads an abandoned call's result
    assert hits(indexed, "8443") == [("services/billing.md", 3)]  # the next search finishes the index


def test_a_same_tick_rewrite_is_not_missed(indexed: ToolContext) -> None:
    """A same-size rewrite within one tick of the file system's clock leaves size and mtime unchanged;
    the file was indexed right after it was written, so it is read again, and the rewrite is seen."""
    file = indexed.root / "services" / "search.md"
    file.write_text("# Search\n\nListens on port 9200.\n")
    written = file.stat().st_mtime_ns
    assert hits(indexed, "9200") == [("services/search.md", 3)]
    file.write_text("# Search\n\nListens on port 9300.\n")
    os.utime(file, ns=(written, written))  # the same tick: nothing in the stat shows the change
    assert hits(indexed, "9300") == [("services/search.md", 3)]
    assert hits(indexed, "9200") == []


def test_nothing_changed_needs_no_write_lock(indexed: ToolContext, monkeypatch: pytest.MonkeyPatch) -> None:
    assert indexed.index_dir is not None
    monkeypatch.setattr(search_index, "BUSY_TIMEOUT_SECONDS", 0.05)
    index = SearchIndex.open(indexed.index_dir, indexed.root)
    holder = sqlite3.connect(db_file(indexed), isolation_level=None)
    try:
        assert index.refresh(indexed.root) == 5
        holder.execute("BEGIN IMMEDIATE")  # another process is writing
        assert index.refresh(indexed.root) == 0  # answered without waiting for it
        assert index.candidates(["8443"], indexed.root, 5) == [indexed.root / "services" / "billing.md"]
        bump(indexed.root / "README.md", "changed\n")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            index.refresh(indexed.root)  # a change has to be written, so it waits for the lock
        holder.execute("ROLLBACK")
        assert index.refresh(indexed.root) == 1
    finally:
        holder.close()
        index.close()


def test_a_file_restored_after_a_search_elsewhere_is_not_stale(indexed: ToolContext) -> None:
    """The digest that lets an unchanged folder skip its rows is dropped by any change to the rows: a
    file changed (and indexed from the root), then restored with its old size and mtime, is read again
    when its folder is searched."""
    file = indexed.root / "services" / "billing.md"
    original, stat = file.read_bytes(), file.stat()
    assert hits(indexed, "8443", "services") == [("services/billing.md", 3)]
    bump(file, file.read_text().replace("8443", "8555"))
    assert hits(indexed, "8555") == [("services/billing.md", 3)]
    file.write_bytes(original)
    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert hits(indexed, "8443", "services") == [("services/billing.md", 3)]
    assert hits(indexed, "8555", "services") == []


def test_a_deleted_file_disappears_from_an_unchanged_looking_folder(indexed: ToolContext) -> None:
    hits(indexed, "port")
    hits(indexed, "port")  # the tree's digest is stored now
    (indexed.root / "services" / "search.md").unlink()
    assert hits(indexed, "9200") == []
    assert "services/search.md" not in indexed_paths(indexed)
