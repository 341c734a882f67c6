"""The guide's Python API over a fake OpenAI-compatible server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.reflection import never_better
from tests.trusting import trust
from tongyi_agent.training_manager import TrainingManager, get_training_manager

SEARCH = {"tool_calls": [{"name": "search_files", "arguments": {"query": "port"}}]}
ANSWER = {"content": "Port 8443."}


@pytest.fixture
def manager(tmp_path: Path, openai_server: FakeOpenAIServer) -> TrainingManager:
    root = tmp_path / "project"
    root.mkdir()
    (root / "service.md").write_text("The service listens on port 8443.\n")
    (root / "models.ini").write_text(
        f"[models]\ndefault = fake\n\n[fake]\nprovider = openai\nbase_url = {openai_server.base_url}\n"
        "model_id = fake-model\nmax_retries = 0\n")
    trust(root)
    return TrainingManager(root)


async def test_process_query_records_and_exports(manager: TrainingManager, openai_server: FakeOpenAIServer,
                                                 tmp_path: Path) -> None:
    # The second question is answered without a tool: the grounding check asks once, the model insists.
    openai_server.add(SEARCH, ANSWER, ANSWER, ANSWER)
    agent = manager.create_optimized_agent("tongyi", optimization_mode="sft", enable_training=True)
    answer = await agent.process_query("Which port?")
    assert answer.startswith("Port 8443.") and "service.md:1" in answer
    assert agent.last_run_id is not None
    assert await agent.process_query("Again?") == "Port 8443."  # no tool ran, so no sources

    stats = manager.get_agent_stats(agent)
    assert stats["total_interactions"] == 2
    out = tmp_path / "export" / "data.json"
    assert manager.export_training_data(agent, out) == 2
    doc = json.loads(out.read_text())
    assert [i["query"] for i in doc["interactions"]] == ["Which port?", "Again?"]
    assert {i["training_mode"] for i in doc["interactions"]} == {"sft"}


def test_sync_run_without_training_records_nothing(manager: TrainingManager, openai_server: FakeOpenAIServer) -> None:
    openai_server.add(ANSWER, ANSWER)  # the grounding check looks the answer up; the model answers again
    agent = manager.create_optimized_agent(enable_training=False)
    assert agent.run("Which port?") == "Port 8443.\n\nSources:\n- service.md:1"
    assert agent.last_run_id is None
    assert manager.get_agent_stats(agent) == {"total_interactions": 0}


def test_bad_arguments_are_clear(manager: TrainingManager) -> None:
    with pytest.raises(ValueError, match="unknown agent_type 'gpt'"):
        manager.create_optimized_agent("gpt")
    with pytest.raises(ValueError, match="unknown optimization_mode 'fast'"):
        manager.create_optimized_agent("tongyi", optimization_mode="fast")
    with pytest.raises(ValueError, match="unknown export format"):
        manager.export_training_data(None, manager.root / "x.bin", format="parquet")


def test_get_training_manager_is_shared_per_root(tmp_path: Path) -> None:
    assert get_training_manager(tmp_path) is get_training_manager(str(tmp_path))
    assert get_training_manager(tmp_path) is not get_training_manager(tmp_path / "..")


def _coded(tmp_path: Path, server: FakeOpenAIServer, reply: Any = None) -> tuple[TrainingManager, Path]:
    from tests.cli.test_optimize import _reply

    root = tmp_path / "codes"
    root.mkdir()
    (root / "models.ini").write_text(
        f"[models]\ndefault = fake\n\n[fake]\nprovider = openai\nbase_url = {server.base_url}\n"
        "model_id = fake-model\nmax_retries = 0\n")
    trust(root)
    tasks = tmp_path / "tasks.jsonl"
    # Fixed ids fix the split: 18 held out with seed 1, above the gate's minimum of 12.
    tasks.write_text("".join(json.dumps({"id": f"item-{i}", "question": f"What is the code of item {i}?",
                                         "answer": f"CODE-{i}", "root": "codes"}) + "\n" for i in range(72)))
    server.add(*[reply or _reply] * 1000)
    return TrainingManager(root), tasks


def test_run_optimization_returns_true_only_when_promoted(tmp_path: Path, openai_server: FakeOpenAIServer) -> None:
    manager, tasks = _coded(tmp_path, openai_server)
    agent = manager.create_optimized_agent("tongyi")
    assert agent.run("What is the code of item 7?").startswith("I am not sure.")
    assert manager.run_optimization(agent, iterations=3, tasks_file=tasks, budget_rollouts=120, seed=1) is True
    assert manager.last_optimization is not None and manager.last_optimization.report.best_test == 1.0
    assert agent.run("What is the code of item 7?") == "CODE-7"  # the promoted prompt is in use


def test_training_session_reports_before_and_after(tmp_path: Path, openai_server: FakeOpenAIServer) -> None:
    manager, tasks = _coded(tmp_path, openai_server)
    summary = manager.run_training_session("tongyi", ["What is the code of item 1?", "What is the code of item 2?"],
                                           optimization_iterations=3, tasks_file=tasks, budget_rollouts=120)
    assert summary["success"] is True and summary["queries_processed"] == 2
    assert summary["before_score"] == 0.0 and summary["after_score"] == 1.0 and summary["promoted"] is True


def test_training_session_without_enough_tasks_says_so(manager: TrainingManager,
                                                       openai_server: FakeOpenAIServer) -> None:
    openai_server.add(*[ANSWER] * 4)  # each answer is asked once by the grounding check; the model insists
    summary = manager.run_training_session("tongyi", ["Which port?", "And again?"])
    assert summary["queries_processed"] == 2 and summary["promoted"] is False
    assert summary["before_score"] is None and "at least 10 usable tasks" in summary["optimization"]


async def test_claude_agent_type_uses_the_anthropic_backend(tmp_path: Path, anthropic_server) -> None:
    root = tmp_path / "claude-project"
    root.mkdir()
    (root / "notes.md").write_text("The launch date is 14 March.\n")
    anthropic_server.add({"tool_calls": [{"name": "search_files", "arguments": {"query": "launch date"}}]},
                         {"content": "The launch date is 14 March."})
    env = {"ANTHROPIC_API_KEY": "sk-ant-test-000000000000", "ANTHROPIC_BASE_URL": anthropic_server.base_url}
    manager = TrainingManager(root, env=env)
    agent = manager.create_optimized_agent("claude", optimization_mode="rl", enable_training=True)
    answer = await agent.process_query("When is the launch?")
    assert answer == "The launch date is 14 March.\n\nSources:\n- notes.md:1"
    stats = manager.get_agent_stats(agent)
    assert stats["total_interactions"] == 1 and stats["models"] == {"claude-sonnet-5-5": 1}
    assert stats["total_cost"] > 0


def test_guide_keywords_as_written(tmp_path: Path, openai_server: FakeOpenAIServer) -> None:
    # The guide's code blocks call these with keywords; they must work exactly so.
    manager, tasks = _coded(tmp_path, openai_server)
    agent = manager.create_optimized_agent(agent_type="tongyi", optimization_mode="prompt", enable_training=True)
    assert manager.run_optimization(agent, iterations=2, tasks_file=tasks, budget_rollouts=120, seed=1) is True
    summary = manager.run_training_session(agent_type="tongyi", queries=["What is the code of item 3?"],
                                           optimization_iterations=2, tasks_file=tasks, budget_rollouts=120)
    assert summary["success"] is True and summary["queries_processed"] == 1


@pytest.mark.parametrize("argument,explored", [(None, 2), (4, 4)])
def test_iterations_default_to_the_guide_config_key(tmp_path: Path, openai_server: FakeOpenAIServer,
                                                    argument: int | None, explored: int) -> None:
    proposals: list[str] = []

    manager, tasks = _coded(tmp_path, openai_server, reply=never_better(proposals))
    (manager.root / "training_config.ini").write_text("[prompt_optimization]\niterations = 2  # the guide's key\n")
    trust(manager.root)  # a changed config file needs trusting again
    agent = manager.create_optimized_agent("tongyi")
    assert manager.run_optimization(agent, argument, tasks_file=tasks, budget_rollouts=150, seed=1) is False
    # Without an argument the file's `iterations` caps the proposals; an argument wins over the file.
    assert len(proposals) == explored


def test_top_level_module_is_the_same_api() -> None:
    # The guide's import; the installed-package check is in tests/test_packaging.py.
    import tongyi_agent.training_manager as api
    import training_manager

    assert training_manager.get_training_manager is api.get_training_manager
    assert training_manager.TrainingManager is api.TrainingManager
