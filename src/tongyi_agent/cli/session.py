"""A conversation with one agent: builds it on first use with visible progress, runs questions
with a spinner or step lines, and keeps the turns for follow-up questions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tongyi_agent.agent.factory import build_agent
from tongyi_agent.agent.loop import Agent
from tongyi_agent.agent.routing import run_with_fallback
from tongyi_agent.agent.runtime import LoopRunner
from tongyi_agent.agent.steps import RunResult, Step
from tongyi_agent.cli.render import step_line
from tongyi_agent.config import ConfigError, Settings
from tongyi_agent.config.training import MemorySettings
from tongyi_agent.learn.lifecycle import Lifecycle
from tongyi_agent.learn.memory import ExperienceMemory
from tongyi_agent.learn.prompt.demos import DEMOS_COMPONENT, apply_prompt, demos_from_text
from tongyi_agent.learn.recording import RunRecorder
from tongyi_agent.learn.workspace import TrainingWorkspace
from tongyi_agent.llm.base import ChatMessage
from tongyi_agent.store import TrajectoryStore, secret_values_from_env
from tongyi_agent.store.prompts import PromptVersion
from tongyi_agent.trace.otel import OtelSink

MAX_HISTORY_TURNS = 3  # earlier turns are dropped: the embedded model has a 4k context


class AgentSession:
    def __init__(self, settings: Settings, console: Console, *, verbose: bool = False,
                 workspace: TrainingWorkspace | None = None, offline: bool = False,
                 cache_dir: Path | None = None, prompt: PromptVersion | None = None,
                 memory: TrainingWorkspace | None = None) -> None:
        """``memory``: the project whose confirmed runs are shown as worked examples when runs are
        not recorded (recorded runs take them from ``workspace``)."""
        self.settings = settings
        self.memory_workspace = memory
        self.prompt = prompt  # the active prompt version; None = the packaged default texts
        self.workspace = workspace  # set when runs are recorded as training data
        self.offline = offline
        self.cache_dir = cache_dir  # downloads (papers, web pages), under the training data path
        self._fallback: Agent | None = None
        self.last_run_id: str | None = None
        self._store: TrajectoryStore | None = None
        self._memory_store: TrajectoryStore | None = None
        self._otel: list[OtelSink] | None = None
        self._loop = LoopRunner()
        self.console = console  # progress and step lines go to stderr so stdout stays clean
        self.verbose = verbose
        self.turns: list[tuple[str, RunResult]] = []
        self._agent: Agent | None = None
        self._status = None
        self._tool_bar: Progress | None = None
        self._tool_bar_task = 0

    @property
    def agent(self) -> Agent:
        if self._agent is None:
            self._agent = self._build(self.settings)
        return self._agent

    def switch(self, settings: Settings) -> None:
        self.settings = settings
        self._agent = self._fallback = None
        self._agent = self._build(settings)

    def _fallback_agent(self) -> Agent:
        """The `[models] fallback` profile's agent, built the first time a run needs it."""
        profile = self.settings.fallback_profile
        assert profile is not None
        if self._fallback is None:
            self._fallback = self._build(self.settings.model_copy(update={"model": profile.name, "profile": profile}))
        return self._fallback

    def _fallback_factory(self) -> Callable[[], Agent] | None:
        fallback = self.settings.fallback_profile
        if fallback is None or fallback.name == self.settings.profile.name:
            return None

        def build() -> Agent:
            self.console.print(f"{self.settings.profile.name} failed; answering on fallback {fallback.name}",
                               style="yellow", markup=False)
            return self._fallback_agent()

        return build

    def clear(self) -> None:
        self.turns.clear()

    def _build(self, settings: Settings) -> Agent:
        progress = Progress(TextColumn("Assembling model weights (first run only)"), BarColumn(),
                            DownloadColumn(), TimeRemainingColumn(), console=self.console, transient=True)
        task: list[int] = []

        def on_bytes(done: int, total: int) -> None:
            if not task:
                progress.start()
                task.append(progress.add_task("weights", total=total))
            progress.update(task[0], completed=done)

        try:
            with self.console.status(f"Loading {settings.profile.name} ({settings.profile.model_id})…"):
                agent = build_agent(settings, on_step=self._on_step, on_weights_progress=on_bytes,
                                    cache_dir=self.cache_dir, offline=self.offline,
                                    on_note=self._on_note if self.verbose else None,
                                    on_tool_progress=self._tool_progress)
            if self.prompt is None:
                return agent
            source = self.workspace or self.memory_workspace
            share = source.training.memory.budget_share if source else MemorySettings().budget_share
            prompted = apply_prompt(agent, self.prompt.components, budget_share=share)
            demos = demos_from_text(self.prompt.components.get(DEMOS_COMPONENT))
            if self.verbose and demos:
                self.console.print(f"prompt version {self.prompt.id} shows {len(demos)} demonstrations: "
                                   + "; ".join(d["question"] for d in demos), style="dim", markup=False)
            return prompted
        finally:
            if task:
                progress.stop()

    def _on_note(self, text: str) -> None:
        self.console.print(text, style="dim", markup=False)

    def _tool_progress(self, what: str, done: int, total: int) -> None:
        """Slow tool work (building a search index): a bar in the spinner line, or its own bar."""
        if self._status is not None:
            filled = int(20 * done / max(total, 1))
            self._status.update(f"{what} {'━' * filled}{'─' * (20 - filled)} {done:,}/{total:,}")
            return
        if self._tool_bar is None:
            if not self.console.is_terminal:
                return
            self._tool_bar = Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                      console=self.console, transient=True)
            self._tool_bar.start()
            self._tool_bar_task = self._tool_bar.add_task(what, total=total)
        self._tool_bar.update(self._tool_bar_task, completed=done, total=total)
        if done >= total:
            self._tool_bar.stop()
            self._tool_bar = None

    def _on_step(self, step: Step) -> None:
        if self.verbose:
            self.console.print(step_line(step))
        elif self._status is not None:
            self._status.update(f"Working… step {step.index + 1}")

    def ask(self, question: str) -> RunResult:
        """Answer with the chosen profile, on the `[models] fallback` profile if that run fails."""
        return self._ask(question)

    def _ask(self, question: str) -> RunResult:
        agent = self.agent
        history: list[ChatMessage] = []
        for previous, result in self.turns[-MAX_HISTORY_TURNS:]:
            history += [ChatMessage("user", previous), ChatMessage("assistant", result.answer)]
        if self.verbose:
            result = self._run(agent, question, history)
        else:
            with self.console.status("Working…") as status:
                self._status = status
                try:
                    result = self._run(agent, question, history)
                finally:
                    self._status = None
        self.turns.append((question, result))
        return result

    def _run(self, agent: Agent, question: str, history: list[ChatMessage]) -> RunResult:
        fallback = self._fallback_factory()
        if self.workspace is None:
            agent, shown = self._examples(agent, question)
            result = self._loop.run(run_with_fallback(agent, question, history, fallback=fallback))
            result.experiences = shown
            return result
        recorder = RunRecorder.for_profile(self.store, self.workspace.training, self.settings.profile,
                                           sinks=self._sinks())
        lifecycle = Lifecycle(self.workspace, self.store)
        plan = lifecycle.plan(agent, self.prompt, question)
        self._show_examples(plan.metadata.get("experiences") or [])
        recorded = self._loop.run(recorder.run(plan.agent, question, history, fallback=fallback, run_id=plan.run_id,
                                               ab_arm=plan.ab_arm, prompt_version=plan.prompt_version,
                                               metadata=plan.metadata))
        self.last_run_id = recorded.run_id
        for note in lifecycle.after_run(recorded):
            self.console.print(note, style="cyan", markup=False)
        return recorded.result

    def _examples(self, agent: Agent, question: str) -> tuple[Agent, list[int]]:
        """Worked examples for an unrecorded run, from the project's store when it has one."""
        workspace = self.memory_workspace
        if workspace is None or not workspace.has_data():
            return agent, []
        if self._memory_store is None:
            self._memory_store = workspace.open_store()
        agent, shown = ExperienceMemory(self._memory_store, workspace.training).prepare(agent, question)
        self._show_examples(shown)
        return agent, shown

    def _show_examples(self, shown: list[int]) -> None:
        if self.verbose and shown:
            self.console.print(f"worked examples from experiences {', '.join(map(str, shown))}"
                               " (tongyi-cli memory show ID)", style="dim", markup=False)

    def _sinks(self) -> list[OtelSink]:
        """The OpenTelemetry exporter when OTEL_EXPORTER_OTLP_ENDPOINT is set (extra `otel`)."""
        if self._otel is None:
            try:
                sink = OtelSink.from_env(self.settings.env, secret_values_from_env(self.settings.env))
            except RuntimeError as exc:  # endpoint set, extra missing
                raise ConfigError(str(exc)) from None
            self._otel = [sink] if sink else []
        return self._otel

    @property
    def store(self) -> TrajectoryStore:
        if self.workspace is None:
            raise RuntimeError("this session does not record runs")
        if self._store is None:
            self._store = self.workspace.open_store()
        return self._store

    def close(self) -> None:
        self._loop.close()
        for sink in self._otel or []:
            sink.shutdown()
        for store in (self._store, self._memory_store):
            if store is not None:
                store.close()
        self._store = self._memory_store = None

    def rate_last(self, score: float) -> tuple[str, list[str]]:
        """Store user feedback for the last recorded run and judge its uses of worked examples again;
        returns its id and notes for the user (experiences retired or active again)."""
        if self.workspace is None or self.last_run_id is None:
            raise ValueError("no recorded run to rate: start the session with --train and ask a question first")
        self.store.add_feedback(self.last_run_id, score)
        notes = ExperienceMemory(self.store, self.workspace.training).after_feedback(self.last_run_id)
        return self.last_run_id, notes
