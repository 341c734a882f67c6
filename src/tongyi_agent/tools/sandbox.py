"""Run untrusted Python in a throwaway, isolated child process.

Two modes; `sandbox_report()` probes what the one in use really enforces, by running a program in it:

* **namespaces** (the default; util-linux `unshare`): fresh network (no interface but a loopback that
  is down, no abstract Unix sockets of the host), PID, IPC, UTS and mount namespaces, plus a user
  namespace when the caller is not root. `tools/sandbox_init.py` builds a minimal root there: the
  system and Python read-only, the project read-only at its own path without its training store, one
  size-limited tmpfs for /tmp, /run, /dev/shm and home, nothing else of the host (no /root, /home,
  other projects, host sockets, /etc/shadow). The snippet runs with no capability at all, as uid
  65534 when the caller is root, with `no_new_privs`.
* **weak** (only when the user opts in with TONGYI_SANDBOX_WEAK=1, used when namespaces are missing):
  the same privilege drop and resource limits, on a *copy* of the project in a scratch folder that is
  removed afterwards (and on the next start, if the caller was killed); there is no read isolation
  and no network isolation. Without the opt-in, run_python refuses with a message saying so.

In both modes: resource limits (CPU, address space, processes, file size, open files), a wall-clock
limit kept both by the caller and by the init inside (SIGALRM), PR_SET_PDEATHSIG on every process of
the chain so the snippet dies with the CLI, a scrubbed environment, and a file-access log (audit
hook, see `tools/sandbox_bootstrap.py`) of the project files the program opened.

Settings (the tool context's env; defaults in brackets): TONGYI_SANDBOX_TIMEOUT wall-clock seconds
[20], TONGYI_SANDBOX_CPU CPU seconds [min(10, timeout)], TONGYI_SANDBOX_MEMORY_MB address space
[1024], TONGYI_SANDBOX_DISK_MB the tmpfs cap [64], TONGYI_SANDBOX_WEAK=1 allow the weak mode,
TONGYI_SANDBOX_NAMESPACES=0 do not use namespaces (then only the weak mode is left).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tongyi_agent.tools import sandbox_bootstrap, sandbox_init
from tongyi_agent.tools.scratch import SCRATCH_PREFIX, remove_stale_scratch, remove_tree

SANDBOX_UID = sandbox_init.SANDBOX_UID
DEFAULT_TIMEOUT_S = 20.0
DEFAULT_CPU_S = 10
DEFAULT_MEMORY_MB = 1024
DEFAULT_DISK_MB = 64
NPROC = 64
FSIZE_MB = 16
NOFILE = 256
OUTPUT_CHARS = 20_000
ACCESS_LOG_BYTES = 1_000_000
WEAK_COPY_MB = 200  # the weak mode copies the project; larger projects are refused
HIDDEN_NAMES = (".tongyi_training",)
PR_SET_PDEATHSIG = 1
PROBE_TIMEOUT_S = 15.0

WEAK_REFUSAL = ("run_python is disabled: this machine cannot isolate programs ({reason}). Set "
                "TONGYI_SANDBOX_WEAK=1 to run them anyway with resource limits only, on a copy of the project, "
                "with no read isolation and no network isolation")


@dataclass(frozen=True)
class Limits:
    timeout_s: float = DEFAULT_TIMEOUT_S
    cpu_s: int = DEFAULT_CPU_S
    memory_mb: int = DEFAULT_MEMORY_MB
    disk_mb: int = DEFAULT_DISK_MB
    nproc: int = NPROC
    fsize_mb: int = FSIZE_MB
    nofile: int = NOFILE
    output_chars: int = OUTPUT_CHARS
    weak_allowed: bool = False
    namespaces_allowed: bool = True
    python: str = field(default_factory=lambda: sys.executable)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Limits:
        timeout = _number(env.get("TONGYI_SANDBOX_TIMEOUT"), DEFAULT_TIMEOUT_S, 1, 600)
        cpu = int(_number(env.get("TONGYI_SANDBOX_CPU"), min(DEFAULT_CPU_S, timeout), 1, 600))
        memory = int(_number(env.get("TONGYI_SANDBOX_MEMORY_MB"), DEFAULT_MEMORY_MB, 64, 1 << 20))
        disk = int(_number(env.get("TONGYI_SANDBOX_DISK_MB"), DEFAULT_DISK_MB, 1, 4096))
        return cls(timeout_s=timeout, cpu_s=max(1, cpu), memory_mb=memory, disk_mb=disk,
                   weak_allowed=_flag(env.get("TONGYI_SANDBOX_WEAK"), False),
                   namespaces_allowed=_flag(env.get("TONGYI_SANDBOX_NAMESPACES"), True),
                   python=(env.get("TONGYI_SANDBOX_PYTHON") or "").strip() or sys.executable)


def _number(raw: str | None, default: float, low: float, high: float) -> float:
    try:
        value = float(raw) if raw is not None and raw.strip() else default
    except ValueError:
        return default
    return min(max(value, low), high) if value == value else default  # NaN -> default


def _flag(raw: str | None, default: bool) -> bool:
    if raw is None or not raw.strip():
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


class SandboxUnavailable(RuntimeError):
    """No mode may run here: namespaces are missing and the weak mode was not allowed."""


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
    opened: list[str] = field(default_factory=list)  # project files it opened for reading (relative)
    cancelled: bool = False  # the caller abandoned the run (its deadline passed)

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.timed_out and self.error is None and not self.cancelled


# ---------------------------------------------------------------- modes


@dataclass(frozen=True)
class _Mode:
    name: str
    unshare: tuple[str, ...]  # empty: the weak mode
    drop_uid: bool  # real root: the snippet runs as SANDBOX_UID

    @property
    def weak(self) -> bool:
        return not self.unshare


def _unshare_binary() -> str | None:
    return shutil.which("unshare") or next(
        (p for p in ("/usr/bin/unshare", "/bin/unshare") if os.access(p, os.X_OK)), None)


def _namespace_mode() -> _Mode | None:
    unshare = _unshare_binary()
    if unshare is None:
        return None
    root = os.geteuid() == 0
    # --kill-child: if unshare dies, its child (the namespace's init) gets SIGKILL, and with it every
    # process of the PID namespace.
    common = ("--net", "--pid", "--ipc", "--uts", "--fork", "--kill-child", "--mount")
    if root:
        return _Mode("namespaces (net, pid, ipc, mount) + uid 65534", (unshare, *common), True)
    return _Mode("namespaces (user, net, pid, ipc, mount)", (unshare, "--user", "--map-root-user", *common), False)


def _weak_mode() -> _Mode:
    return _Mode("weak: resource limits only, project copied", (), os.geteuid() == 0)


# ---------------------------------------------------------------- parent side


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


def _child_env() -> dict[str, str]:
    # Built from scratch, never copied from os.environ: the parent holds API keys.
    return {
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin"]),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
    }


def _python_prefixes(python: str) -> list[str]:
    """Folders the snippet's Python needs (interpreter, standard library, site-packages), outermost first."""
    found = {os.path.dirname(os.path.dirname(os.path.realpath(python))),
             os.path.dirname(os.path.dirname(os.path.abspath(python)))}  # a venv's own folder, unresolved
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        found |= {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    return sorted(found, key=len)


def _others_can_run(python: str) -> bool:
    """Whether every folder on the way to the interpreter (and its real file) lets others through."""
    for path in {os.path.abspath(python), os.path.realpath(python)}:
        parts = path.split("/")
        for depth in range(2, len(parts)):
            try:
                if not os.stat("/".join(parts[:depth])).st_mode & stat.S_IXOTH:
                    return False
            except OSError:
                return False
    return True


def _hidden_paths(project_root: str, extra: tuple[str, ...]) -> list[str]:
    """Folders under the project to cover (the training store), resolved: a store reached through a
    symlink is covered where it really is. Ones outside the project are not in the view anyway."""
    hidden: list[str] = []
    for path in [os.path.join(project_root, name) for name in HIDDEN_NAMES] + list(extra):
        real = os.path.realpath(path)
        if real.startswith(project_root + "/") and real not in hidden and os.path.exists(real):
            hidden.append(real)
    return hidden


def _set_pdeathsig(parent_pid: int) -> None:
    """In the child before exec: die when the thread that started us ends (the CLI, or its worker)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the line above
        os._exit(1)


def _bootstrap_text(log_fd: int, token: str) -> str:
    source = Path(sandbox_bootstrap.__file__).read_text(encoding="utf-8")
    return source.replace("LOG_FD = -1", f"LOG_FD = {log_fd}").replace("@@TOKEN@@", token)


def _launch(mode: _Mode, code: str, project_root: str, limits: Limits, *, hidden: tuple[str, ...] = (),
            cancel: threading.Event | None = None) -> tuple[SandboxRun, dict[str, Any]]:
    """Run `code` under `mode`; returns the run and the init's report."""
    status_r, status_w = os.pipe()
    log_r, log_w = os.pipe()
    token = secrets.token_hex(16)
    started = time.monotonic()
    proc: subprocess.Popen[bytes] | None = None
    scratch: str | None = None
    try:
        config: dict[str, Any] = {
            "status_fd": status_w, "log_fd": log_w, "drop_uid": mode.drop_uid, "isolate_fs": not mode.weak,
            "cpu_s": limits.cpu_s, "memory_mb": limits.memory_mb, "nproc": limits.nproc,
            "fsize_mb": limits.fsize_mb, "nofile": limits.nofile, "disk_mb": limits.disk_mb,
            "timeout_s": limits.timeout_s, "python": limits.python, "python_prefixes": _python_prefixes(limits.python),
            "project_root": project_root, "snippet_root": project_root,
            "hidden": _hidden_paths(project_root, hidden), "env": _child_env(),
        }
        if mode.weak:
            scratch, copy = _weak_scratch(project_root, config["hidden"], mode.drop_uid)
            config.update(cwd=os.path.join(scratch, "home"), snippet_root=copy)
        init = [sys.executable, "-I", "-S", "-B", os.path.abspath(sandbox_init.__file__), json.dumps(config)]
        parent = os.getpid()
        proc = subprocess.Popen(
            [*mode.unshare, *init], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd="/", env=_child_env(), pass_fds=(status_w, log_w), start_new_session=True,
            preexec_fn=lambda: _set_pdeathsig(parent))
        for fd in (status_w, log_w):
            os.close(fd)
        status_w = log_w = -1
        readers = [_Capture(proc.stdout, limits.output_chars), _Capture(proc.stderr, limits.output_chars),
                   _Capture(os.fdopen(log_r, "rb"), ACCESS_LOG_BYTES)]
        log_r = -1
        for reader in readers:
            reader.start()
        payload = json.dumps({"snippet": code, "bootstrap": _bootstrap_text(config["log_fd"], token)})
        with contextlib.suppress(BrokenPipeError):
            assert proc.stdin is not None
            proc.stdin.write(payload.encode("utf-8"))
            proc.stdin.close()
        timed_out = cancelled = False
        # The init keeps the same deadline itself; ours is one second later and only a safety net.
        deadline = started + limits.timeout_s + 1.0
        while proc.poll() is None:
            if cancel is not None and cancel.is_set():
                cancelled = True
                break
            if time.monotonic() >= deadline:
                timed_out = True
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.1)
        if proc.poll() is None:
            _kill_group(proc)
            proc.wait()
        for reader in readers:
            reader.join(timeout=2)
        with os.fdopen(status_r, "rb") as status_file:
            status_r = -1
            raw = status_file.read().decode("utf-8", "replace")
        report: dict[str, Any] = json.loads(raw) if raw.strip() else {}
        timed_out = timed_out or bool(report.get("deadline"))
        run = SandboxRun(stdout=readers[0].text(), stderr=readers[1].text(), exit_status=report.get("exit"),
                         signal=report.get("signal"), timed_out=timed_out, cpu_s=report.get("cpu", 0.0),
                         wall_s=time.monotonic() - started, error=report.get("error"), cancelled=cancelled,
                         opened=_opened(readers[2].text(), token, config["snippet_root"]))
        if not report and not (timed_out or cancelled):
            run.error = f"sandbox did not start (exit status {proc.returncode}): {run.stderr.strip()[-500:]}"
        return run, report
    finally:
        if proc is not None and proc.poll() is None:
            _kill_group(proc)
            proc.wait()
        for fd in (status_r, status_w, log_r, log_w):
            if fd >= 0:
                os.close(fd)
        if scratch is not None:
            remove_tree(scratch)


def _opened(log: str, token: str, root: str) -> list[str]:
    """Project files (relative paths) from the access log; lines without this run's token are ignored."""
    found: dict[str, None] = {}
    for line in log.splitlines():
        mark, _, path = line.partition("\t")
        if mark == token and path.startswith(root + "/"):
            found.setdefault(path[len(root) + 1:], None)
    return list(found)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


# ---------------------------------------------------------------- weak mode: a copied project


def _weak_scratch(project_root: str, hidden: list[str], drop_uid: bool) -> tuple[str, str]:
    """A scratch folder with `home` (the working directory) and `project` (a copy). The folder's name
    carries our pid so that the next start can remove it if we were killed."""
    remove_stale_scratch()
    scratch = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")
    copy = os.path.join(scratch, "project")
    size = 0

    def ignore(folder: str, names: list[str]) -> list[str]:
        nonlocal size
        skipped = [n for n in names if os.path.join(folder, n) in hidden or n == ".git"]
        for name in names:
            with contextlib.suppress(OSError):
                size += os.lstat(os.path.join(folder, name)).st_size
        if size > WEAK_COPY_MB * 1024 * 1024:
            raise SandboxUnavailable(f"the project is larger than {WEAK_COPY_MB} MiB, too large to copy for "
                                     "the weak sandbox")
        return skipped

    try:
        shutil.copytree(project_root, copy, symlinks=True, ignore=ignore)
        home = os.path.join(scratch, "home")
        os.mkdir(home)
        for name in os.listdir(copy):
            if not name.startswith("."):
                os.symlink(os.path.join(copy, name), os.path.join(home, name))
        if drop_uid:
            for folder, dirs, files in os.walk(scratch):
                for name in [*dirs, *files]:
                    os.lchown(os.path.join(folder, name), SANDBOX_UID, SANDBOX_UID)
            os.chown(scratch, SANDBOX_UID, SANDBOX_UID)
    except BaseException:
        remove_tree(scratch)
        raise
    return scratch, copy


# ---------------------------------------------------------------- choosing a mode, and probing it


@functools.cache
def _choose(namespaces_allowed: bool) -> tuple[_Mode | None, str]:
    """The namespace mode if it starts here, else None with the reason."""
    if not namespaces_allowed:
        return None, "namespaces turned off with TONGYI_SANDBOX_NAMESPACES=0"
    mode = _namespace_mode()
    if mode is None:
        return None, "util-linux unshare is not installed"
    project = tempfile.mkdtemp(prefix="tongyi-probe-")
    try:
        os.chmod(project, 0o755)
        run, _ = _launch(mode, "pass\n", project, Limits(timeout_s=15))
    finally:
        remove_tree(project)
    if run.ok:
        return mode, ""
    return None, f"{mode.name} failed: {(run.error or run.stderr.strip() or 'no report')[-300:]}"


def _mode_for(limits: Limits) -> _Mode:
    mode, reason = _choose(limits.namespaces_allowed)
    if mode is not None:
        return mode
    if not limits.weak_allowed:
        raise SandboxUnavailable(WEAK_REFUSAL.format(reason=reason))
    mode = _weak_mode()
    if mode.drop_uid and not _others_can_run(limits.python):
        raise SandboxUnavailable(f"the weak sandbox runs programs as uid {SANDBOX_UID}, which cannot reach the Python "
                                 f"at {limits.python}; set TONGYI_SANDBOX_PYTHON to an interpreter every user can run")
    return mode


PROBE_SNIPPET = r'''
import json, os, resource, socket, sys
facts = {}
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return line.split()[1]
facts["capabilities"] = {k: int(status(k), 16) for k in ("CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb")}
facts["no_new_privs"] = status("NoNewPrivs") == "1"
facts["uid"] = os.getuid()
try:
    facts["outer_uid"] = int(open("/proc/self/uid_map").read().split()[1]) if os.getuid() == 0 else os.getuid()
except (OSError, IndexError, ValueError):
    facts["outer_uid"] = None
def readable(path):
    try:
        with open(path, "rb") as handle:
            handle.read(1)
        return True
    except OSError:
        return False
facts["shadow_readable"] = readable("/etc/shadow")
facts["secret_readable"] = readable(sys.argv[1] + "/secret.txt")
facts["outside_readable"] = readable(sys.argv[1] + "/outside.txt")
root = os.environ["PROJECT_ROOT"]
facts["project_readable"] = readable(root + "/data.txt")
facts["store_readable"] = readable(root + "/.tongyi_training/trajectories.sqlite")
try:
    open(root + "/written.txt", "w").close()
    facts["project_writable"] = True
except OSError:
    facts["project_writable"] = False
try:
    open("probe.txt", "w").write("x")
    facts["scratch_writable"] = True
except OSError:
    facts["scratch_writable"] = False
vfs = os.statvfs(".")
facts["scratch_bytes"] = vfs.f_blocks * vfs.f_frsize
facts["interfaces"] = [name for _, name in socket.if_nameindex()]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[2])
    facts["host_socket_reachable"] = True
except OSError:
    facts["host_socket_reachable"] = False
facts["pid"] = os.getpid()
facts["nproc"] = resource.getrlimit(resource.RLIMIT_NPROC)[0]
facts["rlimits"] = [resource.getrlimit(getattr(resource, name))[0]
                    for name in ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_FSIZE", "RLIMIT_NOFILE")]
facts["env"] = sorted(os.environ)
print(json.dumps(facts))
'''


def _probe_snippet(secret_dir: str, sock_path: str) -> str:
    return f"import sys\nsys.argv[1:] = [{secret_dir!r}, {sock_path!r}]\n" + PROBE_SNIPPET


@functools.cache
def _probe(namespaces_allowed: bool, weak_allowed: bool, python: str) -> dict[str, Any]:
    """Run the probe program in the mode that would be used, against a bait project, a 0600 secret
    outside it and a world-writable Unix socket on the host."""
    limits = Limits(timeout_s=PROBE_TIMEOUT_S, weak_allowed=weak_allowed, namespaces_allowed=namespaces_allowed,
                    python=python)
    mode = _mode_for(limits)
    work = tempfile.mkdtemp(prefix="tongyi-probe-")
    server = None
    try:
        os.chmod(work, 0o755)
        project = os.path.join(work, "project")
        os.makedirs(os.path.join(project, ".tongyi_training"))
        os.chmod(project, 0o700)  # private, like most project folders of root's: must still be readable
        Path(project, "data.txt").write_text("probe\n")
        Path(project, ".tongyi_training", "trajectories.sqlite").write_text("store\n")
        os.chmod(os.path.join(project, ".tongyi_training", "trajectories.sqlite"), 0o644)
        Path(work, "outside.txt").write_text("outside\n")
        os.chmod(os.path.join(work, "outside.txt"), 0o644)
        secret = os.path.join(work, "secret.txt")
        Path(secret).write_text("secret\n")
        os.chmod(secret, 0o600)
        sock_path = os.path.join(work, "probe.sock")
        server = _unix_listener(sock_path)
        run, report = _launch(mode, _probe_snippet(work, sock_path), project, limits)
        facts: dict[str, Any] = {}
        with contextlib.suppress(ValueError):
            facts = json.loads(run.stdout.strip().splitlines()[-1]) if run.stdout.strip() else {}
        return {"mode": mode, "facts": facts, "init": report, "error": run.error or (run.stderr if not facts else "")}
    finally:
        if server is not None:
            server.close()
        remove_tree(work)


def _unix_listener(path: str) -> Any:
    import socket

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    os.chmod(path, 0o777)
    server.listen(1)
    return server


def sandbox_report(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What the sandbox enforces here, as measured by a probe program run in it (cached per process)."""
    limits = Limits.from_env(env or {})
    try:
        probe = _probe(limits.namespaces_allowed, limits.weak_allowed, limits.python)
    except SandboxUnavailable as exc:
        return {"mechanism": "refused", "available": False, "summary": str(exc), **dict.fromkeys(CLAIMS, False),
                "readonly_failed": []}
    facts, mode = probe["facts"], probe["mode"]
    limits = Limits(timeout_s=PROBE_TIMEOUT_S)
    if not facts:
        return {"mechanism": mode.name, "available": False, **dict.fromkeys(CLAIMS, False), "readonly_failed": [],
                "summary": f"the probe program failed: {str(probe['error']).strip()[-300:]}"}
    caps = facts["capabilities"]
    result: dict[str, Any] = {
        "mechanism": mode.name,
        "available": True,
        "network_isolated": facts["interfaces"] in ([], ["lo"]),
        "filesystem_readonly": not facts["project_writable"] and facts["scratch_writable"],
        "host_files_hidden": not (facts["shadow_readable"] or facts["secret_readable"] or facts["outside_readable"]),
        "training_store_hidden": not facts["store_readable"],
        "sockets_blocked": not facts["host_socket_reachable"],
        "disk_capped": 0 < facts["scratch_bytes"] <= (DEFAULT_DISK_MB + 1) * 1024 * 1024,
        "capabilities_dropped": all(value == 0 for value in caps.values()),
        "no_new_privs": bool(facts["no_new_privs"]),
        "unprivileged_uid": facts["outer_uid"] not in (0, None),
        "pid_namespace": facts["pid"] < 10,  # a fresh namespace: init is 1, the snippet among the first
        "pid_limit": facts["nproc"] == NPROC and facts["outer_uid"] not in (0, None),
        "resource_limits": facts["rlimits"] == [limits.cpu_s, limits.memory_mb << 20, FSIZE_MB << 20, NOFILE],
        "env_scrubbed": set(facts["env"]) <= {"PATH", "LANG", "HOME", "PROJECT_ROOT", "PYTHONDONTWRITEBYTECODE",
                                              "PYTHONIOENCODING"},
        "project_readable": bool(facts["project_readable"]),
        "readonly_failed": list(probe["init"].get("readonly_failed", [])),
    }
    if probe["init"].get("idmap_failed"):
        result["idmap_failed"] = probe["init"]["idmap_failed"]
    weak = _weaknesses(result)
    result["summary"] = "full isolation" if not weak else f"{mode.name} — " + "; ".join(weak)
    return result


CLAIMS = ("resource_limits", "network_isolated", "filesystem_readonly", "host_files_hidden", "training_store_hidden",
          "sockets_blocked", "disk_capped", "capabilities_dropped", "no_new_privs", "unprivileged_uid",
          "pid_namespace", "pid_limit", "env_scrubbed", "project_readable")
_WEAKNESS_TEXT = {
    "resource_limits": "the resource limits are not in force",
    "network_isolated": "the snippet can reach the network",
    "filesystem_readonly": "the project is writable (or the scratch folder is not)",
    "host_files_hidden": "files of the host outside the project are readable",
    "training_store_hidden": "the training store is readable",
    "sockets_blocked": "Unix sockets of the host are reachable",
    "disk_capped": "disk use is not capped (only the per-file size limit)",
    "capabilities_dropped": "the snippet keeps capabilities",
    "no_new_privs": "no_new_privs is not set",
    "unprivileged_uid": "the snippet runs as root",
    "pid_namespace": "no PID namespace: the snippet sees host processes",
    "pid_limit": "no process-count limit: fork bombs are bounded only by the wall-clock limit",
    "env_scrubbed": "the environment is not scrubbed",
    "project_readable": "project files are not readable by the sandbox user (they need to be readable by others)",
}


def _weaknesses(report: Mapping[str, Any]) -> list[str]:
    weak = [_WEAKNESS_TEXT[claim] for claim in CLAIMS if not report.get(claim)]
    if report.get("readonly_failed"):
        weak.append("read-only remount failed for " + ", ".join(report["readonly_failed"]))
    return weak


def run_sandboxed(code: str, project_root: str, limits: Limits | None = None, *, hidden: tuple[str, ...] = (),
                  cancel: threading.Event | None = None) -> SandboxRun:
    """Run one Python program in the sandbox and report how it ended.

    `hidden` names more folders under the project to keep out (the training store's folder); `cancel`
    kills the run when set. Raises SandboxUnavailable when no mode may run here."""
    limits = limits or Limits()
    project_root = os.path.realpath(project_root)
    if project_root == "/":
        raise SandboxUnavailable("run_python needs a project folder; the root of the filesystem cannot be shown "
                                 "to a program read-only without showing it everything")
    mode = _mode_for(limits)
    run, report = _launch(mode, code, project_root, limits, hidden=hidden, cancel=cancel)
    if mode.weak:
        run.warnings = ["weak mode (TONGYI_SANDBOX_WEAK=1): the program ran on a copy of the project, with no "
                        "read or network isolation"]
    if report.get("readonly_failed"):
        run.warnings.append("read-only remount failed for " + ", ".join(report["readonly_failed"]))
    if report.get("idmap_failed"):
        run.warnings.append("project files are readable only where others may read them (no idmapped mount: "
                            f"{report['idmap_failed']})")
    # A snippet that ended well may still mention MemoryError (caught, printed): no limit then.
    run.limit = None if run.ok else _limit_hit(run, limits)
    return run


def _limit_hit(run: SandboxRun, limits: Limits) -> str | None:
    if run.cancelled:
        return "the run's deadline passed; the program was killed"
    if run.timed_out:
        return f"wall-clock limit {limits.timeout_s:g} s"
    if run.signal == signal.SIGXCPU or (run.signal == signal.SIGKILL and run.cpu_s >= limits.cpu_s - 0.5):
        return f"CPU time limit {limits.cpu_s} s"
    if run.signal == signal.SIGXFSZ or "File too large" in run.stderr:
        return f"file size limit {FSIZE_MB} MiB"
    if "No space left on device" in run.stderr:
        return f"disk limit {limits.disk_mb} MiB"
    if "MemoryError" in run.stderr:
        return f"memory limit {limits.memory_mb} MiB (MemoryError)"
    if run.signal in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGKILL):
        return f"killed by {signal.Signals(run.signal).name} (possibly the memory limit {limits.memory_mb} MiB)"
    if "BlockingIOError" in run.stderr and "Resource temporarily unavailable" in run.stderr:
        return f"process limit {limits.nproc}"
    return None
