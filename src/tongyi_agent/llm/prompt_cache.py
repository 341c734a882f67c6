"""A disk cache of llama.cpp KV states for prompt prefixes, so a new process need not prefill them.

Every question starts with the same system prompt (instructions, tool descriptions, examples): about
650 tokens that take several seconds to prefill on a small CPU. The embedded backend saves the KV
state of that prefix here once, and later processes load it instead.

An entry is keyed on everything the state depends on: the weights' hash, the LoRA adapter's hash,
the context size, the llama.cpp runtime and the prefix tokens themselves. Each file carries its key
and a checksum of its contents; one that does not match is deleted and reported through `on_note`,
never trusted and never an error. The folder is bounded in size: the least recently used entries
go first (a read refreshes an entry's mtime).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import tempfile
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"TONGYI-KV1\n"
SUFFIX = ".kv"
DEFAULT_MAX_BYTES = 256 * 1024 * 1024  # about 12 prefixes of the 1.5B model (about 20 MB each)
_LENGTH = struct.Struct("<Q")


@dataclass(frozen=True)
class CachedPrefix:
    """The prefix's tokens and the KV state of one sequence after evaluating exactly them."""

    tokens: tuple[int, ...]
    state: bytes


def prefix_key(*, weights_id: str, adapter_id: str, n_ctx: int, runtime: str, tokens: Sequence[int]) -> str:
    """The cache key: a state is only valid for the same weights, adapter, context size, runtime and tokens."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"weights": weights_id, "adapter": adapter_id, "n_ctx": n_ctx,
                              "runtime": runtime}, sort_keys=True).encode())
    digest.update(array("i", tokens).tobytes())
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    """sha256 of a file (adapters are a few MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class PromptCache:
    """Entries `<key>.kv` in `directory`, at most `max_bytes` in all."""

    def __init__(self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES,
                 on_note: Callable[[str], None] | None = None) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.on_note = on_note

    def _note(self, text: str) -> None:
        if self.on_note is not None:
            self.on_note(text)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}{SUFFIX}"

    def get(self, key: str) -> CachedPrefix | None:
        """The entry for `key`, or None when there is none or it cannot be trusted (then it is deleted)."""
        file = self.path(key)
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._note(f"prompt cache: cannot read {file.name}: {exc}")
            return None
        try:
            entry = _decode(data, key)
        except ValueError as exc:
            self.discard(key, f"{exc}")
            return None
        with contextlib.suppress(OSError):
            os.utime(file)  # least recently used goes first
        return entry

    def put(self, key: str, entry: CachedPrefix) -> None:
        """Store atomically, then evict the least recently used entries beyond the size bound."""
        data = _encode(key, entry)
        if len(data) > self.max_bytes:
            self._note(f"prompt cache: a prefix state of {len(data) // 1024} KiB exceeds the cache size "
                       f"({self.max_bytes // 1024} KiB); not stored")
            return
        tmp_name = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.directory, prefix=".tmp-", delete=False) as tmp:
                tmp_name = tmp.name
                tmp.write(data)
            os.replace(tmp_name, self.path(key))
        except OSError as exc:
            self._note(f"prompt cache: cannot write to {self.directory}: {exc}")
            if tmp_name is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_name)
            return
        self.evict(keep=key)

    def discard(self, key: str, reason: str) -> None:
        self._note(f"prompt cache: discarded entry {key[:12]} ({reason})")
        with contextlib.suppress(OSError):
            self.path(key).unlink()

    def evict(self, keep: str | None = None) -> None:
        """Delete the least recently used entries until the folder is within `max_bytes`."""
        entries = []
        for file in self.directory.glob(f"*{SUFFIX}"):
            try:
                info = file.stat()
            except OSError:
                continue
            entries.append((info.st_mtime_ns, file.name, info.st_size, file))
        total = sum(size for _, _, size, _ in entries)
        for _, name, size, file in sorted(entries):
            if total <= self.max_bytes:
                break
            if keep is not None and name == f"{keep}{SUFFIX}":
                continue
            try:
                file.unlink()
                total -= size
            except OSError:
                pass

    def total_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.directory.glob(f"*{SUFFIX}"))


def _encode(key: str, entry: CachedPrefix) -> bytes:
    tokens = array("i", entry.tokens).tobytes()
    header = json.dumps({"key": key, "n_tokens": len(entry.tokens), "state_bytes": len(entry.state),
                         "sha256": hashlib.sha256(tokens + entry.state).hexdigest()}).encode()
    return MAGIC + _LENGTH.pack(len(header)) + header + tokens + entry.state


def _decode(data: bytes, key: str) -> CachedPrefix:
    """Parse and check an entry; ValueError says what is wrong with it."""
    if not data.startswith(MAGIC):
        raise ValueError("not a prompt-cache file")
    offset = len(MAGIC)
    if len(data) < offset + _LENGTH.size:
        raise ValueError("truncated")
    (header_length,) = _LENGTH.unpack_from(data, offset)
    offset += _LENGTH.size
    try:
        header = json.loads(data[offset:offset + header_length])
        n_tokens, state_bytes = int(header["n_tokens"]), int(header["state_bytes"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError("unreadable header") from exc
    if header.get("key") != key:
        raise ValueError("written for another key")
    offset += header_length
    token_bytes = n_tokens * array("i").itemsize
    if len(data) != offset + token_bytes + state_bytes:
        raise ValueError("truncated or padded")
    body = data[offset:]
    if hashlib.sha256(body).hexdigest() != header.get("sha256"):
        raise ValueError("checksum mismatch")
    tokens = array("i")
    tokens.frombytes(body[:token_bytes])
    return CachedPrefix(tuple(tokens), bytes(body[token_bytes:]))
