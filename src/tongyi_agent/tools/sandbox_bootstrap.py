"""Runs inside the sandbox before the snippet: records which files the program opens, then runs it.

Not imported by the agent: `tools/sandbox.py` sends this file's text into the sandbox as
`bootstrap.py`, and the snippet is started as `python -I bootstrap.py snippet.py`. An audit hook
(PEP 578) sees every `open` event of the interpreter (open(), io.open, os.open, and what pandas or
numpy open through them) and writes the resolved path of each file opened for reading, once, to
the file-access log: an inherited pipe whose lines carry a random token, so that a file name merely
written in a string literal is never mistaken for a file the program read. Audit hooks cannot be
removed; the token is written into this file's copy by the caller, and the copy deletes itself before
the snippet starts. A program set on forging entries could still dig the token out of memory, so the
log is evidence for honest programs, not a security boundary.
"""

from __future__ import annotations

import builtins
import os
import sys
import traceback
import types


def _install(log_fd: int, token: str, root: str) -> None:
    seen: set[str] = set()
    busy = [False]
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event != "open" or busy[0] or not args:
            return
        path, mode, flags = ((*tuple(args), None, None))[:3]
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str):
            return  # an fd, or a path-like we cannot name
        if isinstance(mode, str) and any(c in mode for c in "wax+"):
            return
        if isinstance(flags, int) and flags & write_flags:
            return
        busy[0] = True
        try:
            real = os.path.realpath(path)
            if real not in seen and real.startswith(root + "/") and os.path.isfile(real):
                seen.add(real)
                os.write(log_fd, f"{token}\t{real}\n".encode("utf-8", "surrogateescape"))
        except OSError:
            pass
        finally:
            busy[0] = False

    sys.addaudithook(hook)


# Filled in by the caller for each run (see `tools/sandbox.py`).
LOG_FD = -1
TOKEN = "@@TOKEN@@"


def main() -> None:
    path = sys.argv[1]
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    os.unlink(sys.argv[0])  # the token is in there
    _install(LOG_FD, TOKEN, os.path.realpath(os.environ["PROJECT_ROOT"]))
    sys.argv = sys.argv[1:]
    main_module = types.ModuleType("__main__")
    main_module.__file__ = path
    main_module.__builtins__ = builtins  # type: ignore[attr-defined]
    sys.modules["__main__"] = main_module
    try:
        exec(compile(source, path, "exec"), main_module.__dict__)
    except SystemExit:
        raise
    except BaseException as exc:
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next if exc.__traceback__ else None)
        sys.exit(1)


if __name__ == "__main__":
    main()
