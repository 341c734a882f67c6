"""Atomic, optionally chunked text output for the exporters.

Every file is written under a temporary name in the target directory and renamed into place only
when the whole export succeeded, so a failed or interrupted export never leaves a half-written file
where a training job could pick it up.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TextIO


def chunk_path(path: Path, index: int) -> Path:
    """``out/data.jsonl`` → ``out/data-00001.jsonl`` (index counts from 1)."""
    return path.with_name(f"{path.stem}-{index:05d}{path.suffix}")


class ChunkedOutput:
    """Write items to ``path``, or to numbered chunk files of ``chunk_size`` items each.

    ``opener(chunk_index)`` and ``closer`` wrap each file; ``separator`` goes between two items of one
    file. An export with no items still produces one (empty) file. Use as a context manager: the files
    appear on a clean exit and are removed on an exception.
    """

    def __init__(
        self,
        path: Path,
        chunk_size: int | None = None,
        *,
        opener: Callable[[int], str] = lambda _: "",
        closer: str = "",
        separator: str = "",
        terminator: str = "\n",
    ) -> None:
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")
        self.path = Path(path)
        self.chunk_size = chunk_size
        self.items = 0
        self._opener, self._closer, self._separator, self._terminator = opener, closer, separator, terminator
        self._pending: list[tuple[Path, Path]] = []  # (temporary, final)
        self._file: TextIO | None = None
        self._in_chunk = 0

    def write(self, text: str) -> None:
        """Write one item (already serialised)."""
        if self._file is None or (self.chunk_size is not None and self._in_chunk >= self.chunk_size):
            self._next_file()
        assert self._file is not None
        if self._in_chunk:
            self._file.write(self._separator)
        self._file.write(text)
        self._file.write(self._terminator)
        self._in_chunk += 1
        self.items += 1

    def __enter__(self) -> ChunkedOutput:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            try:
                if self._file is None:
                    self._next_file()
                self._close_file()
                for temporary, final in self._pending:
                    os.replace(temporary, final)
                return
            except BaseException:
                self._discard()
                raise
        self._discard()

    def _next_file(self) -> None:
        self._close_file()
        index = len(self._pending) + 1
        final = self.path if self.chunk_size is None else chunk_path(self.path, index)
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        self._file = os.fdopen(fd, "w", encoding="utf-8")
        self._pending.append((Path(name), final))
        self._file.write(self._opener(index))
        self._in_chunk = 0

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.write(self._closer)
            self._file.close()
            self._file = None

    def _discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        for temporary, _ in self._pending:
            temporary.unlink(missing_ok=True)
