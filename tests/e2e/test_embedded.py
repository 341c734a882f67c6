"""End to end on the real embedded model (Qwen2.5-Coder-1.5B, offline): the README's first command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.embedded

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tongyi_agent", *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd)


def test_demo_question_gets_cited_answer(tmp_path: Path) -> None:
    done = _cli("--root", str(REPO / "examples" / "demo"), "Which port does the billing service listen on?",
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    answer, _, rest = done.stdout.partition("Sources:")
    assert "8443" in answer
    assert "services/billing.md:7" in rest


def test_json_answer_on_generated_folder(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    (root / "protocols").mkdir(parents=True)
    (root / "protocols" / "centrifuge.txt").write_text(
        "Centrifuge protocol\n\nSpin the samples at 4200 rpm for 12 minutes at 4 degrees.\n")
    (root / "inventory.csv").write_text("item,count\npipette tips,40\nfalcon tubes,120\n")
    done = _cli("--root", str(root), "--json", "At how many rpm are samples centrifuged?", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert "4200" in data["answer"]
    assert {"path": "protocols/centrifuge.txt", "line": 3,
            "text": "Spin the samples at 4200 rpm for 12 minutes at 4 degrees."} in data["sources"]
    assert data["model"] == "qwen2.5-coder-1.5b-instruct-q4_k_m"
    assert data["usage"]["model_calls"] >= 2  # it looked before answering
    assert any(step["type"] == "tool" and step["ok"] for step in data["steps"])


def test_run_python_computes_from_a_csv_and_cites_it(tmp_path: Path) -> None:
    root = tmp_path / "sales"
    (root / "data").mkdir(parents=True)
    (root / "data" / "sales.csv").write_text(
        "region,month,revenue\nnorth,jan,1200\nsouth,jan,950\nnorth,feb,1310\nsouth,feb,1005\neast,feb,780\n")
    done = _cli("--root", str(root), "--json",
                "What is the total revenue over all rows of data/sales.csv? Compute it.", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert "5245" in data["answer"].replace(",", "")
    assert any(s["type"] == "tool" and s["name"] == "run_python" and s["ok"] for s in data["steps"])
    assert "data/sales.csv" in [s["path"] for s in data["sources"]]
    assert data["verification_rate"] == 1.0


def test_two_confirmed_runs_come_back_as_worked_examples(tmp_path: Path) -> None:
    """The experience memory on the real model: two runs confirmed with --feedback are shown, in the ReAct
    dialect, to a similar later question, which is still answered from the files."""
    root = tmp_path / "services"
    root.mkdir()
    for name, port in (("billing", 8443), ("auth", 9120), ("search", 7310)):
        (root / f"{name}.md").write_text(f"# {name.title()} service\n\nOwner: platform team.\n"
                                         f"The {name} service listens on port {port}.\n")
    confirmed = []
    for name, port in (("billing", 8443), ("auth", 9120)):
        done = _cli("--root", str(root), "--train", "--json", f"Which port does the {name} service listen on?",
                    cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        assert str(port) in data["answer"]
        rated = _cli("--root", str(root), "--feedback", data["run_id"], "1", cwd=tmp_path)
        assert rated.returncode == 0, rated.stderr
        confirmed.append(data["run_id"])
    listed = json.loads(_cli("memory", "list", "--json", "--root", str(root), cwd=tmp_path).stdout)
    assert sorted(item["run_id"] for item in listed) == sorted(confirmed)

    done = _cli("--root", str(root), "--json", "--verbose", "Which port does the search service listen on?",
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert sorted(data["experiences"]) == sorted(item["id"] for item in listed)
    assert "worked examples from experiences" in done.stderr
    assert "7310" in data["answer"]
