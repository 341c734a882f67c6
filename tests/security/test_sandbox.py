"""Attacks a snippet run by run_python might try, each against real files, sockets and processes.

Every attempt must fail inside the sandbox; where namespaces are missing here, the documented
refusal is asserted instead (see `sandbox_attacks.attempt`). Snippets are bounded by the sandbox's
wall-clock limit.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security.sandbox_attacks import REFUSAL, attempt, stdout_of, weak_env, weak_refusal
from tongyi_agent.tools.base import ToolContext
from tongyi_agent.tools.run_python import run_python
from tongyi_agent.tools.sandbox import CLAIMS, _others_can_run, sandbox_report

LEAK = "LEAKED:"


def _reader(path: str) -> str:
    """A snippet that prints LEAKED:<content> if it can read `path`, else why not."""
    return (f"try:\n    print({LEAK!r} + open({path!r}, 'rb').read(64).decode('latin-1'))\n"
            "except OSError as e:\n    print('refused', type(e).__name__)\n")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    (root / "data" / "sales.csv").write_text("region,revenue\nnorth,1200\nsouth,950\n")
    root.chmod(0o700)  # private, as most of root's folders are: the sandbox must still read it
    return root


@pytest.fixture
def ctx(project: Path) -> ToolContext:
    return ToolContext(root=project, env={"TONGYI_SANDBOX_TIMEOUT": "15"})


@pytest.fixture
def store(project: Path) -> Path:
    """The project's own trajectory store, a real SQLite file with a secret in it."""
    folder = project / ".tongyi_training"
    folder.mkdir()
    path = folder / "trajectories.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE runs (question TEXT)")
        db.execute("INSERT INTO runs VALUES ('STORE-SECRET-42')")
    path.chmod(0o644)
    return path


def test_the_report_is_measured_and_complete() -> None:
    report = sandbox_report()
    if not report["available"]:
        assert report["mechanism"] == "refused" and REFUSAL in report["summary"]
        return
    # Every claim comes from the probe program; this machine offers namespaces, so all must hold.
    for claim in CLAIMS:
        assert report[claim] is True, (claim, report["summary"])
    assert report["readonly_failed"] == [] and report["summary"] == "full isolation"


def test_the_weak_modes_report_names_what_it_lacks() -> None:
    """The same probe, run in the weak mode, finds the holes: nothing in the report is assumed."""
    report = sandbox_report(weak_env())
    if not report["available"]:
        assert "cannot reach the Python" in report["summary"]
        return
    assert report["mechanism"].startswith("weak")
    assert report["network_isolated"] is False and report["sockets_blocked"] is False
    assert report["host_files_hidden"] is False and report["pid_namespace"] is False
    assert report["capabilities_dropped"] is True and report["no_new_privs"] is True
    assert report["training_store_hidden"] is True  # the copy leaves it out
    assert "the snippet can reach the network" in report["summary"]


def test_etc_shadow_is_not_readable(ctx: ToolContext) -> None:
    result = attempt(ctx, _reader("/etc/shadow"))
    if result is not None:
        assert LEAK not in result.output and "refused FileNotFoundError" in result.output


def test_a_private_key_in_a_home_folder_is_not_readable(ctx: ToolContext, tmp_path: Path) -> None:
    key = tmp_path / "home" / ".ssh" / "id_rsa"
    key.parent.mkdir(parents=True)
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nKEY-SECRET\n")
    key.chmod(0o600)
    result = attempt(ctx, _reader(str(key)))
    if result is not None:
        assert LEAK not in result.output and "KEY-SECRET" not in result.output


def test_the_projects_own_store_is_hidden(ctx: ToolContext, store: Path) -> None:
    code = (_reader(str(store)) + _reader(".tongyi_training/trajectories.sqlite")
            + "import os\nprint('listing', os.listdir(os.path.join(os.environ['PROJECT_ROOT'], '.tongyi_training')))\n")
    result = attempt(ctx, code)
    if result is not None:
        assert LEAK not in result.output and "STORE-SECRET" not in result.output
        assert "listing []" in result.output
    assert sqlite3.connect(store).execute("SELECT question FROM runs").fetchone() == ("STORE-SECRET-42",)


def test_another_projects_store_is_not_readable(ctx: ToolContext, tmp_path: Path) -> None:
    other = tmp_path / "other-project" / ".tongyi_training" / "trajectories.sqlite"
    other.parent.mkdir(parents=True)
    other.write_text("OTHER-STORE-SECRET")
    other.chmod(0o644)  # even readable by everyone on the host
    result = attempt(ctx, _reader(str(other)))
    if result is not None:
        assert LEAK not in result.output and "OTHER-STORE-SECRET" not in result.output


@pytest.fixture
def host_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A world-writable Unix socket on the host, like a docker or database socket."""
    path = str(tmp_path / "service.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    os.chmod(path, 0o777)
    server.listen(1)
    server.settimeout(0.5)
    yield path, server
    server.close()


def test_a_world_writable_unix_socket_on_the_host_is_unreachable(ctx: ToolContext,
                                                                 host_socket: tuple[str, socket.socket]) -> None:
    path, server = host_socket
    code = (f"import socket\ns = socket.socket(socket.AF_UNIX)\ntry:\n    s.connect({path!r})\n    print('CONNECTED')\n"
            "except OSError as e:\n    print('refused', type(e).__name__)\n")
    result = attempt(ctx, code)
    if result is not None:
        assert "CONNECTED" not in result.output and "refused" in result.output
        with pytest.raises(TimeoutError):
            server.accept()


def test_an_abstract_unix_socket_on_the_host_is_unreachable(ctx: ToolContext) -> None:
    name = f"\0tongyi-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(name)
        server.listen(1)
        server.settimeout(0.5)
        code = (f"import socket\ns = socket.socket(socket.AF_UNIX)\ntry:\n    s.connect({name!r})\n"
                "    print('CONNECTED')\nexcept OSError as e:\n    print('refused', type(e).__name__)\n")
        result = attempt(ctx, code)
        if result is not None:
            assert "CONNECTED" not in result.output and "refused ConnectionRefusedError" in result.output
            with pytest.raises(TimeoutError):
                server.accept()


def test_filling_the_disk_stops_at_the_cap(ctx: ToolContext) -> None:
    code = ("import os\nwritten = 0\ntry:\n    for n in range(40):\n"
            "        with open(f'/tmp/fill{n}', 'wb') as f:\n            f.write(b'x' * (10 * 1024 * 1024))\n"
            "        written += 10\nexcept OSError as e:\n    print('stopped after', written, 'MiB:', e.strerror)\n"
            "    raise\n")
    result = attempt(ctx, code)
    if result is not None:
        assert not result.ok
        assert "No space left on device" in result.output and "disk limit 64 MiB" in result.output
        written = int(stdout_of(result).split("stopped after ")[1].split(" MiB")[0])
        assert written <= 64


def test_the_project_cannot_be_changed(ctx: ToolContext, project: Path) -> None:
    code = ("import os\nfor act in (lambda: open('data/sales.csv', 'a').write('x'), "
            "lambda: os.chmod('data/sales.csv', 0o777), lambda: os.remove('data/sales.csv'), "
            "lambda: open(os.path.join(os.environ['PROJECT_ROOT'], 'new.txt'), 'w')):\n"
            "    try:\n        act()\n        print('CHANGED')\n    except OSError as e:\n        print(e.strerror)\n")
    result = attempt(ctx, code)
    if result is not None:
        assert "CHANGED" not in result.output and result.output.count("Read-only file system") == 4
    assert (project / "data" / "sales.csv").read_text().endswith("south,950\n")
    assert stat.S_IMODE((project / "data" / "sales.csv").stat().st_mode) == 0o644
    assert not (project / "new.txt").exists()


def test_an_interpreter_under_tmp_is_reachable_and_read_only(project: Path, tmp_path: Path) -> None:
    # A clone (and its .venv) under /tmp: the sandbox's own /tmp must not hide the interpreter.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    ctx = ToolContext(root=project, env={"TONGYI_SANDBOX_TIMEOUT": "15",
                                         "TONGYI_SANDBOX_PYTHON": str(venv / "bin" / "python3")})
    code = (f"import sys\nprint(sys.executable, open('data/sales.csv').readline().strip())\n"
            f"try:\n    open({str(venv / 'planted.py')!r}, 'w')\nexcept OSError as e:\n    print(e.strerror)\n")
    result = attempt(ctx, code)
    if result is not None:
        assert result.ok, result.output
        assert f"{venv}/bin/python3 region,revenue" in result.output and "Read-only file system" in result.output
    assert not (venv / "planted.py").exists()


def test_no_capability_and_no_way_back_to_root(ctx: ToolContext) -> None:
    code = textwrap.dedent("""
        import os
        lines = open('/proc/self/status').read().splitlines()
        fields = dict(line.split(':\\t') for line in lines if ':\\t' in line)
        print({k: fields[k] for k in ('CapEff', 'CapPrm', 'CapBnd', 'CapAmb', 'NoNewPrivs')})
        attempts = (lambda: os.setuid(0), lambda: os.chroot('/tmp'),
                    lambda: os.mknod('/tmp/dev', 0o20666, os.makedev(1, 3)))
        for act in attempts:
            try:
                act()
                print('GAINED')
            except OSError as e:
                print(type(e).__name__)
        """)
    result = attempt(ctx, code)
    if result is not None:
        out = stdout_of(result)
        assert "'CapEff': '0000000000000000'" in out and "'CapBnd': '0000000000000000'" in out
        assert "'CapAmb': '0000000000000000'" in out and "'NoNewPrivs': '1'" in out
        assert "GAINED" not in out and out.count("PermissionError") == 3


def test_host_processes_are_invisible_and_cannot_be_signalled(ctx: ToolContext) -> None:
    me = os.getpid()
    code = ("import os, signal\npids = [int(p) for p in os.listdir('/proc') if p.isdigit()]\n"
            "print('pids', len(pids))\n"
            f"try:\n    os.kill({me}, signal.SIGTERM)\n    print('SIGNALLED')\nexcept OSError as e:\n"
            "    print(type(e).__name__)\n")
    result = attempt(ctx, code)
    if result is not None:
        out = stdout_of(result)
        assert "SIGNALLED" not in out and int(out.split("pids ")[1].split()[0]) <= 3  # init, snippet (and kin)
        # If the kill had landed, this test process would already be dead.


def test_the_host_loopback_network_is_unreachable(ctx: ToolContext) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.5)
        port = server.getsockname()[1]
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3)\nprint('CONNECTED')"
        result = attempt(ctx, code)
        if result is not None:
            assert not result.ok and "CONNECTED" not in stdout_of(result)
            with pytest.raises(TimeoutError):
                server.accept()


def test_a_file_named_in_a_string_is_not_cited_but_one_opened_is(ctx: ToolContext, project: Path) -> None:
    (project / "data" / "other.csv").write_text("x\n1\n")
    code = ("names = ['data/other.csv', 'data/missing.csv']  # named, never opened\n"
            "rows = open('data/sales.csv').read().splitlines()\nprint(len(rows))\n")
    result = attempt(ctx, code)
    if result is not None:
        assert result.ok, result.output
        assert [s.label() for s in result.sources] == ["data/sales.csv"]
        assert result.sources[0].text == "3"


def test_pandas_and_os_open_reads_are_cited(ctx: ToolContext, project: Path) -> None:
    (project / "notes.txt").write_text("n\n")
    code = ("import os\nfd = os.open(os.path.join(os.environ['PROJECT_ROOT'], 'notes.txt'), os.O_RDONLY)\n"
            "os.close(fd)\nimport csv\nprint(sum(int(r['revenue']) for r in csv.DictReader(open('data/sales.csv'))))\n"
            "open('out.txt', 'w').write('scratch')\n")
    result = attempt(ctx, code)
    if result is not None:
        assert result.ok, result.output
        assert sorted(s.label() for s in result.sources) == ["data/sales.csv", "notes.txt"]


def test_without_namespaces_and_without_opt_in_run_python_refuses(project: Path) -> None:
    ctx = ToolContext(root=project, env={"TONGYI_SANDBOX_NAMESPACES": "0"})
    result = run_python(ctx, "print('ran')")
    assert not result.ok and REFUSAL in result.output and "TONGYI_SANDBOX_WEAK=1" in result.output
    assert "ran" not in result.output


def test_weak_mode_runs_on_a_copy_and_never_writes_the_project(project: Path) -> None:
    project.chmod(0o755)  # the copy is made by us; as root, uid 65534 then owns it
    ctx = ToolContext(root=project, env=weak_env())
    code = ("import os\nroot = os.environ['PROJECT_ROOT']\n"
            "open(os.path.join(root, 'data', 'sales.csv'), 'w').write('gone')\n"
            "open('data/new.csv', 'w').write('new')\nprint(root)\n")
    result = run_python(ctx, code)
    if weak_refusal(result):
        return
    assert result.ok, result.output
    assert "weak mode" in result.output
    assert (project / "data" / "sales.csv").read_text().startswith("region,revenue")
    assert not (project / "data" / "new.csv").exists()
    copy = stdout_of(result).strip()
    assert copy != str(project) and not Path(copy).exists()  # the copy is gone too


def test_cleanup_never_follows_a_symlink_the_snippet_planted(project: Path, tmp_path: Path) -> None:
    """The weak mode's scratch folder is on the host: cleanup must not chmod or delete through links."""
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    victim.chmod(0o600)
    victim_dir = tmp_path / "victim-dir"
    victim_dir.mkdir(mode=0o500)
    (victim_dir / "keep.txt").write_text("keep")
    ctx = ToolContext(root=project, env=weak_env())
    code = (f"import os\nos.symlink({str(victim)!r}, 'link')\nos.symlink({str(victim_dir)!r}, 'dirlink')\n"
            "os.makedirs('locked/inner')\nopen('locked/inner/f', 'w').write('x')\n"
            "os.symlink('/etc', 'locked/inner/etc')\n"
            f"os.symlink({str(victim)!r}, 'locked/inner/link')\n"
            "os.chmod('locked/inner', 0o500)\nos.chmod('locked', 0o500)\nprint(os.getcwd())\n")
    result = run_python(ctx, code)
    if not weak_refusal(result):
        assert result.ok, result.output
        assert not Path(stdout_of(result).strip()).exists()
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600 and victim.read_text() == "mine"
    assert stat.S_IMODE(victim_dir.stat().st_mode) == 0o500 and (victim_dir / "keep.txt").exists()


CLEANUP_AS_USER = """
import importlib.util, os, stat, sys, tempfile
spec = importlib.util.spec_from_file_location("scratch", sys.argv[1])
scratch = importlib.util.module_from_spec(spec)
spec.loader.exec_module(scratch)
base = tempfile.mkdtemp(dir=sys.argv[2])
victim = os.path.join(base, "victim")
open(victim, "w").write("mine")
os.chmod(victim, 0o600)
tree = os.path.join(base, "tongyi-sandbox-1-x")
os.makedirs(os.path.join(tree, "locked", "inner"))
open(os.path.join(tree, "locked", "inner", "f"), "w").write("x")
os.symlink(victim, os.path.join(tree, "locked", "inner", "link"))
os.symlink(victim, os.path.join(tree, "locked", "link"))
os.chmod(os.path.join(tree, "locked", "inner"), 0o500)
os.chmod(os.path.join(tree, "locked"), 0o500)
scratch.remove_tree(tree)
print(oct(stat.S_IMODE(os.stat(victim).st_mode)), os.path.exists(tree), open(victim).read())
"""


def test_cleanup_repairs_read_only_folders_through_descriptors_only(tmp_path: Path) -> None:
    """As an unprivileged user (where rmtree needs the permission fix-up), links are never followed."""
    import subprocess
    import sys

    import tongyi_agent.tools.scratch as scratch_module

    work = Path(tempfile.mkdtemp(prefix="tongyi-cleanup-test-"))
    try:
        work.chmod(0o777)
        command = [sys.executable, "-I", "-c", CLEANUP_AS_USER, scratch_module.__file__, str(work)]
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            python = shutil.which("python3", path="/usr/bin:/bin")
            assert setpriv and python, "setpriv and a system python3 are needed to test as an unprivileged user"
            command = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", python, *command[1:]]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["0o600", "False", "mine"]
    finally:
        shutil.rmtree(work)


AS_ORDINARY_USER = """
import json, os, sys, types
src = sys.argv[1]
for name, path in (("tongyi_agent", src), ("tongyi_agent.tools", src + "/tools")):
    module = types.ModuleType(name)
    module.__path__ = [path]  # only the standard-library modules of the sandbox are imported
    sys.modules[name] = module
from tongyi_agent.tools import sandbox
project = sys.argv[2]
run = sandbox.run_sandboxed(sys.argv[3], project)
print(json.dumps({"report": sandbox.sandbox_report(), "stdout": run.stdout, "opened": run.opened}))
"""


def test_as_an_ordinary_user_the_user_namespace_mode_holds(tmp_path: Path) -> None:
    """The tests above run as root here; this runs the sandbox as uid 65534 (user namespace mode)."""
    import subprocess

    import tongyi_agent

    src = os.path.dirname(tongyi_agent.__file__)
    python = shutil.which("python3", path="/usr/bin:/bin")
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or not (python and setpriv) or not _others_can_run(python) or not _others_can_run(src + "/x"):
        pytest.skip("needs root, setpriv and a python3 and source tree every user can reach; the mode of "
                    "this user was tested above")
    work = Path(tempfile.mkdtemp(prefix="tongyi-userns-test-"))
    try:
        work.chmod(0o755)
        project = work / "project"
        (project / "data").mkdir(parents=True)
        (project / "data" / "x.csv").write_text("a\n1\n")
        secret = work / "secret"
        secret.write_text("ROOT-SECRET")
        code = ("import os\nprint(os.getuid(), open('data/x.csv').read().split()[1])\n"
                f"for p in ('/etc/shadow', {str(secret)!r}):\n    try:\n        open(p).read()\n"
                "        print('LEAKED')\n    except OSError as e:\n        print(type(e).__name__)\n")
        done = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", python, "-I", "-c",
                               AS_ORDINARY_USER, src, str(project), code], capture_output=True, text=True,
                              timeout=120, cwd=work)
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        assert data["report"]["mechanism"] == "namespaces (user, net, pid, ipc, mount)"
        assert data["report"]["summary"] == "full isolation", data["report"]
        assert data["stdout"].split() == ["0", "1", "FileNotFoundError", "FileNotFoundError"]
        assert data["opened"] == ["data/x.csv"]
    finally:
        shutil.rmtree(work)


def test_the_filesystem_root_is_not_a_project() -> None:
    result = run_python(ToolContext(root=Path("/")), "print(1)")
    assert not result.ok and "needs a project folder" in result.output
