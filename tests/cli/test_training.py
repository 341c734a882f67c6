"""Recording runs as training data through the CLI: --train, stats, exports, feedback, reset, secrets."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.fakes.openai_server import FakeOpenAIServer
from tongyi_agent.cli.app import app
from tongyi_agent.tools import tool_names

SEARCH = {"tool_calls": [{"name": "search_files", "arguments": {"query": "billing port"}}]}
ANSWER = {"content": "The billing service listens on port 8443."}
FAKE_KEY = "sk-or-v1-0123456789abcdef0123456789abcdef"


def _ask(runner: CliRunner, server: FakeOpenAIServer, project: Path, question: str, *extra: str,
         env: dict[str, str] | None = None) -> dict:
    result = runner.invoke(app, ["--root", str(project), "--base-url", server.base_url, "--model-id", "fake",
                                 "--json", *extra, question], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _record_three(runner: CliRunner, server: FakeOpenAIServer, project: Path) -> list[str]:
    server.add(SEARCH, ANSWER, SEARCH, ANSWER, {"content": "I do not know."})
    ids = [_ask(runner, server, project, "Which port does billing use?", "--train")["run_id"] for _ in range(2)]
    ids.append(_ask(runner, server, project, "Who owns billing?", "--train")["run_id"])
    return ids


def test_three_runs_recorded_then_stats_and_export(runner: CliRunner, project: Path,
                                                   openai_server: FakeOpenAIServer, tmp_path: Path) -> None:
    ids = _record_three(runner, openai_server, project)
    assert len(set(ids)) == 3 and all(ids)
    assert (project / ".tongyi_training" / "trajectories.sqlite").is_file()

    stats = runner.invoke(app, ["--root", str(project), "--training-stats", "--json"])
    assert stats.exit_code == 0, stats.output
    data = json.loads(stats.stdout)
    assert data["total_interactions"] == 3
    assert data["successful_interactions"] == 3
    assert set(data["average_reward"]) == {"research_efficiency", "response_quality", "tool_usage", "response_speed"}

    out = tmp_path / "nested" / "out.json"
    exported = runner.invoke(app, ["--root", str(project), "--export-training-data", str(out)])
    assert exported.exit_code == 0, exported.output
    doc = json.loads(out.read_text())
    assert {"version", "export_timestamp", "config", "metrics", "interactions"} <= set(doc)
    assert doc["metrics"]["total_interactions"] == 3
    rows = {row["run_id"]: row for row in doc["interactions"]}
    assert set(rows) == set(ids)
    first = rows[ids[0]]
    assert first["query"] == "Which port does billing use?"
    assert first["response"] == "The billing service listens on port 8443."
    assert first["tools_used"] == ["search_files"]
    assert first["success"] is True
    assert 0.0 <= first["reward"] <= 1.0
    assert first["rewards"]["tool_usage"] == 1.0
    assert rows[ids[2]]["tools_used"] == []
    with sqlite3.connect(project / ".tongyi_training" / "trajectories.sqlite") as conn:
        metadata = json.loads(conn.execute("SELECT metadata FROM runs WHERE id = ?", (ids[0],)).fetchone()[0])
    assert metadata["verification_rate"] == 1.0  # "port 8443" verified against services/billing.md:3
    assert metadata["evidence"][0]["source"] == "services/billing.md:3"


def test_sft_export_loads_with_datasets_and_renders_through_chat_template(
        runner: CliRunner, project: Path, openai_server: FakeOpenAIServer, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from tongyi_agent.config import user_cache_dir
    from tongyi_agent.llm.weights import WEIGHT_SETS, ensure_weights

    _record_three(runner, openai_server, project)
    out = tmp_path / "sft.jsonl"
    result = runner.invoke(app, ["--root", str(project), "--export-training-data", str(out), "--format", "sft"])
    assert result.exit_code == 0, result.output
    dataset = datasets.load_dataset("json", data_files=str(out), split="train")
    assert len(dataset) == 3
    example = json.loads(out.read_text().splitlines()[0])
    roles = [m["role"] for m in example["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    call = example["messages"][2]["tool_calls"][0]
    assert call["function"]["name"] == "search_files" and json.loads(call["function"]["arguments"])
    assert example["messages"][3]["tool_call_id"] == call["id"]
    assert {t["function"]["name"] for t in example["tools"]} == set(tool_names())

    # Render through the embedded model's own (Qwen2.5) chat template, read from the GGUF.
    gguf = ensure_weights(WEIGHT_SETS["qwen2.5-coder-1.5b"], user_cache_dir())
    template = Llama(model_path=str(gguf), vocab_only=True, verbose=False).metadata["tokenizer.chat_template"]
    formatter = Jinja2ChatFormatter(template, eos_token="<|im_end|>", bos_token="", add_generation_prompt=False)
    for row in dataset:
        messages = [{k: v for k, v in m.items() if v is not None} for m in row["messages"]]
        for message in messages:
            for tool_call in message.get("tool_calls") or []:
                tool_call["function"]["arguments"] = json.loads(tool_call["function"]["arguments"])
        prompt = formatter(messages=messages, tools=row["tools"]).prompt
        assert prompt.count("<|im_start|>assistant") == roles.count("assistant") or "I do not know." in prompt
        assert "<tool_call>" in prompt or "I do not know." in prompt
        assert row["messages"][-1]["content"] in prompt


def test_feedback_is_stored_as_user_reward(runner: CliRunner, project: Path, openai_server: FakeOpenAIServer,
                                           tmp_path: Path) -> None:
    run_id = _record_three(runner, openai_server, project)[0]
    result = runner.invoke(app, ["--root", str(project), "--feedback", run_id[:8], "0.25"])
    assert result.exit_code == 0, result.output
    assert run_id in result.stdout
    with sqlite3.connect(project / ".tongyi_training" / "trajectories.sqlite") as conn:
        rows = conn.execute("SELECT name, value, source FROM rewards WHERE run_id = ? AND source = 'user'",
                            (run_id,)).fetchall()
    assert rows == [("user_feedback", 0.25, "user")]

    unknown = runner.invoke(app, ["--root", str(project), "--feedback", "ffffffffff", "1"])
    assert unknown.exit_code == 2 and unknown.stderr.count("\n") == 1
    bad = runner.invoke(app, ["--root", str(project), "--feedback", run_id, "7"])
    assert bad.exit_code == 2 and "Error:" in bad.stderr


def test_secrets_never_reach_store_or_exports(runner: CliRunner, project: Path, openai_server: FakeOpenAIServer,
                                              tmp_path: Path) -> None:
    openai_server.add(SEARCH, ANSWER)
    question = f"My key is {FAKE_KEY}; which port does billing use? Authorization: Bearer abcdefghijklmnop1234"
    _ask(runner, openai_server, project, question, "--train", env={"MY_SERVICE_TOKEN": "hunter2-hunter2-x"})
    db = (project / ".tongyi_training" / "trajectories.sqlite").read_bytes()
    assert FAKE_KEY.encode() not in db and b"abcdefghijklmnop1234" not in db
    for fmt in ("json", "jsonl", "sft"):
        out = tmp_path / f"export.{fmt}"
        runner.invoke(app, ["--root", str(project), "--export-training-data", str(out), "--format", fmt])
        text = out.read_text()
        assert FAKE_KEY not in text and "abcdefghijklmnop1234" not in text
        assert "REDACTED" in text


def test_env_secret_values_are_redacted(runner: CliRunner, project: Path, openai_server: FakeOpenAIServer) -> None:
    secret = "plain-looking-secret-value-42"
    openai_server.add(SEARCH, ANSWER)
    _ask(runner, openai_server, project, f"Is {secret} in the files?", "--train",
         env={"OPENROUTER_API_KEY": secret})
    db = (project / ".tongyi_training" / "trajectories.sqlite").read_bytes()
    assert secret.encode() not in db


def test_training_enabled_from_env_and_bad_value(runner: CliRunner, project: Path,
                                                 openai_server: FakeOpenAIServer) -> None:
    openai_server.add(SEARCH, ANSWER)
    data = _ask(runner, openai_server, project, "Which port?", env={"TONGYI_TRAINING_ENABLED": "true",
                                                                    "TONGYI_TRAINING_MODE": "sft"})
    assert data["run_id"]
    with sqlite3.connect(project / ".tongyi_training" / "trajectories.sqlite") as conn:
        assert conn.execute("SELECT training_mode FROM runs").fetchall() == [("sft",)]
    bad = runner.invoke(app, ["--root", str(project), "hi"], env={"TONGYI_TRAINING_ENABLED": "maybe"})
    assert bad.exit_code == 2
    assert "TONGYI_TRAINING_ENABLED" in bad.stderr and bad.stderr.count("\n") == 1


def test_not_recorded_without_train(runner: CliRunner, project: Path, openai_server: FakeOpenAIServer) -> None:
    openai_server.add(SEARCH, ANSWER)
    assert _ask(runner, openai_server, project, "Which port?")["run_id"] is None
    assert not (project / ".tongyi_training").exists()


def test_failed_run_is_recorded_as_failed(runner: CliRunner, project: Path, openai_server: FakeOpenAIServer) -> None:
    openai_server.add({"status": 400, "body": {"error": {"message": "context too long"}}})
    result = runner.invoke(app, ["--root", str(project), "--base-url", openai_server.base_url, "--model-id", "fake",
                                 "--train", "Which port?"])
    assert result.exit_code == 1
    with sqlite3.connect(project / ".tongyi_training" / "trajectories.sqlite") as conn:
        status, error = conn.execute("SELECT status, error FROM runs").fetchone()
    assert status == "failed" and "context too long" in error


def test_stats_without_data_hints_and_exits_0(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["--root", str(project), "--training-stats"])
    assert result.exit_code == 0
    assert "--train" in result.stdout
    as_json = runner.invoke(app, ["--root", str(project), "--training-stats", "--json"])
    assert json.loads(as_json.stdout)["total_interactions"] == 0


def test_stats_table_and_plot(runner: CliRunner, project: Path, openai_server: FakeOpenAIServer,
                              tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    _record_three(runner, openai_server, project)
    chart = tmp_path / "charts" / "trend.png"
    result = runner.invoke(app, ["--root", str(project), "--training-stats", "--plot", str(chart)])
    assert result.exit_code == 0, result.output
    assert "total interactions" in result.stdout and "min_success_rate" in result.stdout
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reset_needs_confirmation(runner: CliRunner, project: Path, openai_server: FakeOpenAIServer) -> None:
    _record_three(runner, openai_server, project)
    refused = runner.invoke(app, ["--root", str(project), "--reset-training"], input="")
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    done = runner.invoke(app, ["--root", str(project), "--reset-training", "--yes"])
    assert done.exit_code == 0 and "Deleted 3 recorded runs" in done.stdout
    stats = runner.invoke(app, ["--root", str(project), "--training-stats", "--json"])
    assert json.loads(stats.stdout)["total_interactions"] == 0


def test_export_without_data_is_an_error(runner: CliRunner, project: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["--root", str(project), "--export-training-data", str(tmp_path / "x.json")])
    assert result.exit_code == 2
    assert "--train" in result.stderr
    assert not (tmp_path / "x.json").exists()


def _cli(project: Path, server: FakeOpenAIServer, question: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tongyi_agent", "--root", str(project), "--base-url",
                             server.base_url, "--model-id", "fake", "--train", "--json", question],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())


def test_sigkill_mid_run_keeps_earlier_runs(project: Path, openai_server: FakeOpenAIServer) -> None:
    openai_server.add(ANSWER, {"content": "slow", "delay": 30})
    first = _cli(project, openai_server, "first")
    assert first.wait(timeout=60) == 0
    second = _cli(project, openai_server, "second")
    deadline = time.monotonic() + 30
    while len(openai_server.chat_requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    second.send_signal(signal.SIGKILL)
    second.wait(timeout=10)
    with sqlite3.connect(project / ".tongyi_training" / "trajectories.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT question FROM runs").fetchall() == [("first",)]


def test_two_processes_recording_at_once_lose_nothing(project: Path, openai_server: FakeOpenAIServer) -> None:
    openai_server.add(*[{"content": f"reply {n}", "delay": 0.2} for n in range(6)])
    procs = [_cli(project, openai_server, f"question {n}") for n in range(6)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 6
    with sqlite3.connect(project / ".tongyi_training" / "trajectories.sqlite") as conn:
        questions = sorted(q for (q,) in conn.execute("SELECT question FROM runs"))
    assert questions == [f"question {n}" for n in range(6)]


def test_recorded_runs_are_exported_to_an_otlp_collector(runner: CliRunner, project: Path,
                                                         openai_server: FakeOpenAIServer) -> None:
    pytest.importorskip("opentelemetry.sdk")
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    received: list[bytes] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    collector = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    try:
        openai_server.add(SEARCH, ANSWER)
        endpoint = f"http://127.0.0.1:{collector.server_address[1]}"
        _ask(runner, openai_server, project, "Which port?", "--train",
             env={"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "NO_PROXY": "127.0.0.1"})
    finally:
        collector.shutdown()
    names = set()
    for body in received:
        request = ExportTraceServiceRequest.FromString(body)
        names |= {s.name for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans}
    assert names == {"invoke_agent tongyi-agent", "chat fake", "execute_tool search_files"}


def test_training_stats_show_the_last_fine_tuning_run(runner: CliRunner, project: Path,
                                                      openai_server: FakeOpenAIServer) -> None:
    from tongyi_agent.store import TrajectoryStore

    _record_three(runner, openai_server, project)
    report = {"examples": 12, "base_scores": [0.0, 1.0, 0.0, 0.0], "adapter_scores": [1.0, 1.0, 0.0, 1.0],
              "promoted": True, "promoted_profile": "local-small-sft"}
    with TrajectoryStore(project / ".tongyi_training" / "trajectories.sqlite") as store:
        store.set_meta("sft.run", json.dumps({"id": "sft-1234", "status": "done", "profile": "local-small",
                                              "report": report}))
        store.set_meta("grpo.run", json.dumps({"id": "grpo-5678", "status": "running", "profile": "local-small"}))
    shown = runner.invoke(app, ["--root", str(project), "--training-stats"])
    assert shown.exit_code == 0, shown.output
    assert ("Last fine-tuning sft-1234 (local-small): done; 12 examples; held-out test 0.250 -> 0.750; "
            "promoted as local-small-sft") in " ".join(shown.stdout.split())
    assert "Last GRPO run grpo-5678 (local-small): running" in shown.stdout
    data = json.loads(runner.invoke(app, ["--root", str(project), "--training-stats", "--json"]).stdout)
    assert data["fine_tuning"]["id"] == "sft-1234" and data["grpo"]["status"] == "running"
