"""Experience memory: which runs become worked examples, retrieval at question time, retirement."""

from __future__ import annotations

from pathlib import Path

from tongyi_agent.agent.dialects import get_dialect
from tongyi_agent.agent.loop import Agent
from tongyi_agent.agent.runtime import LoopRunner
from tongyi_agent.config.training import MemorySettings, TrainingConfig
from tongyi_agent.learn.evaluation.tasks import CONFIRMED
from tongyi_agent.learn.lifecycle import Lifecycle
from tongyi_agent.learn.memory import ExperienceMemory, confirmation, form_overlap, question_form, use_succeeded
from tongyi_agent.learn.recording import RecordedRun, RunRecorder
from tongyi_agent.learn.workspace import TrainingWorkspace
from tongyi_agent.llm.scripted import ScriptedModel
from tongyi_agent.store import Experience, ExperienceStore, RewardRecord, RunRecord, TrajectoryStore
from tongyi_agent.tools import default_registry

SEARCH = 'Thought: I will search.\nAction: search_files\nAction Input: {"query": "billing port"}'
ANSWER = "Thought: I know the answer\nFinal Answer: The billing service listens on port 8443."
WRONG = "Thought: I know the answer\nFinal Answer: Port 80."


def _run(**fields: object) -> RunRecord:
    fields.setdefault("status", "success")
    return RunRecord(question="q", answer="a", **fields)  # type: ignore[arg-type]


def test_confirmation_rules() -> None:
    plain = TrainingConfig()
    feedback = RewardRecord("user_feedback", 0.9, "user")
    down = RewardRecord("user_feedback", 0.2, "user")
    right, wrong = RewardRecord("task", 1.0, "task"), RewardRecord("task", 0.4, "task")
    quality = RewardRecord("response_quality", 1.0)
    assert confirmation(_run(rewards=[feedback]), plain) == "feedback"
    assert confirmation(_run(rewards=[right]), plain) == "task"
    assert confirmation(_run(rewards=[wrong, feedback]), plain) is None  # wrong on a known answer: never
    assert confirmation(_run(rewards=[right, feedback, down]), plain) is None  # rated down once: never
    assert confirmation(_run(status="failed", rewards=[feedback]), plain) is None
    verified = {"verification_rate": 1.0}
    assert confirmation(_run(rewards=[quality], metadata=verified), plain) is None  # rewards untrusted by default
    trusting = TrainingConfig(memory=MemorySettings(trust_rewards=True, min_reward=0.9))
    assert confirmation(_run(rewards=[quality], metadata=verified), trusting) == "reward"
    assert confirmation(_run(rewards=[quality], metadata={"verification_rate": 0.5}), trusting) is None
    assert confirmation(_run(status="forced", rewards=[quality], metadata=verified), trusting) is None


def _rating(value: float) -> RewardRecord:
    return RewardRecord("user_feedback", value, "user")


def test_a_use_is_judged_by_the_latest_rating_first() -> None:
    plain = TrainingConfig(memory=MemorySettings(min_reward=0.7))
    target = plain.prompt_optimization.optimization_target
    right, wrong = RewardRecord("task", 1.0, "task"), RewardRecord("task", 0.0, "task")
    assert use_succeeded(_run(rewards=[right]), plain)
    assert not use_succeeded(_run(rewards=[right, _rating(0.0)]), plain)  # rated down after a known answer
    assert use_succeeded(_run(rewards=[wrong, _rating(0.5)]), plain)  # 0.5 is the confirming threshold
    assert not use_succeeded(_run(rewards=[wrong, _rating(0.49)]), plain)
    assert use_succeeded(_run(rewards=[_rating(0.0), _rating(1.0)]), plain)  # the user changed their mind
    assert not use_succeeded(_run(rewards=[_rating(1.0), _rating(0.2)]), plain)
    assert use_succeeded(_run(rewards=[RewardRecord(target, 0.8)]), plain)  # no rating, no known answer
    assert not use_succeeded(_run(rewards=[RewardRecord(target, 0.6)]), plain)
    assert not use_succeeded(_run(status="forced", rewards=[RewardRecord(target, 0.9)]), plain)
    assert use_succeeded(_run(status="forced", rewards=[RewardRecord(target, 0.9), _rating(1.0)]), plain)


def test_training_stats_judge_runs_as_uses_are_judged(tmp_path: Path) -> None:
    """The stats' SQL and use_succeeded are two statements of one rule: they must agree run by run."""
    training = TrainingConfig(memory=MemorySettings(min_reward=0.7))
    target = training.prompt_optimization.optimization_target
    right, wrong = RewardRecord("task", 1.0, "task"), RewardRecord("task", 0.0, "task")
    cases = [[], [right], [wrong], [right, _rating(0.0)], [wrong, _rating(0.5)], [_rating(0.0), _rating(1.0)],
             [_rating(1.0), _rating(0.3)], [RewardRecord(target, 0.8)], [RewardRecord(target, 0.6)],
             [RewardRecord(target, 0.7), RewardRecord(target, 0.9)]]
    for n, (status, rewards) in enumerate((s, r) for s in ("success", "forced") for r in cases):
        with TrajectoryStore(tmp_path / f"{n}.sqlite") as store:  # one run per store: no error can cancel out
            run_id = store.record_run(_run(status=status, rewards=rewards, metadata={"experiences": [1]}))
            expected = use_succeeded(store.get_run(run_id), training)
            outcome = ExperienceStore(store).usage_outcomes(target, min_reward=0.7, confirmed=CONFIRMED)["with"]
            assert outcome["success_rate"] == float(expected), (status, rewards)


class _Project:
    """A project with recording on, running questions through the product's Lifecycle and RunRecorder."""

    def __init__(self, root: Path) -> None:
        self.workspace = TrainingWorkspace.load(root, enabled=True)
        self.store: TrajectoryStore = self.workspace.open_store()
        self.loop = LoopRunner()

    def ask(self, question: str, replies: list[object], *, answer: str | None = "8443",
            tools: tuple[str, ...] = ("search_files", "read_file")) -> tuple[RecordedRun, ScriptedModel]:
        model = ScriptedModel(replies)  # type: ignore[arg-type]
        agent = Agent(model, default_registry(list(tools)), get_dialect("react"),
                      self.workspace.root)
        lifecycle = Lifecycle(self.workspace, self.store)
        plan = lifecycle.plan(agent, None, question)
        recorder = RunRecorder(self.store, self.workspace.training, backend="scripted", dialect="react")
        recorded = self.loop.run(recorder.run(plan.agent, question, run_id=plan.run_id, metadata=plan.metadata,
                                              task_answer=answer))
        lifecycle.after_run(recorded)
        return recorded, model

    def confirmed_example(self) -> Experience:
        """Ask the billing question, right on its known answer: it is kept as an experience."""
        first, _ = self.ask("Which port does the billing service listen on?", [SEARCH, ANSWER])
        kept = ExperienceStore(self.store).by_run(first.run_id)
        assert kept is not None
        return kept

    def close(self) -> None:
        self.loop.close()
        self.store.close()


def test_correct_task_runs_become_examples_for_similar_questions(project: Path) -> None:
    p = _Project(project)
    try:
        first, _ = p.ask("Which port does the billing service listen on?", [SEARCH, ANSWER])
        kept = ExperienceStore(p.store).by_run(first.run_id)
        assert kept is not None and kept.confirmed_by == "task" and kept.root == str(project)
        step = kept.trajectory["steps"][0]
        assert (step["tool"], step["arguments"], step["thought"]) == ("search_files", {"query": "billing port"},
                                                                      "I will search.")
        assert "8443" in step["observation"] and kept.trajectory["cited"][0]["path"] == "services/billing.md"
        # An answer no tool result supports is asked about once by the grounding check; the model insists.
        wrong, _ = p.ask("Which port does the billing service listen on now?", [SEARCH, WRONG, WRONG])
        assert ExperienceStore(p.store).by_run(wrong.run_id) is None  # wrong on a known answer

        later, model = p.ask("On which port does the billing service listen?", [ANSWER, ANSWER])
        assert later.result.experiences == [kept.id]
        assert p.store.get_run(later.run_id).metadata["experiences"] == [kept.id]
        sent = model.calls[0].messages
        assert sent[1].content.endswith("Which port does the billing service listen on?")
        assert sent[2].content.startswith("Thought: I will search.\nAction: search_files")
        assert sent[-1].content == "On which port does the billing service listen?"
        # The wrong run was shown it too: one failed use, then the correct one ended the streak.
        used = ExperienceStore(p.store).get(kept.id)
        assert (used.uses, used.failures, used.failure_streak) == (2, 1, 0)
    finally:
        p.close()


def test_question_form_leaves_out_what_the_question_is_about() -> None:
    assert question_form("Who leads project Curlew?") == question_form("Who leads project Avocet?")
    assert question_form("How many rows in data/a_b.csv exceed 25?") == {"how", "many", "row", "exceed"}
    two_hops = question_form("Which organisation does the lead of project Avocet work for?")
    assert form_overlap(question_form("Who leads project Avocet?"), two_hops) < 0.5


def test_only_experiences_asked_the_same_way_are_shown(project: Path) -> None:
    p = _Project(project)
    try:
        kept = p.confirmed_example()
        agent = Agent(ScriptedModel([]), default_registry(["search_files"]), get_dialect("react"), project)
        memory = ExperienceMemory(p.store, p.workspace.training)
        assert memory.prepare(agent, "On which port does the billing service listen?")[1] == [kept.id]
        # About the same service, asked another way: the port look-up would teach the wrong steps.
        other = "Who is on call for the billing service this week?"
        assert memory.prepare(agent, other)[1] == []
        any_form = TrainingConfig(memory=MemorySettings(min_form_overlap=0.0))
        assert ExperienceMemory(p.store, any_form).prepare(agent, other)[1] == [kept.id]
        # A nested question gets none, however it is asked: the grounding check's look-ups take it
        # step by step, and an example's answer (another chain's end) was copied.
        nested = "Which port does the owner of service Billing listen on?"
        assert ExperienceMemory(p.store, any_form).prepare(agent, nested)[1] == []
    finally:
        p.close()


def test_examples_stay_within_the_budget_share_of_the_context(project: Path) -> None:
    p = _Project(project)
    try:
        p.ask("Which port does the billing service listen on?", [SEARCH, ANSWER])
        p.ask("Which port does the billing service use?", [SEARCH, ANSWER])
        memory = ExperienceMemory(p.store, p.workspace.training)
        agent = Agent(ScriptedModel([]), default_registry(["search_files"]), get_dialect("react"), project)
        prepared, shown = memory.prepare(agent, "Which port is the billing service on?")
        assert len(shown) == 2
        chars = sum(len(m.content) for m in prepared.spec.examples)
        assert chars <= 0.15 * agent.spec.context_tokens * 3.5
        off = TrainingConfig(prompt_optimization={"use_history": False})  # type: ignore[arg-type]
        assert ExperienceMemory(p.store, off).prepare(agent, "Which port is the billing service on?")[1] == []
    finally:
        p.close()


def test_three_failed_uses_in_a_row_retire_an_experience(project: Path) -> None:
    p = _Project(project)
    try:
        kept = p.confirmed_example()
        for n in range(3):
            later, _ = p.ask(f"Which port does the billing service listen on, try {n}?", [WRONG, WRONG])
            assert later.result.experiences == [kept.id]
        retired = ExperienceStore(p.store).get(kept.id)
        assert (retired.status, retired.uses, retired.failure_streak) == ("retired", 3, 3)
        last, _ = p.ask("Which port does the billing service listen on, again?", [WRONG, WRONG])
        assert last.result.experiences == []
        stats = p.workspace.stats(p.store)["memory"]
        assert (stats["exist"], stats["active"], stats["retired"]) == (1, 0, 1)
        assert stats["with"]["runs"] == 3 and stats["without"]["runs"] == 2
    finally:
        p.close()


def test_a_rating_after_the_run_judges_its_use_again(project: Path) -> None:
    p = _Project(project)
    try:
        kept = p.confirmed_example()
        later, _ = p.ask("On which port does the billing service listen?", [ANSWER, ANSWER])
        assert later.result.experiences == [kept.id]
        memory, experiences = ExperienceMemory(p.store, p.workspace.training), ExperienceStore(p.store)

        def judged() -> tuple[int, int, int, list[bool]]:
            e = experiences.get(kept.id)
            return e.uses, e.failures, e.failure_streak, [u.success for u in experiences.uses(kept.id)]

        assert judged() == (1, 0, 0, [True])  # right on the known answer
        p.store.add_feedback(later.run_id, -1.0)
        assert memory.after_feedback(later.run_id) == []
        assert judged() == (1, 1, 1, [False])  # the user says otherwise: a failed use, still one use
        p.store.add_feedback(later.run_id, 0.8)
        memory.after_feedback(later.run_id)
        assert judged() == (1, 0, 0, [True])
        stats = p.workspace.stats(p.store)["memory"]["with"]
        assert (stats["runs"], stats["success_rate"]) == (1, 1.0)
    finally:
        p.close()


def test_rating_a_kept_run_down_removes_its_experience(project: Path) -> None:
    p = _Project(project)
    try:
        first, _ = p.ask("Which port does the billing service listen on?", [SEARCH, ANSWER], answer=None)
        memory = ExperienceMemory(p.store, p.workspace.training)
        assert ExperienceStore(p.store).by_run(first.run_id) is None  # no known answer, no rating yet
        p.store.add_feedback(first.run_id, 1.0)
        assert memory.review_run(first.run_id) is not None
        p.store.add_feedback(first.run_id, -1.0)
        assert memory.review_run(first.run_id) is None
        assert ExperienceStore(p.store).by_run(first.run_id) is None
        p.store.add_feedback(first.run_id, 1.0)
        assert memory.review_run(first.run_id) is None  # rated down once: never again
    finally:
        p.close()


def test_runs_without_tool_calls_are_not_kept(project: Path) -> None:
    p = _Project(project)
    try:
        # Without search_files the grounding check cannot look the answer up for the model either.
        run, _ = p.ask("What is the billing port?", [ANSWER, ANSWER], tools=("read_file",))
        assert ExperienceStore(p.store).by_run(run.run_id) is None
    finally:
        p.close()
