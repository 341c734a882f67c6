"""run_python: results, limits, and escapes that must fail.

Each escape test needs one protection of the sandbox; where this machine cannot provide it
(see `sandbox_report()`), the test is skipped with the report's reason instead of passing
vacuously. Every snippet is bounded by a wall-clock limit, so the file runs in seconds.
"""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

import pytest

from tests.security.sandbox_attacks import processes_with
from tongyi_agent.tools.base import Tool, ToolContext, ToolError
from tongyi_agent.tools.run_python import run_python
from tongyi_agent.tools.sandbox import sandbox_report


def _require(protection: str) -> None:
    report = sandbox_report()
    if not report[protection]:
        pytest.skip(f"{protection} not enforced here: {report['summary']}")


def _ctx(root: Path, **env: str) -> ToolContext:
    return ToolContext(root=root, env=env)


def test_schema_comes_from_the_signature() -> None:
    tool = Tool.from_function(run_python)
    assert tool.parameters["required"] == ["code"]
    assert "PROJECT_ROOT" in tool.description


def test_sandbox_report_describes_the_protections() -> None:
    report = sandbox_report()
    for key in ("network_isolated", "filesystem_readonly", "pid_limit", "env_scrubbed"):
        assert isinstance(report[key], bool)
    assert isinstance(report["mechanism"], str)
    assert isinstance(report["summary"], str)


def test_prints_and_computes(ctx: ToolContext) -> None:
    result = run_python(ctx, "print(sum(range(10)))")
    assert result.ok
    assert result.output.startswith("exit status: 0\nstdout:\n45\nstderr:")


def test_reads_a_csv_from_the_project_root(project: Path, ctx: ToolContext) -> None:
    (project / "data.csv").write_text("name,amount\na,3\nb,4\n")
    code = ("import csv, os\n"
            "with open(os.path.join(os.environ['PROJECT_ROOT'], 'data.csv'), newline='') as f:\n"
            "    print(sum(int(row['amount']) for row in csv.DictReader(f)))\n")
    result = run_python(ctx, code)
    assert result.ok, result.output
    assert "stdout:\n7\n" in result.output


def test_reads_a_csv_with_pandas(project: Path, ctx: ToolContext) -> None:
    pytest.importorskip("pandas")
    (project / "data.csv").write_text("name,amount\na,3\nb,4\n")
    code = "import os, pandas as pd\nprint(pd.read_csv(os.environ['PROJECT_ROOT'] + '/data.csv')['amount'].sum())"
    result = run_python(ctx, code)
    assert result.ok, result.output
    assert "stdout:\n7\n" in result.output


def test_an_exception_fails_with_its_name(ctx: ToolContext) -> None:
    result = run_python(ctx, "def f():\n    return {}['missing']\nf()\n")
    assert not result.ok
    assert "exit status: 1" in result.output
    assert "KeyError: 'missing'" in result.output
    assert "Traceback" in result.output


def test_empty_code_is_refused(ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="empty"):
        run_python(ctx, "  \n")


def test_scratch_folder_is_writable_and_removed_afterwards(ctx: ToolContext) -> None:
    code = "import os\nopen('out.txt', 'w').write('hello')\nprint(open('out.txt').read())\nprint(os.getcwd())"
    result = run_python(ctx, code)
    assert result.ok, result.output
    stdout = result.output.split("stdout:\n")[1].split("\nstderr:")[0].splitlines()
    assert stdout[0] == "hello"
    assert not Path(stdout[1]).exists()


def test_long_output_is_capped(ctx: ToolContext) -> None:
    result = run_python(ctx, "print('x' * 100_000)\nprint('the end')")
    assert result.ok
    assert "[output truncated" in result.output
    assert "the end" in result.output  # the tail is kept
    assert len(result.output) < 25_000


def test_parent_secrets_are_not_visible(ctx: ToolContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-do-not-leak-1234")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_test_do_not_leak")
    code = "import os\nprint(sorted(os.environ))\nprint(os.environ.get('OPENAI_API_KEY'))"
    result = run_python(ctx, code)
    assert result.ok, result.output
    assert "do-not-leak" not in result.output and "do_not_leak" not in result.output
    assert "OPENAI_API_KEY" not in result.output
    assert "['HOME', 'LANG', 'PATH', 'PROJECT_ROOT', 'PYTHONDONTWRITEBYTECODE', 'PYTHONIOENCODING']" in result.output


def test_cannot_write_the_project(project: Path, ctx: ToolContext) -> None:
    _require("filesystem_readonly")
    target = project / "written.txt"
    result = run_python(ctx, f"open({str(target)!r}, 'w').write('escaped')")
    assert not result.ok
    assert "Read-only file system" in result.output
    assert not target.exists()


def test_the_sandboxs_tmp_is_its_own(ctx: ToolContext) -> None:
    _require("host_files_hidden")
    target = Path(f"/tmp/tongyi-escape-{uuid.uuid4().hex}")
    try:
        result = run_python(ctx, f"open({str(target)!r}, 'w').write('inside')\nprint(open({str(target)!r}).read())")
        assert result.ok, result.output
        assert "stdout:\ninside\n" in result.output
        assert not target.exists()  # written to the sandbox's own tmpfs, gone with it
    finally:
        target.unlink(missing_ok=True)


def test_cannot_reach_a_local_server(ctx: ToolContext) -> None:
    _require("network_isolated")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.5)
        port = server.getsockname()[1]
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3)\nprint('connected')"
        result = run_python(ctx, code)
        assert not result.ok
        assert "connected" not in result.output.split("stderr:")[0]
        with pytest.raises(TimeoutError):
            server.accept()


def test_cannot_reach_an_external_address_and_does_not_hang(ctx: ToolContext) -> None:
    _require("network_isolated")
    started = time.monotonic()
    # 203.0.113.0/24 is reserved for documentation: never a real host.
    result = run_python(ctx, "import socket\nsocket.create_connection(('203.0.113.7', 80), timeout=10)")
    assert not result.ok
    assert "unreachable" in result.output.lower()
    assert time.monotonic() - started < 5


def test_a_fork_bomb_is_bounded(ctx: ToolContext) -> None:
    _require("pid_limit")
    started = time.monotonic()
    result = run_python(_ctx(ctx.root, TONGYI_SANDBOX_TIMEOUT="10"), "import os\nwhile True:\n    os.fork()\n")
    assert not result.ok
    assert time.monotonic() - started < 12


def test_no_process_outlives_the_run(ctx: ToolContext) -> None:
    _require("pid_namespace")
    marker = f"tongyi-leftover-{uuid.uuid4().hex}"
    # A detached child in its own session, which would survive a plain process-group kill.
    code = ("import subprocess, sys, time\n"
            f"child = subprocess.Popen([sys.executable, '-c', 'import time  # {marker}\\n"
            "while True: time.sleep(0.1)'], start_new_session=True)\n"
            "time.sleep(0.5)\nprint('child alive', child.poll() is None)")
    result = run_python(_ctx(ctx.root, TONGYI_SANDBOX_TIMEOUT="5"), code)
    assert result.ok, result.output
    assert "child alive True" in result.output  # it really ran, so its end below means something
    deadline = time.monotonic() + 3
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with(marker) == []


def test_a_huge_allocation_fails_with_memory_error(ctx: ToolContext) -> None:
    result = run_python(ctx, "x = bytearray(4 * 1024**3)")
    assert not result.ok
    assert "MemoryError" in result.output
    assert "memory limit" in result.output


def test_a_growing_list_hits_the_memory_limit(ctx: ToolContext) -> None:
    started = time.monotonic()
    code = "x = []\nwhile True:\n    x.append(bytearray(10**6))"
    result = run_python(_ctx(ctx.root, TONGYI_SANDBOX_MEMORY_MB="256", TONGYI_SANDBOX_TIMEOUT="10"), code)
    assert not result.ok
    assert "memory limit 256 MiB" in result.output
    assert time.monotonic() - started < 12


def test_a_sleeping_loop_is_killed_at_the_wall_clock_limit(ctx: ToolContext) -> None:
    started = time.monotonic()
    result = run_python(_ctx(ctx.root, TONGYI_SANDBOX_TIMEOUT="1"), "import time\nprint('start')\n"
                        "while True:\n    time.sleep(1)")
    assert not result.ok
    assert "killed: wall-clock limit 1 s" in result.output
    assert "start" in result.output  # what it printed before is kept
    assert time.monotonic() - started < 4


def test_a_busy_loop_is_killed_at_the_cpu_limit(ctx: ToolContext) -> None:
    started = time.monotonic()
    result = run_python(_ctx(ctx.root, TONGYI_SANDBOX_TIMEOUT="10", TONGYI_SANDBOX_CPU="1"), "while True:\n    pass")
    assert not result.ok
    assert "CPU time limit" in result.output
    assert time.monotonic() - started < 5


def test_a_huge_file_hits_the_file_size_limit(ctx: ToolContext) -> None:
    result = run_python(ctx, "with open('big.bin', 'wb') as f:\n    f.write(b'x' * (32 * 1024**2))")
    assert not result.ok
    assert "file size limit" in result.output


def test_project_files_readable_relative_to_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sales.csv").write_text("region,revenue\nnorth,1200\nsouth,950\n")
    code = ("import csv\nrows = list(csv.DictReader(open('data/sales.csv')))\n"
            "print(sum(int(r['revenue']) for r in rows))\n"
            "open('notes.txt', 'w').write('scratch ok')\nprint(open('notes.txt').read())\n"
            "try:\n    open('data/new.csv', 'w')\nexcept OSError as e:\n    print('refused', type(e).__name__)\n")
    result = run_python(ToolContext(root=tmp_path), code)
    assert result.ok, result.output
    assert "2150" in result.output and "scratch ok" in result.output and "refused" in result.output
    assert not (tmp_path / "data" / "new.csv").exists() and not (tmp_path / "notes.txt").exists()
    assert (tmp_path / "data" / "sales.csv").read_text().startswith("region")  # cleanup kept the original
    assert [s.label() for s in result.sources] == ["data/sales.csv"]
    assert "2150" in result.sources[0].text
