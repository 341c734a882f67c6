"""Confirmed runs come back as worked examples through the CLI; `tongyi-cli memory` lists, shows, forgets."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tests.fakes.openai_server import FakeOpenAIServer
from tongyi_agent.cli.app import app

SEARCH = {"tool_calls": [{"name": "search_files", "arguments": {"query": "billing port"}}]}
ANSWER = {"content": "The billing service listens on port 8443."}


def _ask(runner: CliRunner, server: FakeOpenAIServer, project: Path, question: str, *extra: str) -> dict:
    result = runner.invoke(app, ["--root", str(project), "--base-url", server.base_url, "--model-id", "fake",
                                 "--json", *extra, question])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _memory(runner: CliRunner, project: Path, *args: str) -> object:
    result = runner.invoke(app, ["memory", *args, "--root", str(project)])
    return result


def test_feedback_confirmed_runs_are_reused_and_rated_down_ones_never(runner: CliRunner, project: Path,
                                                                        openai_server: FakeOpenAIServer) -> None:
    openai_server.add(SEARCH, ANSWER, SEARCH, ANSWER)
    good = _ask(runner, openai_server, project, "Which port does the billing service listen on?", "--train")
    bad = _ask(runner, openai_server, project, "Which port does the billing service use today?", "--train")
    assert good["experiences"] == []  # nothing confirmed yet
    assert runner.invoke(app, ["--root", str(project), "--feedback", good["run_id"][:8], "1"]).exit_code == 0
    assert runner.invoke(app, ["--root", str(project), "--feedback", bad["run_id"][:8], "-1"]).exit_code == 0

    listed = _memory(runner, project, "list", "--json")
    assert listed.exit_code == 0, listed.output
    items = json.loads(listed.stdout)
    assert [(i["run_id"], i["confirmed_by"], i["tool_calls"]) for i in items] == [(good["run_id"], "feedback", 1)]
    kept = items[0]["id"]

    before = len(openai_server.chat_requests)
    # Answered from the worked example, not from this run's tools: the grounding check asks once; it insists.
    openai_server.add(ANSWER, ANSWER)
    later = _ask(runner, openai_server, project, "Which port does the billing service listen on today?", "--train",
                 "--verbose")
    assert later["experiences"] == [kept]
    messages = openai_server.chat_requests[before]["messages"]
    assert messages[1]["role"] == "user" and messages[1]["content"].endswith(
        "Which port does the billing service listen on?")
    assert messages[2]["tool_calls"][0]["function"]["name"] == "search_files"  # native dialect: a real tool call
    assert messages[3]["role"] == "tool" and "8443" in messages[3]["content"]
    assert messages[-1]["content"] == "Which port does the billing service listen on today?"

    # Unrecorded runs use the memory too; --verbose names the experiences shown.
    openai_server.add(ANSWER, ANSWER)
    result = runner.invoke(app, ["--root", str(project), "--base-url", openai_server.base_url, "--model-id", "fake",
                                 "--verbose", "Which port does billing listen on?"])
    assert result.exit_code == 0, result.output
    assert f"worked examples from experiences {kept}" in result.stderr

    shown = _memory(runner, project, "show", str(kept))
    assert shown.exit_code == 0, shown.output
    for text in ("Which port does the billing service listen on?", "search_files", "services/billing.md:",
                 "Answer: The billing service listens on port 8443."):
        assert text in shown.stdout

    stats = json.loads(runner.invoke(app, ["--root", str(project), "--training-stats", "--json"]).stdout)["memory"]
    assert (stats["exist"], stats["active"], stats["retired"]) == (1, 1, 0)
    assert stats["with"]["runs"] == 1 and stats["without"]["runs"] == 2

    forgot = _memory(runner, project, "forget", str(kept))
    assert forgot.exit_code == 0 and "Forgot experience" in forgot.stdout
    assert json.loads(_memory(runner, project, "list", "--json").stdout) == []


def _feedback(runner: CliRunner, project: Path, run_id: str, score: str) -> str:
    result = runner.invoke(app, ["--root", str(project), "--feedback", run_id[:8], score])
    assert result.exit_code == 0, result.output
    return result.stdout


def _memory_stats(runner: CliRunner, project: Path) -> dict:
    result = runner.invoke(app, ["--root", str(project), "--training-stats", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["memory"]


def test_later_ratings_judge_uses_again_and_three_rated_down_in_a_row_retire(
        runner: CliRunner, project: Path, openai_server: FakeOpenAIServer) -> None:
    openai_server.add(SEARCH, ANSWER)
    good = _ask(runner, openai_server, project, "Which port does the billing service listen on?", "--train")
    _feedback(runner, project, good["run_id"], "1")
    kept = json.loads(_memory(runner, project, "list", "--json").stdout)[0]["id"]

    later = []
    for n, question in enumerate(["Which port does the billing service listen on today?",
                                  "Which port does the billing service listen on now?",
                                  "Which port does the billing service listen on currently?"]):
        openai_server.add(ANSWER, ANSWER)  # from the example; the grounding check asks once, it insists
        run = _ask(runner, openai_server, project, question, "--train")
        assert run["experiences"] == [kept]
        later.append(run["run_id"])
        out = _feedback(runner, project, run["run_id"], "1")  # the use is a success...
        assert "retired" not in out
        out = _feedback(runner, project, run["run_id"], "-1")  # ...until the user changes their mind
        assert (f"experience {kept} retired" in out) == (n == 2), out
    stats = _memory_stats(runner, project)
    assert (stats["exist"], stats["active"], stats["retired"]) == (1, 0, 1)
    assert (stats["with"]["runs"], stats["with"]["success_rate"]) == (3, 0.0)
    shown = json.loads(_memory(runner, project, "show", str(kept), "--json").stdout)
    assert (shown["uses"], shown["failures"], shown["failure_streak"]) == (3, 3, 3)  # each run counted once
    openai_server.add(ANSWER, ANSWER)
    assert _ask(runner, openai_server, project, "Which port does the billing service need?")["experiences"] == []

    # The middle run is rated good after all: its use is a success again, and the experience is back.
    out = _feedback(runner, project, later[1], "0.5")
    assert f"experience {kept} is active again" in out
    stats = _memory_stats(runner, project)
    assert (stats["exist"], stats["active"], stats["retired"]) == (1, 1, 0)
    assert stats["with"]["runs"] == 3 and stats["with"]["success_rate"] == 1 / 3
    shown = json.loads(_memory(runner, project, "show", str(kept), "--json").stdout)
    assert (shown["uses"], shown["failures"], shown["failure_streak"], shown["status"]) == (3, 2, 1, "active")
    assert [(u["run_id"], u["success"]) for u in shown["used_by"]] == [(later[0], False), (later[1], True),
                                                                        (later[2], False)]
    text = _memory(runner, project, "show", str(kept)).stdout
    assert f"Used by runs: {later[0][:12]} failed, {later[1][:12]} ok, {later[2][:12]} failed" in text


def test_session_ratings_judge_the_last_runs_uses_again(runner: CliRunner, project: Path,
                                                         openai_server: FakeOpenAIServer) -> None:
    openai_server.add(SEARCH, ANSWER, *[ANSWER] * 6)
    lines = ["Which port does the billing service listen on?", "/good",
             "Which port does the billing service listen on today?", "/bad",
             "Which port does the billing service listen on now?", "/bad",
             "Which port does the billing service listen on currently?", "/bad", "/good"]
    result = runner.invoke(app, ["--root", str(project), "--base-url", openai_server.base_url, "--model-id", "fake",
                                 "--train", "-i"], input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    retired = result.stdout.index("experience 1 retired after 3 failed uses in a row")
    assert result.stdout.index("experience 1 is active again", retired) > retired
    assert result.stdout.count("retired after") == 1
    shown = json.loads(_memory(runner, project, "show", "1", "--json").stdout)
    assert (shown["uses"], shown["failures"], shown["failure_streak"], shown["status"]) == (3, 2, 0, "active")


def test_memory_errors_are_one_line_exit_2(runner: CliRunner, project: Path, openai_server: FakeOpenAIServer) -> None:
    none = _memory(runner, project, "list")
    assert none.exit_code == 2 and "no training data" in none.stderr and "Traceback" not in none.output
    openai_server.add(SEARCH, ANSWER)
    _ask(runner, openai_server, project, "Which port?", "--train")
    missing = _memory(runner, project, "show", "99")
    assert missing.exit_code == 2 and "no experience with id 99" in missing.stderr
    assert _memory(runner, project, "forget", "99").exit_code == 2
    empty = _memory(runner, project, "list")
    assert empty.exit_code == 0 and "No experiences yet" in empty.stdout
    assert _memory(runner, project, "show", "abc").exit_code == 2


def test_correct_keeps_the_search_that_shows_the_users_answer(runner: CliRunner, tmp_path: Path,
                                                               openai_server: FakeOpenAIServer) -> None:
    project = tmp_path / "world"
    (project / "notes").mkdir(parents=True)
    (project / "notes" / "meeting.md").write_text(
        "# Meeting\n\n- Plover: the team chose Blue Fen Devices as supplier.\n"
        "- Heron: the team chose Ferrow Instruments as supplier.\n")
    wrong = {"content": "The team chose supplier A for project Plover."}
    openai_server.add(SEARCH, wrong, wrong)
    run = _ask(runner, openai_server, project, "Which supplier did the team choose for project Plover?", "--train")

    unknown = _memory(runner, project, "correct", run["run_id"][:8], "Kettle Point Sensors")
    assert unknown.exit_code == 1 and "no search, small file or program" in unknown.stdout
    assert json.loads(_memory(runner, project, "list", "--json").stdout) == []

    fixed = _memory(runner, project, "correct", run["run_id"][:8], "Blue Fen Devices")
    assert fixed.exit_code == 0, fixed.output
    assert "a correction of the run" in fixed.stdout and "notes/meeting.md:3" in fixed.stdout
    items = json.loads(_memory(runner, project, "list", "--json").stdout)
    assert [(i["run_id"], i["confirmed_by"]) for i in items] == [(run["run_id"], "correction")]

    # A later question asked the same way is shown the correction: the search and the right answer.
    before = len(openai_server.chat_requests)
    openai_server.add({"content": "Ferrow Instruments (notes/meeting.md:4)"})
    later = _ask(runner, openai_server, project, "Which supplier did the team choose for project Heron?")
    assert later["experiences"] == [items[0]["id"]]
    sent = json.dumps(openai_server.chat_requests[before]["messages"])
    assert "Blue Fen Devices (notes/meeting.md:3)" in sent

    assert _memory(runner, project, "correct", run["run_id"][:8], " ").exit_code == 2
    assert _memory(runner, project, "correct", "zzzzzzzz", "x").exit_code == 2
