"""The small init process of a sandbox: builds the snippet's world, starts it, reports how it ended.

Executed as a script (`python -I -S -B sandbox_init.py CONFIG`), never imported by the agent, so it uses
the standard library alone. With namespaces it runs as PID 1 of a fresh PID namespace, in fresh mount
and network namespaces (and a user namespace when the caller is not root), where it:

1. builds a new root on a small tmpfs: read-only binds of the system (/usr, /lib..., a few /etc files,
   the Python installation), /proc of the new PID namespace, the device nodes a program needs, one
   size-limited tmpfs shared by /tmp, /run, /dev/shm and the home folder, and the project read-only at
   its own path with its training store hidden; then `pivot_root` into it and detaches the host's tree,
   so /root, /home, other projects, host sockets and /etc/shadow simply do not exist in there;
2. starts the snippet with every capability dropped, as uid 65534 when the caller is real root,
   with `no_new_privs`, resource limits and PR_SET_PDEATHSIG;
3. keeps its own deadline (SIGALRM), so the snippet ends at its limit even if the caller is gone.

Without namespaces (weak mode, opt-in) steps 2 and 3 still happen; step 1 is replaced by a copy of the
project that the caller made.

Stdin carries {"snippet": code, "bootstrap": code}. The status fd receives one JSON report.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import resource
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from typing import Any

SANDBOX_UID = 65534
HOME = "/home/sandbox"

# <sys/mount.h>; statvfs flags share the values of the ones we keep.
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 32, 1024, 2048, 4096, 16384
MS_PRIVATE, MS_RELATIME = 1 << 18, 1 << 21
ST_RELATIME = 4096
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_KEEPCAPS, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 8, 24, 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
# The new mount API has one number on every architecture (alpha aside).
SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR = 428, 429, 442
OPEN_TREE_CLONE, AT_EMPTY_PATH, MOVE_MOUNT_F_EMPTY_PATH, AT_FDCWD = 1, 0x1000, 0x4, -100
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV, MOUNT_ATTR_IDMAP = 0x1, 0x2, 0x4, 0x100000
CLONE_NEWUSER = 0x10000000

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What programs read from /etc. Never shadow, gshadow, sudoers, ssh keys or the host's passwd (ours is written).
ETC_KEEP = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "timezone",
            "nsswitch.conf", "hosts", "mime.types", "ssl", "ca-certificates", "fonts", "os-release",
            "protocols", "services")
DEVICES = ("null", "zero", "full", "random", "urandom")

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


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def enc(s):
        return (s.encode() if s is not None else None)
    _check(_c().mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {target}")


def _kept_flags(path: str) -> int:
    """Flags a user namespace locks on a bind mount (nosuid, nodev, atime...): a remount must repeat them."""
    flags = os.statvfs(path).f_flag
    kept = flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME)
    return kept | (MS_RELATIME if flags & ST_RELATIME else 0)


class _View:
    """The new root, assembled under `base` before pivot_root. Records every failed read-only remount."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.readonly_failed: list[str] = []
        self.idmap_failed: str | None = None

    def at(self, path: str) -> str:
        return self.base + path

    def mkdirs(self, path: str, mode: int = 0o755) -> None:
        os.makedirs(self.at(path), mode=mode, exist_ok=True)

    def bind(self, source_fd: int, target: str, *, is_dir: bool, device: bool = False) -> None:
        """Bind the object open as `source_fd` at `target`, then make that mount read-only."""
        if is_dir:
            self.mkdirs(target)
        else:
            self.mkdirs(os.path.dirname(target))
            with open(self.at(target), "a", encoding="utf-8"):
                pass
        dst = self.at(target)
        _mount(f"/proc/self/fd/{source_fd}", dst, None, MS_BIND)
        try:
            extra = 0 if device else MS_NOSUID | MS_NODEV
            _mount(None, dst, None, MS_REMOUNT | MS_BIND | MS_RDONLY | extra | _kept_flags(dst))
        except OSError as exc:
            self.readonly_failed.append(f"{target} ({exc.strerror})")


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64), ("propagation", ctypes.c_uint64),
                ("userns_fd", ctypes.c_uint64)]


def _userns_mapping_root_to(uid: int, proc: str) -> int:
    """An fd of a fresh user namespace whose uid/gid 0 is `uid` outside (for an idmapped mount).
    `proc` is a proc mount of our PID namespace (the host's /proc would name another process)."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child only holds the namespace open until we have its fd
        try:
            os.close(ready_r)
            code = 0 if _c().unshare(CLONE_NEWUSER) == 0 else 1
            os.write(ready_w, bytes([code]))
            signal.pause()
        finally:
            os._exit(0)
    os.close(ready_w)
    try:
        if os.read(ready_r, 1) != b"\0":
            raise OSError("unshare(CLONE_NEWUSER) failed")
        for name in ("uid_map", "gid_map"):
            _write(f"{proc}/{pid}/{name}", f"0 {uid} 1\n")
        return os.open(f"{proc}/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _idmapped_bind(source_fd: int, target: str, uid: int, proc: str) -> None:
    """Bind `source_fd` read-only at `target` with root's files shown as owned by `uid`.

    As real root the snippet runs as uid 65534; a project folder of root's that is private (0700, as
    pytest and `umask 077` make them) would be unreadable to it. The idmapped mount lets it read the
    project like its owner, read-only, without any capability and without touching the files."""
    libc = _c()
    libc.syscall.restype = ctypes.c_long
    tree = libc.syscall(ctypes.c_long(SYS_OPEN_TREE), ctypes.c_int(source_fd), b"",
                        ctypes.c_uint(OPEN_TREE_CLONE | os.O_CLOEXEC | AT_EMPTY_PATH))
    if tree < 0:
        _check(-1, "open_tree")
    userns = _userns_mapping_root_to(uid, proc)
    try:
        attr = _MountAttr(MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, 0, userns)
        _check(libc.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(tree), b"", ctypes.c_uint(AT_EMPTY_PATH),
                            ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))), "mount_setattr")
        _check(libc.syscall(ctypes.c_long(SYS_MOVE_MOUNT), ctypes.c_int(tree), b"", ctypes.c_int(AT_FDCWD),
                            target.encode(), ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH)), "move_mount")
    finally:
        os.close(userns)
        os.close(tree)


def _open_path(path: str) -> int | None:
    try:
        return os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return None


def _under(path: str, parents: list[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in parents)


def _build_view(config: Mapping[str, Any]) -> tuple[_View, str]:
    """Build the new root and pivot into it. Returns the view (with what failed) and the snippet's cwd.

    Runs as (namespace) root, before the snippet exists."""
    project = config["project_root"]
    # Open every source before the host tree is covered: the project may live under /tmp, which
    # the new root's tmpfs hides.
    sources: list[tuple[str, int, bool]] = []
    for path in SYSTEM_DIRS:
        if os.path.isdir(path) and not os.path.islink(path):
            fd = _open_path(path)
            if fd is not None:
                sources.append((path, fd, True))
    bound = [p for p, _, _ in sources]
    # The interpreter's folders are bound after the scratch tmpfs: a venv under /tmp or the home
    # folder would be covered by it otherwise.
    prefixes: list[tuple[str, int]] = []
    for prefix in config["python_prefixes"]:
        if os.path.isdir(prefix) and not _under(prefix, bound):
            fd = _open_path(prefix)
            if fd is not None:
                prefixes.append((prefix, fd))
                bound.append(prefix)
    etc = [(f"/etc/{n}", _open_path(f"/etc/{n}")) for n in ETC_KEEP if os.path.lexists(f"/etc/{n}")]
    devices = [(f"/dev/{n}", _open_path(f"/dev/{n}")) for n in DEVICES if os.path.exists(f"/dev/{n}")]
    project_fd = os.open(project, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    links = {p: os.readlink(p) for p in SYSTEM_DIRS if os.path.islink(p)}
    etc_links = {p: os.readlink(p) for p, _ in etc if os.path.islink(p)}

    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # never propagate anything to the host
    base = "/tmp"  # any existing directory: it is covered by the new root's tmpfs, in this namespace only
    _mount("tongyi-root", base, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=0755")
    view = _View(base)
    for path, fd, _ in sources:
        view.bind(fd, path, is_dir=True)
    for path, target in links.items():
        os.symlink(target, view.at(path))
    view.mkdirs("/etc")
    for path, fd in etc:
        if path in etc_links:
            os.symlink(etc_links[path], view.at(path))
        elif fd is not None:
            view.bind(fd, path, is_dir=os.path.isdir(f"/proc/self/fd/{fd}"))
    _write(view.at("/etc/passwd"), f"root:x:0:0:root:{HOME}:/bin/sh\n"
                                   f"sandbox:x:{SANDBOX_UID}:{SANDBOX_UID}:sandbox:{HOME}:/bin/sh\n")
    _write(view.at("/etc/group"), f"root:x:0:\nsandbox:x:{SANDBOX_UID}:\n")
    view.mkdirs("/dev")
    for path, fd in devices:
        if fd is not None:
            view.bind(fd, path, is_dir=False, device=True)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, view.at(f"/dev/{name}"))
    view.mkdirs("/proc")
    _mount("proc", view.at("/proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)

    # One size-limited tmpfs behind /tmp, /run, /dev/shm and the home folder: the disk cap.
    view.mkdirs("/.data")
    _mount("tongyi-data", view.at("/.data"), "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={config['disk_mb']}m,mode=0755")
    owner = SANDBOX_UID if config["drop_uid"] else 0
    for name, target, mode in (("tmp", "/tmp", 0o1777), ("run", "/run", 0o755), ("shm", "/dev/shm", 0o1777),
                               ("home", HOME, 0o700)):
        os.mkdir(view.at(f"/.data/{name}"))
        os.chmod(view.at(f"/.data/{name}"), mode)
        os.chown(view.at(f"/.data/{name}"), owner, owner)
        view.mkdirs(target)
        _mount(view.at(f"/.data/{name}"), view.at(target), None, MS_BIND)
    _check(_c().umount2(view.at("/.data").encode(), MNT_DETACH), "umount data")
    os.rmdir(view.at("/.data"))
    for path, fd in prefixes:
        view.bind(fd, path, is_dir=True)

    # The project, read-only at its own path (citations and PROJECT_ROOT stay valid); not recursive:
    # whatever is mounted below it stays out. Its training store is covered by an empty read-only tmpfs.
    idmapped = False
    if config["drop_uid"]:
        view.mkdirs(project)
        try:
            _idmapped_bind(project_fd, view.at(project), SANDBOX_UID, view.at("/proc"))
            idmapped = True
        except OSError as exc:  # this filesystem cannot: a plain bind, where files must be readable by others
            view.idmap_failed = f"{project} ({exc.strerror or exc})"
    if not idmapped:
        view.bind(project_fd, project, is_dir=True)
    for hidden in config["hidden"]:
        target = view.at(hidden)
        if os.path.isdir(target):
            _mount("tongyi-hidden", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "size=4k")
        elif os.path.lexists(target):
            _mount("/dev/null", target, None, MS_BIND)
            try:
                _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | _kept_flags(target))
            except OSError as exc:
                view.readonly_failed.append(f"{hidden} ({exc.strerror})")
    for fd in [fd for _, fd, _ in sources] + [fd for _, fd in etc + devices if fd is not None] + [project_fd]:
        os.close(fd)

    _pivot(base)
    try:
        _mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    except OSError as exc:
        view.readonly_failed.append(f"/ ({exc.strerror})")
    return view, HOME


def _pivot(new_root: str) -> None:
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(f"pivot_root: unknown system call number on {platform.machine()}")
    os.chdir(new_root)
    # pivot_root(".", "."): the old root ends up stacked under the new one; detach it right away.
    _check(_c().syscall(ctypes.c_long(number), b".", b"."), "pivot_root")
    _check(_c().umount2(b".", MNT_DETACH), "detach the host's root")
    os.chdir("/")


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def _link_project(cwd: str, project: str, hidden: list[str]) -> None:
    """Symlink the project's top-level entries into the working directory: programs (and small models)
    open "data/sales.csv" relative to it. Hidden entries (.git, the training store) are left out."""
    try:
        entries = os.listdir(project)
    except OSError:
        return
    for name in entries:
        path = os.path.join(project, name)
        if not name.startswith(".") and name not in ("snippet.py", "bootstrap.py") and path not in hidden:
            os.symlink(path, os.path.join(cwd, name))


def _drop_privileges(config: Mapping[str, Any]) -> None:
    """Runs in the snippet's process before exec: limits, then every privilege."""
    libc = _c()
    # Die with the init (which dies with the caller, and at its own deadline).
    _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
    if os.getppid() != config["_init_pid"]:
        os._exit(1)
    mib = 1024 * 1024
    for which, soft, hard in ((resource.RLIMIT_CPU, config["cpu_s"], config["cpu_s"] + 1),
                              (resource.RLIMIT_AS, config["memory_mb"] * mib, config["memory_mb"] * mib),
                              (resource.RLIMIT_NPROC, config["nproc"], config["nproc"]),
                              (resource.RLIMIT_FSIZE, config["fsize_mb"] * mib, config["fsize_mb"] * mib),
                              (resource.RLIMIT_NOFILE, config["nofile"], config["nofile"]),
                              (resource.RLIMIT_CORE, 0, 0)):
        resource.setrlimit(which, (soft, hard))
    if os.geteuid() == 0:
        # Empty the bounding set first (needs CAP_SETPCAP), so nothing can be regained by exec.
        with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as handle:
            last = int(handle.read())
        for cap in range(last + 1):
            _check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap}")
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    if config["drop_uid"]:
        os.setgroups([])
        os.setresgid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID)
        os.setresuid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID)  # clears every capability set
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)(0, 0, 0, 0, 0, 0)  # effective, permitted, inheritable: none
    _check(libc.capset(header, data), "capset")
    # No setuid binary (sudo, su, ping) can give privileges back.
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


class _Deadline(Exception):
    pass


def _on_alarm(_signum: int, _frame: Any) -> None:
    raise _Deadline()


def _kill_all(child_pid: int, pid_namespace: bool) -> None:
    try:
        if pid_namespace:
            os.kill(-1, signal.SIGKILL)  # from PID 1: every other process of the namespace
        else:
            os.killpg(child_pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(child_pid: int, on_child: Callable[[int, Any], None]) -> None:
    """Reap until the snippet itself has ended (as PID 1 we also collect orphans)."""
    while True:
        pid, wait_status, usage = os.wait4(-1, 0)
        if pid == child_pid:
            on_child(wait_status, usage)
            return


def _init_main(config: dict[str, Any]) -> int:
    status = os.fdopen(config["status_fd"], "w", encoding="utf-8")
    report: dict[str, Any] = {}
    payload = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    config["_init_pid"] = os.getpid()
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, config["timeout_s"])  # our own deadline, whatever the caller does
    pid_namespace = os.getpid() == 1
    child: subprocess.Popen[bytes] | None = None
    try:
        if config["isolate_fs"]:
            view, cwd = _build_view(config)
            report["readonly_failed"] = view.readonly_failed
            if view.idmap_failed:
                report["idmap_failed"] = view.idmap_failed
            _link_project(cwd, config["project_root"], config["hidden"])
        else:
            cwd = config["cwd"]
        for name in ("snippet.py", "bootstrap.py"):
            _write(os.path.join(cwd, name), payload[name.removesuffix(".py")])
        owner = SANDBOX_UID if config["drop_uid"] else os.getuid()
        os.chown(cwd, owner, owner)
        env = dict(config["env"], HOME=cwd, PROJECT_ROOT=config["snippet_root"])
        argv = [config["python"], "-I", "-B", "-u", "-X", "utf8", "bootstrap.py", "snippet.py"]
        child = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, pass_fds=(config["log_fd"],),
                                 start_new_session=not pid_namespace,
                                 preexec_fn=lambda: _drop_privileges(config))
        os.close(config["log_fd"])

        def ended(wait_status: int, usage: Any) -> None:
            report["cpu"] = round(usage.ru_utime + usage.ru_stime, 3)
            if os.WIFSIGNALED(wait_status):
                report["exit"], report["signal"] = None, os.WTERMSIG(wait_status)
            else:
                report["exit"] = os.WEXITSTATUS(wait_status)

        _reap(child.pid, ended)
        signal.setitimer(signal.ITIMER_REAL, 0)
    except _Deadline:
        report["deadline"] = True
        if child is not None:
            _kill_all(child.pid, pid_namespace)
            with contextlib.suppress(ChildProcessError):
                _reap(child.pid, lambda _s, usage: report.update(cpu=round(usage.ru_utime + usage.ru_stime, 3)))
        report.update(exit=None, signal=signal.SIGKILL)
    except Exception as exc:  # report any setup failure to the parent instead of a bare crash
        signal.setitimer(signal.ITIMER_REAL, 0)
        report["error"] = f"{type(exc).__name__}: {exc}"
    if child is not None:
        _kill_all(child.pid, pid_namespace)  # leftovers: detached grandchildren
    status.write(json.dumps(report))
    status.close()
    return 0


if __name__ == "__main__" and len(sys.argv) == 2:
    sys.exit(_init_main(json.loads(sys.argv[1])))
