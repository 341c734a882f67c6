"""Corrections: a run wrong on a known answer leaves an example of the one call that shows the answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tongyi_agent.agent.dialects import get_dialect
from tongyi_agent.agent.loop import Agent
from tongyi_agent.agent.runtime import LoopRunner
from tongyi_agent.learn.corrections import Reference, find_correction
from tongyi_agent.learn.lifecycle import Lifecycle
from tongyi_agent.learn.memory import CORRECTION, ExperienceMemory
from tongyi_agent.learn.recording import RecordedRun, RunRecorder
from tongyi_agent.learn.workspace import TrainingWorkspace
from tongyi_agent.llm.scripted import ScriptedModel
from tongyi_agent.store import ExperienceStore
from tongyi_agent.tools import default_registry


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Two projects, meeting notes naming their suppliers, an archive with an outdated budget and data."""
    root = tmp_path / "world"
    for sub in ("projects", "notes", "archive", "data"):
        (root / sub).mkdir(parents=True)
    (root / "projects" / "plover.md").write_text(
        "# Project Plover\n\nPlover studies river sediment.\n\n## Key facts\n\n- Budget: EUR 1,200,000\n"
        "- Lead: Goran Quist\n")
    (root / "projects" / "heron.md").write_text(
        "# Project Heron\n\nHeron studies soil moisture.\n\n## Key facts\n\n- Budget: EUR 2,220,000\n"
        "- Lead: Mira Petrakis\n")
    (root / "notes" / "2024-11-21-meeting.md").write_text(
        "# Meeting 2024-11-21\n\n- Plover: the team chose Blue Fen Devices as supplier.\n"
        "- Heron: the team chose Ferrow Instruments as supplier.\n")
    (root / "archive" / "register-2023.md").write_text(
        "# Register 2023\n\n- Plover budget (2023, superseded): EUR 990,000\n")
    (root / "data" / "plover_measurements.csv").write_text("date,metric,value\n2024-01-02,latency_ms,301.5\n")
    return root


def test_a_search_with_the_questions_words_whose_best_hit_holds_the_answer(folder: Path) -> None:
    found = find_correction("Which supplier did the team choose for project Plover?", folder,
                            Reference("Blue Fen Devices"))
    assert found is not None and found.tool == "search_files"
    assert "Plover" in found.arguments["query"]
    assert found.cited.path == "notes/2024-11-21-meeting.md" and "Blue Fen Devices" in found.cited.text
    assert "Blue Fen Devices" in found.observation  # a real result of the call, not made up
    assert found.answer == "Blue Fen Devices (notes/2024-11-21-meeting.md:3)"
    # The current budget, not the archive's outdated one, is the best hit of the search kept.
    budget = find_correction("What is the current budget of project Plover?", folder, Reference("EUR 1,200,000"))
    assert budget is not None and budget.cited.path == "projects/plover.md"


def test_a_which_file_answer_is_the_path_of_the_best_hit(folder: Path) -> None:
    found = find_correction("Which file records the supplier chosen for project Heron?", folder,
                            Reference("notes/2024-11-21-meeting.md"))
    assert found is not None and found.cited.path == "notes/2024-11-21-meeting.md"
    assert found.answer == "notes/2024-11-21-meeting.md"


def test_reading_a_small_file_named_after_the_subject_when_no_search_finds_it(folder: Path) -> None:
    found = find_correction("Who leads project Heron?", folder, Reference("Mira Petrakis"))
    assert found is not None
    assert (found.tool, found.arguments) == ("read_file", {"path": "projects/heron.md"})
    assert found.answer == "Mira Petrakis (projects/heron.md:8)"


def test_a_regex_reference_gives_the_matched_text_as_the_answer(folder: Path) -> None:
    found = find_correction("What is the current budget of project Heron?", folder,
                            Reference(regex=r"EUR\s*2,?220,?000"))
    assert found is not None and found.answer == "EUR 2,220,000 (projects/heron.md:7)"


def test_no_correction_without_a_line_stating_the_answer_or_for_nested_questions(folder: Path) -> None:
    # Nowhere in the folder.
    assert find_correction("Which supplier did the team choose for project Plover?", folder,
                           Reference("Kettle Point Sensors")) is None
    # A value in a data file is computed, not looked up: reading the CSV would teach the wrong move,
    # and a question that asks for no computation gets no program.
    assert find_correction("What latency_ms value is in project Plover's measurements?", folder,
                           Reference("301.5")) is None
    # Nested: one look-up does not get there (agent/bridges.py goes step by step).
    assert find_correction("Which organisation does the lead of project Plover work for?", folder,
                           Reference("Goran Quist")) is None
    # No names: nothing a later question could repeat with its own.
    assert find_correction("what is the budget?", folder, Reference("EUR 1,200,000")) is None


def test_a_which_file_answer_outside_the_folder_is_not_read(folder: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.md").write_text("Plover: the supplier is Blue Fen Devices\n")
    assert find_correction("Which file records the supplier chosen for project Plover?", folder,
                           Reference("../secret.md")) is None


SEARCH = 'Thought: I will search.\nAction: search_files\nAction Input: {"query": "supplier"}'
MADE_UP = "Thought: I know the answer\nFinal Answer: The team chose supplier A for project Plover."


def _ask(workspace: TrainingWorkspace, question: str, replies: list[str], answer: str | None,
         loop: LoopRunner) -> tuple[RecordedRun, ScriptedModel]:
    model = ScriptedModel(replies)  # type: ignore[arg-type]
    agent = Agent(model, default_registry(["search_files", "read_file"]), get_dialect("react"), workspace.root)
    with workspace.open_store() as store:
        lifecycle = Lifecycle(workspace, store)
        plan = lifecycle.plan(agent, None, question)
        recorder = RunRecorder(store, workspace.training, backend="scripted", dialect="react")
        recorded = loop.run(recorder.run(plan.agent, question, run_id=plan.run_id, metadata=plan.metadata,
                                         task_answer=answer))
        lifecycle.after_run(recorded)
    return recorded, model


def test_a_wrong_task_run_leaves_a_correction_that_later_questions_are_shown(folder: Path) -> None:
    workspace = TrainingWorkspace.load(folder, enabled=True)
    loop = LoopRunner()
    try:
        wrong, _ = _ask(workspace, "Which supplier did the team choose for project Plover?",
                        [SEARCH, MADE_UP, MADE_UP], "Blue Fen Devices", loop)
        assert wrong.reference == Reference("Blue Fen Devices", None)
        with workspace.open_store() as store:
            kept = ExperienceStore(store).by_run(wrong.run_id)
            assert kept is not None and kept.confirmed_by == CORRECTION
            assert kept.answer == "Blue Fen Devices (notes/2024-11-21-meeting.md:3)"
            assert kept.trajectory["steps"][0]["tool"] == "search_files"
            # Rating the wrong run down does not remove it: it rests on the known answer, not on the run.
            store.add_feedback(wrong.run_id, -1.0)
            ExperienceMemory(store, workspace.training).after_feedback(wrong.run_id)
            assert ExperienceStore(store).by_run(wrong.run_id) is not None

        later, model = _ask(workspace, "Which supplier did the team choose for project Heron?",
                            ["Thought: I know the answer\nFinal Answer: Ferrow Instruments"] * 2, None, loop)
        assert later.result.experiences == [kept.id]
        sent = "\n".join(m.content for m in model.calls[0].messages)
        assert "Which supplier did the team choose for project Plover?" in sent
        assert "Blue Fen Devices (notes/2024-11-21-meeting.md:3)" in sent

        # Without a known answer a wrong-looking run leaves nothing: there is nothing to correct it with.
        plain, _ = _ask(workspace, "Who leads project Plover?", [SEARCH, MADE_UP, MADE_UP], None, loop)
        with workspace.open_store() as store:
            assert ExperienceStore(store).by_run(plain.run_id) is None
    finally:
        loop.close()


def test_a_run_wrong_on_a_computed_answer_leaves_a_program(folder: Path) -> None:
    workspace = TrainingWorkspace.load(folder, enabled=True)
    loop = LoopRunner()
    try:
        question = ("What is the highest latency_ms value in project Plover's measurements "
                    "(data/plover_measurements.csv)?")
        guess = "Thought: I know the answer\nFinal Answer: 250.0"
        wrong, _ = _ask(workspace, question, [guess, guess], "301.5", loop)
        with workspace.open_store() as store:
            kept = ExperienceStore(store).by_run(wrong.run_id)
        assert kept is not None and kept.confirmed_by == CORRECTION
        assert kept.answer == "301.5 (data/plover_measurements.csv)"
        step = kept.trajectory["steps"][0]
        assert step["tool"] == "run_python" and "max(values)" in step["arguments"]["code"]
        assert "301.5" in step["observation"]  # what the sandboxed program printed
    finally:
        loop.close()


def test_the_users_answer_scores_the_run_and_a_later_one_replaces_the_correction(folder: Path) -> None:
    workspace = TrainingWorkspace.load(folder, enabled=True)
    loop = LoopRunner()
    try:
        run, _ = _ask(workspace, "Which supplier did the team choose for project Plover?", [SEARCH, MADE_UP, MADE_UP],
                      None, loop)
        with workspace.open_store() as store:
            memory = ExperienceMemory(store, workspace.training)
            # Heron's supplier: no search for Plover's words or file named after Plover shows it.
            assert memory.correct_run(run.run_id, "Ferrow Instruments") is None
            first = memory.correct_run(run.run_id, "EUR 1,200,000")  # the user slipped: the budget
            assert first is not None and first.answer == "EUR 1,200,000 (projects/plover.md:7)"
            assert store.get_run(run.run_id).reward("task") == 0.0  # scored on the user's answers
            second = memory.correct_run(run.run_id, "Blue Fen Devices")
            assert second is not None and second.answer == "Blue Fen Devices (notes/2024-11-21-meeting.md:3)"
            assert [e.id for e in ExperienceStore(store).list()] == [second.id]
            # The user's latest answer replaces their earlier scores instead of averaging with them.
            again = memory.correct_run(run.run_id, "supplier A")
            assert store.get_run(run.run_id).reward("task") == 1.0
            assert again is not None and again.confirmed_by == "task"
            assert [e.id for e in ExperienceStore(store).list()] == [again.id]
            # A run that had the user's answer is kept as it is, confirmed by its task reward.
            right, _ = _ask(workspace, "Who leads project Heron?",
                            [SEARCH.replace('"supplier"', '"Heron lead"'),
                             "Thought: I know the answer\nFinal Answer: Mira Petrakis"], None, loop)
            kept = memory.correct_run(right.run_id, "Mira Petrakis")
            assert kept is not None and kept.confirmed_by == "task" and kept.answer == "Mira Petrakis"
    finally:
        loop.close()
