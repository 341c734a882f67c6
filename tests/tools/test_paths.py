"""Root confinement, binary detection and .gitignore rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from tongyi_agent.tools.base import ToolError
from tongyi_agent.tools.paths import GitIgnore, is_binary, read_lines, relative_label, resolve_in_root
from tongyi_agent.tools.walk import iter_files


def test_relative_paths_resolve_inside_root(project: Path) -> None:
    resolved = resolve_in_root(project, "src/pkg/core.py")
    assert resolved == (project / "src" / "pkg" / "core.py").resolve()
    assert relative_label(project, resolved) == "src/pkg/core.py"
    assert relative_label(project, resolve_in_root(project, ".")) == "."
    assert resolve_in_root(project, "") == project.resolve()


def test_dotdot_that_stays_inside_is_fine(project: Path) -> None:
    assert resolve_in_root(project, "src/../docs/guide.md") == (project / "docs" / "guide.md").resolve()


def test_absolute_path_inside_root_is_accepted(project: Path) -> None:
    inside = str(project / "README.md")
    assert resolve_in_root(project, inside) == (project / "README.md").resolve()


@pytest.mark.parametrize("path", ["../secret.txt", "src/../../secret.txt", "/etc/passwd", "/"])
def test_paths_outside_root_are_refused(project: Path, path: str) -> None:
    (project.parent / "secret.txt").write_text("top secret")
    with pytest.raises(ToolError, match="outside the project root"):
        resolve_in_root(project, path)


def test_absolute_sibling_with_same_prefix_is_refused(project: Path) -> None:
    # "/tmp/project-other" starts with "/tmp/project" as a string but is not inside it.
    sibling = project.parent / (project.name + "-other")
    sibling.mkdir()
    with pytest.raises(ToolError, match="outside the project root"):
        resolve_in_root(project, str(sibling))


def test_symlinks_leaving_root_are_refused(project: Path) -> None:
    outside = project.parent / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret")
    (project / "file_link").symlink_to(outside / "secret.txt")
    (project / "dir_link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ToolError, match="link that points outside"):
        resolve_in_root(project, "file_link")
    with pytest.raises(ToolError, match="link that points outside"):
        resolve_in_root(project, "dir_link/secret.txt")
    with pytest.raises(ToolError, match="outside the project root"):
        resolve_in_root(project, "dir_link")


def test_symlink_inside_root_is_followed(project: Path) -> None:
    (project / "alias.md").symlink_to(project / "README.md")
    assert resolve_in_root(project, "alias.md") == (project / "README.md").resolve()


def test_nul_byte_in_path_is_a_tool_error(project: Path) -> None:
    with pytest.raises(ToolError, match="cannot be used"):
        resolve_in_root(project, "a\0b")


def test_is_binary(tmp_path: Path) -> None:
    text = tmp_path / "a.txt"
    text.write_text("plain text\n")
    blob = tmp_path / "a.bin"
    blob.write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0")
    late_nul = tmp_path / "late.txt"
    late_nul.write_bytes(b"x" * 9000 + b"\0")
    assert not is_binary(text)
    assert is_binary(blob)
    assert not is_binary(late_nul)  # only the first 8 KiB are sniffed


def test_read_lines_keeps_editor_line_numbers(tmp_path: Path) -> None:
    file = tmp_path / "a.txt"
    file.write_bytes(b"one\r\ntwo\x0cstill two\nbad \xff byte\n")
    assert read_lines(file) == ["one", "two\x0cstill two", "bad \ufffd byte"]


def test_gitignore_patterns(project: Path) -> None:
    (project / ".gitignore").write_text(
        "# comment\n*.log\n!keep.log\nbuild/\n/top.txt\ndocs/**/draft.md\nsecret\n"
    )
    ignore = GitIgnore.load(project)
    assert ignore.is_ignored("debug.log")
    assert ignore.is_ignored("src/deep/debug.log")
    assert not ignore.is_ignored("keep.log")
    assert ignore.is_ignored("build", is_dir=True)
    assert ignore.is_ignored("src/build", is_dir=True)
    assert not ignore.is_ignored("build")  # `build/` only matches folders
    assert ignore.is_ignored("top.txt")
    assert not ignore.is_ignored("src/top.txt")  # anchored to the root
    assert ignore.is_ignored("docs/a/b/draft.md")
    assert ignore.is_ignored("src/secret")
    assert not ignore.is_ignored("src/pkg/core.py")


def test_nested_gitignore_applies_below_its_folder(project: Path) -> None:
    (project / ".gitignore").write_text("*.tmp\n")
    (project / "src" / ".gitignore").write_text("generated.py\n!wanted.tmp\n")
    ignore = GitIgnore.load(project)
    assert ignore.is_ignored("src/generated.py")
    assert not ignore.is_ignored("generated.py")
    assert ignore.is_ignored("other.tmp")
    assert not ignore.is_ignored("src/wanted.tmp")  # the deeper file overrides


def test_walker_applies_every_gitignore_above_and_below_its_start(project: Path) -> None:
    """The walker reads only the .gitignore files its listings show; rules from folders above the
    start still apply, and a deeper file's rules apply below it."""
    (project / ".gitignore").write_text("*.tmp\n")
    (project / "src" / ".gitignore").write_text("generated.py\n!wanted.tmp\n")
    (project / "src" / "pkg" / "deep").mkdir()
    (project / "src" / "pkg" / "deep" / ".gitignore").write_text("*.md\n")
    for name in ("src/generated.py", "src/wanted.tmp", "src/pkg/x.tmp", "src/pkg/deep/notes.md",
                 "src/pkg/deep/keep.txt", "docs/generated.py"):
        (project / name).write_text("text\n")

    def walked(start: str) -> list[str]:
        return sorted(relative_label(project, p) for p in iter_files(project, (project / start).resolve()))

    assert walked(".") == [".gitignore", "README.md", "docs/generated.py", "docs/guide.md", "src/.gitignore",
                           "src/pkg/core.py", "src/pkg/deep/.gitignore", "src/pkg/deep/keep.txt", "src/wanted.tmp"]
    assert walked("src/pkg") == ["src/pkg/core.py", "src/pkg/deep/.gitignore", "src/pkg/deep/keep.txt"]
    assert walked("src/pkg/deep") == ["src/pkg/deep/.gitignore", "src/pkg/deep/keep.txt"]


def test_walker_skips_ignored_binary_and_tool_dirs(project: Path) -> None:
    (project / ".gitignore").write_text("build/\n*.log\n")
    for folder in ("build", ".git", ".venv", "node_modules", "__pycache__", ".tongyi_training"):
        (project / folder).mkdir()
        (project / folder / "inside.txt").write_text("hidden")
    (project / "run.log").write_text("log")
    (project / "image.png").write_bytes(b"\x89PNG\0\0")
    outside = project.parent / "outside.txt"
    outside.write_text("secret")
    (project / "escape.txt").symlink_to(outside)
    labels = [relative_label(project, p) for p in iter_files(project, project.resolve())]
    assert labels == [".gitignore", "README.md", "docs/guide.md", "src/pkg/core.py"]
