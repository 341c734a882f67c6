"""Run untrusted Python in a throwaway, isolated child process.

Layers, strongest first; each one that this machine cannot provide is reported, never silently
skipped (see `sandbox_report()`):

* Linux namespaces via util-linux `unshare`: a new network namespace (only a loopback that is
  down: no network at all, not even 127.0.0.1 services of the host), a PID namespace (the
  snippet's processes die together when it ends and cannot see or signal host processes) and a
  mount namespace in which every mount is remounted read-only except the scratch folder.
  As an ordinary user a user namespace is added (`--user --map-root-user`); as real root none is
  needed, and the snippet instead runs as uid 65534 keeping only CAP_DAC_READ_SEARCH, so that it
  can read the project like root could but RLIMIT_NPROC (ignored for root) bounds fork bombs.
* Resource limits (`resource`, set in the child before exec): CPU seconds, address space, number
  of processes, size of written files, open files; plus a wall-clock limit that kills the whole
  process group (and with it the PID namespace).
* A scrubbed environment: only PATH, LANG, HOME (the scratch folder), PROJECT_ROOT,
  PYTHONDONTWRITEBYTECODE and PYTHONIOENCODING; never keys or tokens of the parent.

Limits come from the tool context's env (defaults in brackets):
TONGYI_SANDBOX_TIMEOUT wall-clock seconds [20], TONGYI_SANDBOX_CPU CPU seconds [min(10, timeout)],
TONGYI_SANDBOX_MEMORY_MB address space [1024]. Invalid values fall back to the default.

Known gaps even in the strongest mode: the whole filesystem stays *readable* (read-only), and
Unix sockets on disk that the snippet's uid may write to are still reachable (network
namespaces isolate only IP and abstract sockets).

This file must stay importable with the standard library alone: it is also executed as a
script (`python -I -S sandbox.py --init CONFIG`) to become the small init process inside the
namespaces, which sets up the mounts, starts the snippet with its limits and reports how it ended.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Unprivileged uid the snippet runs as when we are real root (root ignores RLIMIT_NPROC).
SANDBOX_UID = 65534
CAP_DAC_READ_SEARCH = 2

DEFAULT_TIMEOUT_S = 20.0
DEFAULT_CPU_S = 10
DEFAULT_MEMORY_MB = 1024
NPROC = 64
FSIZE_MB = 16
NOFILE = 256
OUTPUT_CHARS = 20_000

# Mount flags from <sys/mount.h>; statvfs flags share the values of the ones we keep.
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 32, 1024, 2048, 4096, 16384
MS_PRIVATE, MS_RELATIME = 1 << 18, 1 << 21
ST_RELATIME = 4096
PR_SET_KEEPCAPS, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 8, 24, 38, 47
PR_CAP_AMBIENT_RAISE = 2


@dataclass(frozen=True)
class Limits:
    timeout_s: float = DEFAULT_TIMEOUT_S
    cpu_s: int = DEFAULT_CPU_S
    memory_mb: int = DEFAULT_MEMORY_MB
    nproc: int = NPROC
    fsize_mb: int = FSIZE_MB
    nofile: int = NOFILE
    output_chars: int = OUTPUT_CHARS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Limits:
        timeout = _number(env.get("TONGYI_SANDBOX_TIMEOUT"), DEFAULT_TIMEOUT_S, 1, 600)
        cpu = int(_number(env.get("TONGYI_SANDBOX_CPU"), min(DEFAULT_CPU_S, timeout), 1, 600))
        memory = int(_number(env.get("TONGYI_SANDBOX_MEMORY_MB"), DEFAULT_MEMORY_MB, 64, 1 << 20))
        return cls(timeout_s=timeout, cpu_s=max(1, cpu), memory_mb=memory)


def _number(raw: str | None, default: float, low: float, high: float) -> float:
    try:
        value = float(raw) if raw is not None and raw.strip() else default
    except ValueError:
        return default
    return min(max(value, low), high)


@dataclass
class SandboxRun:
    """How one snippet ended."""

    stdout: str
    stderr: str
    exit_status: int | None  # None when killed by a signal or never started
    signal: int | None = None
    timed_out: bool = False
    cpu_s: float = 0.0
    wall_s: float = 0.0
    limit: str | None = None  # which limit ended it, in words
    error: str | None = None  # the sandbox itself failed
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.timed_out and self.error is None


# ---------------------------------------------------------------- parent side


@dataclass(frozen=True)
class _Mode:
    name: str
    unshare: tuple[str, ...]  # empty: run without namespaces
    drop_uid: bool


def _candidate_modes() -> list[_Mode]:
    unshare = shutil.which("unshare") or next(
        (p for p in ("/usr/bin/unshare", "/bin/unshare") if os.access(p, os.X_OK)), None)
    root = os.geteuid() == 0
    modes: list[_Mode] = []
    if unshare:
        # --kill-child: if unshare dies (wall-clock kill), its child, the namespace's init, gets
        # SIGKILL and the kernel then kills every process left in the PID namespace.
        common = ("--net", "--pid", "--fork", "--kill-child", "--mount", "--mount-proc")
        if root:
            modes.append(_Mode("namespaces (net, pid, mount) + uid 65534", (unshare, *common), True))
        modes.append(_Mode("namespaces (user, net, pid, mount)",
                           (unshare, "--user", "--map-root-user", *common), False))
    modes.append(_Mode("resource limits only", (), root))
    if root:
        modes.append(_Mode("resource limits only", (), False))
    return modes


class _Capture(threading.Thread):
    """Drain one pipe to EOF (so the child never blocks on a full pipe), keeping head and tail."""

    def __init__(self, stream: Any, limit: int) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.half = max(1, limit // 2)
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def run(self) -> None:
        while chunk := self.stream.read1(65536):
            room = self.half - len(self.head)
            if room > 0:
                self.head += chunk[:room]
                chunk = chunk[room:]
            self.tail += chunk
            if len(self.tail) > self.half:
                self.dropped += len(self.tail) - self.half
                del self.tail[: len(self.tail) - self.half]

    def text(self) -> str:
        head = self.head.decode("utf-8", "replace")
        tail = self.tail.decode("utf-8", "replace")
        if self.dropped:
            return f"{head}\n[output truncated: {self.dropped} bytes left out]\n{tail}"
        return head + tail


def _child_env(tmp: str, project_root: str) -> dict[str, str]:
    # Built from scratch, never copied from os.environ: the parent holds API keys.
    return {
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin"]),
        "LANG": "C.UTF-8",
        "HOME": tmp,
        "PROJECT_ROOT": project_root,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
    }


def _link_project(tmp: str, project_root: str) -> None:
    """Symlink the project's top-level entries into the scratch directory.

    Programs (and small models) open "data/sales.csv" relative to the current directory; the links
    make that work while the files stay read-only behind them. Hidden entries (.git, the training
    store) are left out."""
    try:
        entries = os.listdir(project_root)
    except OSError:
        return
    for name in entries:
        if not name.startswith(".") and name != "snippet.py":
            os.symlink(os.path.join(project_root, name), os.path.join(tmp, name))


def _launch(mode: _Mode, code: str, project_root: str, limits: Limits) -> tuple[SandboxRun, dict[str, Any]]:
    """Run `code` under `mode`; returns the run and the init's report of what it enforced."""
    tmp = os.path.realpath(tempfile.mkdtemp(prefix="tongyi-sandbox-"))
    status_r, status_w = os.pipe()
    started = time.monotonic()
    proc: subprocess.Popen[bytes] | None = None
    try:
        script = os.path.join(tmp, "snippet.py")
        with open(script, "w", encoding="utf-8") as handle:
            handle.write(code)
        _link_project(tmp, project_root)
        if mode.drop_uid:
            for path in (tmp, script):
                os.chown(path, SANDBOX_UID, SANDBOX_UID)
        config = {
            "tmp": tmp, "project_root": project_root, "status_fd": status_w, "drop_uid": mode.drop_uid,
            "isolate_fs": bool(mode.unshare), "cpu_s": limits.cpu_s, "memory_mb": limits.memory_mb,
            "nproc": limits.nproc, "fsize_mb": limits.fsize_mb, "nofile": limits.nofile,
            # -u: unbuffered, so what was printed before a wall-clock kill is not lost.
            "argv": [sys.executable, "-I", "-B", "-u", "-X", "utf8", script],
        }
        init = [sys.executable, "-I", "-S", "-B", os.path.abspath(__file__), "--init", json.dumps(config)]
        proc = subprocess.Popen(
            [*mode.unshare, *init], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=tmp, env=_child_env(tmp, project_root),
            pass_fds=(status_w,), start_new_session=True)
        os.close(status_w)
        status_w = -1
        readers = [_Capture(proc.stdout, limits.output_chars), _Capture(proc.stderr, limits.output_chars)]
        for reader in readers:
            reader.start()
        timed_out = False
        try:
            proc.wait(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            proc.wait()
        # Without a PID namespace, a grandchild may still hold the pipes; the group kill above and
        # the bounded join keep us from hanging on it.
        for reader in readers:
            reader.join(timeout=2)
        with os.fdopen(status_r, "rb") as status_file:
            status_r = -1
            raw = status_file.read().decode("utf-8", "replace")
        report: dict[str, Any] = json.loads(raw) if raw.strip() else {}
        run = SandboxRun(stdout=readers[0].text(), stderr=readers[1].text(), exit_status=report.get("exit"),
                         signal=report.get("signal"), timed_out=timed_out, cpu_s=report.get("cpu", 0.0),
                         wall_s=time.monotonic() - started, error=report.get("error"))
        if not report and not timed_out:
            run.error = f"sandbox did not start (exit status {proc.returncode}): {run.stderr.strip()[-500:]}"
        return run, report
    finally:
        if proc is not None:
            _kill_group(proc)  # leftovers of a run without PID namespace
        for fd in (status_r, status_w):
            if fd >= 0:
                os.close(fd)
        _remove_tree(tmp)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _remove_tree(path: str) -> None:
    def fix(func: Any, target: str, _exc: Any) -> None:
        # The snippet may have made files or folders read-only; make them deletable and retry.
        try:
            os.chmod(os.path.dirname(target), 0o700)
            os.chmod(target, 0o700)
            func(target)
        except OSError:
            pass

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=fix)
    else:
        shutil.rmtree(path, onerror=fix)


@functools.cache
def _probe() -> tuple[_Mode, dict[str, Any], str]:
    """Pick the strongest mode that works here, by running an empty snippet in each."""
    failures: list[str] = []
    for mode in _candidate_modes():
        run, report = _launch(mode, "pass\n", os.path.realpath(tempfile.gettempdir()), Limits(timeout_s=15))
        if run.ok:
            return mode, report, "; ".join(failures)
        failures.append(f"{mode.name}: {run.error or run.stderr.strip()[-300:] or 'failed'}")
    raise RuntimeError("cannot run Python in a child process: " + "; ".join(failures))


def sandbox_report() -> dict[str, bool | str]:
    """What the sandbox enforces on this machine (the strongest mode that works here)."""
    try:
        mode, report, failures = _probe()
    except RuntimeError as exc:
        return {"mechanism": "unavailable", "network_isolated": False, "filesystem_readonly": False,
                "pid_namespace": False, "pid_limit": False, "env_scrubbed": False, "resource_limits": False,
                "summary": str(exc)}
    result: dict[str, bool | str] = {
        "mechanism": mode.name,
        "network_isolated": bool(report.get("network_isolated")),
        "filesystem_readonly": bool(report.get("filesystem_readonly")),
        "pid_namespace": bool(report.get("pid_namespace")),
        "pid_limit": bool(report.get("pid_limit")),
        "env_scrubbed": True,
        "resource_limits": True,
    }
    if failures:
        result["stronger_modes_failed"] = failures
    weak = _weaknesses(result)
    result["summary"] = "full isolation" if not weak else "weaker mode — " + "; ".join(weak)
    return result


def _weaknesses(report: Mapping[str, Any]) -> list[str]:
    weak = []
    if not report.get("network_isolated"):
        weak.append("no network namespace available: the snippet can reach the network")
    if not report.get("filesystem_readonly"):
        weak.append("filesystem not read-only: the snippet can write wherever its user can")
    if not report.get("pid_limit"):
        weak.append("no process-count limit: fork bombs are bounded only by the wall-clock limit")
    return weak


def run_sandboxed(code: str, project_root: str, limits: Limits | None = None) -> SandboxRun:
    """Run one Python program in the strongest sandbox available and report how it ended.

    Raises RuntimeError when no child Python can be started at all."""
    limits = limits or Limits()
    mode, probe_report, _ = _probe()
    run, report = _launch(mode, code, os.path.realpath(project_root), limits)
    run.warnings = _weaknesses(report or probe_report)
    # A snippet that ended well may still mention MemoryError (caught, printed): no limit then.
    run.limit = None if run.ok else _limit_hit(run, limits)
    return run


def _limit_hit(run: SandboxRun, limits: Limits) -> str | None:
    if run.timed_out:
        return f"wall-clock limit {limits.timeout_s:g} s"
    if run.signal == signal.SIGXCPU or (run.signal == signal.SIGKILL and run.cpu_s >= limits.cpu_s - 0.5):
        return f"CPU time limit {limits.cpu_s} s"
    if run.signal == signal.SIGXFSZ or "File too large" in run.stderr:
        return f"file size limit {FSIZE_MB} MiB"
    if "MemoryError" in run.stderr:
        return f"memory limit {limits.memory_mb} MiB (MemoryError)"
    if run.signal in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGKILL):
        return f"killed by {signal.Signals(run.signal).name} (possibly the memory limit {limits.memory_mb} MiB)"
    if "BlockingIOError" in run.stderr and "Resource temporarily unavailable" in run.stderr:
        return f"process limit {limits.nproc}"
    return None


# ---------------------------------------------------------------- init inside the sandbox

_libc: Any = None


def _c() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, flags: int) -> None:
    _check(_c().mount(source.encode() if source else None, target.encode(), None,
                      ctypes.c_ulong(flags), None), f"mount {target}")


def _mount_points() -> list[str]:
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            # Field 5 is the mount point, with space, tab, newline and backslash octal-escaped.
            raw = line.split()[4]
            points.append(raw.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "replace"))
    return points


def _make_readonly(tmp: str) -> list[str]:
    """Remount everything read-only except `tmp`; returns the mounts that could not be."""
    _mount(None, "/", MS_REC | MS_PRIVATE)  # never propagate our changes to the host
    _mount(tmp, tmp, MS_BIND | MS_REC)  # the scratch folder becomes its own, writable mount
    failed = []
    for point in _mount_points():
        if point == tmp or point.startswith(tmp + "/"):
            continue
        try:
            # A bind remount changes only this mount's flags; keep the ones a user namespace
            # locks (nosuid, nodev, ...) or the kernel refuses the remount.
            kept = os.statvfs(point).f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME)
            if os.statvfs(point).f_flag & ST_RELATIME:
                kept |= MS_RELATIME
            _mount(None, point, MS_REMOUNT | MS_BIND | MS_RDONLY | kept)
        except OSError as exc:
            failed.append(f"{point} ({exc.strerror})")
    return failed


def _is_readonly(path: str) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & MS_RDONLY)
    except OSError:
        return True  # cannot even look: nothing to write to


def _drop_privileges(config: Mapping[str, Any]) -> None:
    """Runs in the snippet's process before exec: limits first, then privileges."""
    mib = 1024 * 1024
    limits = [(resource.RLIMIT_CPU, config["cpu_s"], config["cpu_s"] + 1),
              (resource.RLIMIT_AS, config["memory_mb"] * mib, config["memory_mb"] * mib),
              (resource.RLIMIT_NPROC, config["nproc"], config["nproc"]),
              (resource.RLIMIT_FSIZE, config["fsize_mb"] * mib, config["fsize_mb"] * mib),
              (resource.RLIMIT_NOFILE, config["nofile"], config["nofile"]),
              (resource.RLIMIT_CORE, 0, 0)]
    for which, soft, hard in limits:
        resource.setrlimit(which, (soft, hard))
    libc = _c()
    keep = 1 << CAP_DAC_READ_SEARCH if config["drop_uid"] else 0
    if config["drop_uid"] or config["isolate_fs"]:
        # Drop every capability from the bounding set: as root (or root of a user namespace)
        # the snippet could otherwise remount / read-write or undo the limits.
        with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as handle:
            last = int(handle.read())
        for cap in range(last + 1):
            if not keep >> cap & 1:
                libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # fails harmlessly for caps we lack
    if config["drop_uid"]:
        _check(libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), "keepcaps")
        os.setgroups([])
        os.setresgid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID)
        os.setresuid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID)
    if config["drop_uid"] or config["isolate_fs"]:
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
        data = (ctypes.c_uint32 * 6)(keep, keep, keep, 0, 0, 0)  # effective, permitted, inheritable
        _check(libc.capset(header, data), "capset")
        if keep:
            # Ambient: the capability survives exec for a non-root uid (read any project file).
            _check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_DAC_READ_SEARCH, 0, 0), "ambient")
    # No setuid binary (sudo, su, ping) can give privileges back.
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def _init_main(config: dict[str, Any]) -> int:
    status = os.fdopen(config["status_fd"], "w", encoding="utf-8")
    report: dict[str, Any] = {}
    try:
        if config["isolate_fs"]:
            failed = _make_readonly(config["tmp"])
            if failed:
                report["readonly_failed"] = failed
        outside = [p for p in ("/", config["project_root"], os.path.dirname(config["tmp"])) if p]
        report["filesystem_readonly"] = all(_is_readonly(p) for p in outside) and not _is_readonly(config["tmp"])
        report["network_isolated"] = [name for _, name in socket.if_nameindex()] in ([], ["lo"])
        report["pid_namespace"] = os.getpid() == 1
        # RLIMIT_NPROC is ignored for (real) root; it binds when the snippet runs as another uid,
        # or as root of a user namespace created by a non-root user.
        report["pid_limit"] = bool(config["drop_uid"]) or os.getuid() != 0 or _outer_uid() not in (0, None)
        child = subprocess.Popen(config["argv"], cwd=config["tmp"], stdin=subprocess.DEVNULL,
                                 preexec_fn=lambda: _drop_privileges(config))
        while True:
            # As PID 1 we also reap orphans; stop when the snippet itself has ended.
            pid, wait_status, usage = os.wait4(-1, 0)
            if pid == child.pid:
                break
        report["cpu"] = round(usage.ru_utime + usage.ru_stime, 3)
        if os.WIFSIGNALED(wait_status):
            report["exit"], report["signal"] = None, os.WTERMSIG(wait_status)
        else:
            report["exit"] = os.WEXITSTATUS(wait_status)
    except Exception as exc:  # report any setup failure to the parent instead of a bare crash
        report["error"] = f"{type(exc).__name__}: {exc}"
    status.write(json.dumps(report))
    status.close()
    return 0


def _outer_uid() -> int | None:
    """The uid this process has outside its user namespace (None if unknown)."""
    try:
        with open("/proc/self/uid_map", encoding="ascii") as handle:
            for line in handle:
                inside, outside, _count = (int(x) for x in line.split())
                if inside <= os.getuid() < inside + _count:
                    return outside + os.getuid() - inside
    except (OSError, ValueError):
        return None
    return None


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--init":
    sys.exit(_init_main(json.loads(sys.argv[2])))
