"""`tongyi-cli`: ask a question about a folder, or open an interactive session.

Exit codes: 0 answered; 1 the model or run failed (or --timeout passed before an answer); 2 bad input or
configuration; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tongyi_agent import __version__
from tongyi_agent.cli.console import EXIT_FAILED, err, fail, out
from tongyi_agent.cli.group import PanelledCommand, QuestionFirstGroup
from tongyi_agent.cli.memory import memory_app
from tongyi_agent.cli.models import models_app
from tongyi_agent.cli.prompts import prompts_app
from tongyi_agent.cli.rollout import EPILOG as ROLLOUT_EPILOG
from tongyi_agent.cli.rollout import rollout_command
from tongyi_agent.cli.trust import EPILOG as TRUST_EPILOG
from tongyi_agent.cli.trust import trust_command, warn_ignored

if TYPE_CHECKING:
    from tongyi_agent.config import Settings
    from tongyi_agent.learn.workspace import TrainingWorkspace
    from tongyi_agent.store.prompts import PromptVersion

# Everything past the command line's definition is imported where it is used: `--help`, `--version`,
# `--tools`, `models list`, `prompts list` and `--training-stats` must not load the agent loop, the
# learners, the model backends or the PDF and web stacks (tests/cli/test_fast_start.py).

app = typer.Typer(cls=QuestionFirstGroup, add_completion=False, rich_markup_mode=None,
                  pretty_exceptions_enable=False, context_settings={"help_option_names": ["-h", "--help"]})
app.add_typer(models_app, name="models")
app.add_typer(prompts_app, name="prompts")
app.add_typer(memory_app, name="memory")
app.command("rollout", epilog=ROLLOUT_EPILOG)(rollout_command)
app.command("trust", epilog=TRUST_EPILOG)(trust_command)

ANSWERING, RECORDING, OPTIMIZING, EXPORTING = "Answering", "Recording", "Optimizing", "Exporting"


class TrainingMode(StrEnum):
    prompt = "prompt"
    rl = "rl"
    sft = "sft"


class ExportFormat(StrEnum):
    json = "json"
    jsonl = "jsonl"
    sft = "sft"
    dpo = "dpo"


def _version(value: bool) -> None:
    if value:
        out.print(f"tongyi-cli {__version__}")
        raise typer.Exit()


@app.command("ask", hidden=True, cls=PanelledCommand, epilog=(
    "More: tongyi-cli models list|info|set|test manages model profiles; tongyi-cli prompts "
    "list|show|diff|activate|rollback|add manages prompt versions; tongyi-cli memory list|show|forget manages "
    "the worked examples kept from confirmed runs; tongyi-cli rollout runs one task for "
    "Agent Lightning (each has --help)."))
def main_command(
    question: Annotated[str | None, typer.Argument(
        help="The question to answer. Omit it to open an interactive session, or pipe it on stdin.")] = None,
    # Answering
    root: Annotated[Path, typer.Option("--root", "-r", rich_help_panel=ANSWERING, help=(
        "Project folder the agent may read (default: .). Also accepted before a subcommand."))] = Path("."),
    model: Annotated[str | None, typer.Option("--model", "-m", rich_help_panel=ANSWERING, help=(
        "Model profile from models.ini: local (default, embedded, offline), local-small, tongyi, ..."))] = None,
    base_url: Annotated[str | None, typer.Option(rich_help_panel=ANSWERING, help=(
        "Any OpenAI-compatible server (vLLM, Ollama, llama.cpp server, OpenRouter); use with --model-id."))]
    = None,
    model_id: Annotated[str | None, typer.Option(rich_help_panel=ANSWERING,
                                                 help="Model name to request from the server.")] = None,
    max_steps: Annotated[int | None, typer.Option(rich_help_panel=ANSWERING, help=(
        "Model calls per question before the answer is forced (default 8)."))] = None,
    timeout: Annotated[float | None, typer.Option(rich_help_panel=ANSWERING, help=(
        "Deadline per question in seconds (default 300): model calls, retries and tools never run past it. Tools "
        "stop and the answer is forced when a fifth (at most 30 s) is left; what still runs is abandoned."))]
    = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", rich_help_panel=ANSWERING,
                                          help="Print each step as it happens.")] = False,
    as_json: Annotated[bool, typer.Option("--json", rich_help_panel=ANSWERING, help=(
        "Print one JSON object: answer, sources, steps, model, seconds, usage."))] = False,
    interactive: Annotated[bool, typer.Option("--interactive", "-i", rich_help_panel=ANSWERING, help=(
        "Open the interactive session even when stdin is not a terminal."))] = False,
    offline: Annotated[bool, typer.Option("--offline", rich_help_panel=ANSWERING, help=(
        "Turn off the tools that need the network (web, papers); they tell the model so."))] = False,
    show_tools: Annotated[bool, typer.Option("--tools", rich_help_panel=ANSWERING, help=(
        "List the agent's tools with their schemas and exit."))] = False,
    validate: Annotated[bool, typer.Option("--validate-config", rich_help_panel=ANSWERING, help=(
        "Check models.ini, training_config.ini, .env and profiles; print pass/warn/fail per item and exit."))]
    = False,
    # Recording
    train: Annotated[bool, typer.Option("--train", rich_help_panel=RECORDING, help=(
        "Record this run (spans, answer, sources, rewards) as training data under .tongyi_training/."))] = False,
    training_mode: Annotated[TrainingMode | None, typer.Option(rich_help_panel=RECORDING, help=(
        "Learning mode stored with recorded runs and used by --optimize (default from training_config.ini)."))]
    = None,
    feedback: Annotated[tuple[str, float] | None, typer.Option(rich_help_panel=RECORDING, help=(
        "Rate a recorded run: RUN_ID (or a unique prefix) and a score in [0, 1] (or -1..0 for thumbs down). "
        "0.5 or more confirms it; the latest rating also judges its use of worked examples."))]
    = None,
    training_stats: Annotated[bool, typer.Option("--training-stats", rich_help_panel=RECORDING, help=(
        "Show statistics of the recorded runs (with --json: machine-readable) and exit."))] = False,
    plot: Annotated[Path | None, typer.Option(rich_help_panel=RECORDING, help=(
        "With --training-stats: write a reward/latency chart (PNG)."))] = None,
    reset_training: Annotated[bool, typer.Option("--reset-training", rich_help_panel=RECORDING,
                                                 help="Delete all recorded runs (asks first).")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", rich_help_panel=RECORDING,
                                      help="Do not ask for confirmation (--reset-training).")] = False,
    # Optimizing
    optimize: Annotated[bool, typer.Option("--optimize", rich_help_panel=OPTIMIZING, help=(
        "Learn from --tasks or recorded runs, by --training-mode: prompt (default) improves the system prompt, "
        "rl refits the tool policy, sft fine-tunes the embedded model with LoRA (extra [train]). A change is "
        "promoted only if it wins on held-out tasks."))]
    = False,
    optimize_iterations: Annotated[int | None, typer.Option(min=1, rich_help_panel=OPTIMIZING, help=(
        "Candidate prompts to propose (default: [prompt_optimization] iterations, or max_iterations)."))] = None,
    budget_rollouts: Annotated[int, typer.Option(min=1, rich_help_panel=OPTIMIZING,
                                                 help="Most agent runs the optimization may spend.")] = 200,
    reflection_model: Annotated[str | None, typer.Option(rich_help_panel=OPTIMIZING, help=(
        "Profile of the model that proposes new prompts (default: the agent's model)."))] = None,
    tasks: Annotated[Path | None, typer.Option(rich_help_panel=OPTIMIZING, help=(
        "Task file (JSONL: question, answer or answer_regex, root, sources) to optimize on."))] = None,
    grpo: Annotated[bool, typer.Option("--grpo", rich_help_panel=OPTIMIZING, help=(
        "With --optimize --training-mode rl on an embedded model: after refitting the tool policy, also train "
        "the model's weights with GRPO on recorded runs of --tasks questions (extra [train])."))] = False,
    grpo_steps: Annotated[int | None, typer.Option(min=1, rich_help_panel=OPTIMIZING,
                                                   help="GRPO steps (default: [grpo] steps).")] = None,
    resume: Annotated[bool, typer.Option("--resume", rich_help_panel=OPTIMIZING,
                                         help="Continue the interrupted optimization run.")] = False,
    seed: Annotated[int, typer.Option(rich_help_panel=OPTIMIZING, help="Seed for the task split and the search.")]
    = 0,
    # Exporting
    export_path: Annotated[Path | None, typer.Option("--export-training-data", rich_help_panel=EXPORTING, help=(
        "Write the recorded runs to this file and exit (see --format)."))] = None,
    export_format: Annotated[ExportFormat, typer.Option("--format", rich_help_panel=EXPORTING, help=(
        "Export format: json (the guide's format), jsonl, sft (chat JSONL with tool calls), dpo (pairs)."))]
    = ExportFormat.json,
    min_reward: Annotated[float | None, typer.Option(rich_help_panel=EXPORTING, help=(
        "Export only runs whose target reward is at least this; with --optimize --training-mode sft, "
        "imitate only such runs (default from training_config.ini [sft])."))]
    = None,
    chunk_size: Annotated[int | None, typer.Option(min=1, rich_help_panel=EXPORTING,
                                                   help="Split the export into files of N records.")] = None,
    trust_root: Annotated[bool, typer.Option("--trust-root", rich_help_panel=ANSWERING, help=(
        "For this run, honour the endpoints, keys, storage and reward code that --root's own models.ini, .env "
        "and training_config.ini set (see: tongyi-cli trust --help)."))] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """Answer research questions about the files in a folder, with cited sources.

    Runs offline on the embedded model by default. Examples:

      tongyi-cli --root ~/notes "Which port does the billing service use?"

      tongyi-cli                      (interactive session; /help lists commands)

      echo "What is in the README?" | tongyi-cli --json

      tongyi-cli --train "question"   then   tongyi-cli --training-stats
    """
    if show_tools:
        from tongyi_agent.cli.render import tools_table
        from tongyi_agent.tools import default_registry

        out.print(tools_table(default_registry()))
        return
    if validate:
        from tongyi_agent.cli.checks import run_validation

        raise typer.Exit(run_validation(out, root))
    if training_stats or export_path or feedback or reset_training:
        raise typer.Exit(_training_command(root, training_stats=training_stats, as_json=as_json, plot=plot,
                                           export_path=export_path, export_format=export_format,
                                           min_reward=min_reward, chunk_size=chunk_size, feedback=feedback,
                                           reset_training=reset_training, yes=yes, trust_root=trust_root))
    from tongyi_agent.config import ConfigError, load_settings
    from tongyi_agent.learn.workspace import TrainingWorkspace

    if question is not None:
        question = _valid_text(question, "the question")
    try:
        settings = load_settings(root, model=model, base_url=base_url, model_id=model_id,
                                 max_steps=max_steps, timeout=timeout, trust_root=trust_root)
        workspace = TrainingWorkspace.load(root, enabled=True if train else None,
                                           mode=training_mode.value if training_mode else None,
                                           trust_root=trust_root)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    warn_ignored(err, settings.trust, settings.ignored, workspace.ignored)
    if optimize:
        raise typer.Exit(_optimize(settings, workspace, iterations=optimize_iterations, budget=budget_rollouts,
                                   reflection=reflection_model, tasks=tasks, resume=resume, seed=seed,
                                   verbose=verbose, min_reward=min_reward, grpo=grpo, grpo_steps=grpo_steps))
    recording = workspace if workspace.training.enabled else None

    if question is None and (interactive or sys.stdin.isatty()):
        from tongyi_agent.cli.repl import run_repl

        raise typer.Exit(run_repl(settings, out, err, verbose=verbose, workspace=recording, offline=offline,
                                  cache_dir=workspace.training.data_dir(settings.root),
                                  prompt=workspace.active_prompt(), memory=workspace))
    if question is None:
        try:
            question = sys.stdin.read()
        except UnicodeDecodeError:
            raise fail("the question on stdin is not valid UTF-8 text") from None
        question = _valid_text(question, "the question on stdin")
    if not question.strip():
        raise fail("no question given: pass it as an argument or on stdin")
    raise typer.Exit(ask_once(settings, question.strip(), verbose=verbose, as_json=as_json, workspace=recording,
                              offline=offline, cache_dir=workspace.training.data_dir(settings.root),
                              prompt=workspace.active_prompt(), memory=workspace))


def _valid_text(text: str, what: str) -> str:
    """Refuse text that cannot be stored or sent: bytes that were not UTF-8 reach Python as lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise fail(f"{what} is not valid UTF-8 text") from None
    return text


def _optimize(settings: Settings, workspace: TrainingWorkspace, *, iterations: int | None, budget: int,
              reflection: str | None, tasks: Path | None, resume: bool, seed: int, verbose: bool,
              min_reward: float | None = None, grpo: bool = False, grpo_steps: int | None = None) -> int:
    from tongyi_agent.cli.optimize import optimize_command, print_report
    from tongyi_agent.config import ConfigError
    from tongyi_agent.learn.evaluation.tasks import TaskFileError
    from tongyi_agent.learn.prompt.optimizer import NotEnoughTasksError
    from tongyi_agent.learn.prompt.prompt_run import OptimizeRequest
    from tongyi_agent.llm.base import ModelError
    from tongyi_agent.store import StoreError

    if grpo and workspace.training.mode != "rl":
        raise fail("--grpo trains in rl mode: add --training-mode rl")
    if workspace.training.mode == "rl":
        return _optimize_policy(settings, workspace, grpo=grpo, grpo_steps=grpo_steps, tasks=tasks, resume=resume,
                                seed=seed)
    if workspace.training.mode == "sft":
        from tongyi_agent.cli.sft import optimize_sft

        return optimize_sft(settings, workspace, min_reward=min_reward, tasks=tasks, resume=resume, seed=seed)
    reflection_profile = settings.profiles.get(reflection or settings.model, settings.profile)
    # An embedded model cannot reflect usefully on a whole prompt: then only demonstrations are searched.
    proposer = "none" if reflection_profile.provider == "embedded" else "rewrite"
    if proposer == "none" and iterations:
        err.print(f"Note: {reflection_profile.name} is an embedded model, which proposes no new instructions, so "
                  "--optimize-iterations has no effect; only demonstration sets are searched. For instruction "
                  "search add --reflection-model with a stronger profile (e.g. tongyi).", markup=False)
    request = OptimizeRequest(iterations=iterations or workspace.training.prompt_optimization.max_iterations,
                              budget_rollouts=budget, tasks_file=tasks, seed=seed, resume=resume, proposer=proposer)
    try:
        outcome = optimize_command(settings, workspace, request, reflection_profile=reflection, console=err,
                                   verbose=verbose)
    except (NotEnoughTasksError, TaskFileError, StoreError, ConfigError) as exc:
        raise fail(str(exc.args[0]) if exc.args else str(exc)) from None
    except ModelError as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    print_report(out, outcome, instructions_searched=proposer != "none")
    return 0


def _optimize_policy(settings: Settings, workspace: TrainingWorkspace, *, grpo: bool = False,
                     grpo_steps: int | None = None, tasks: Path | None = None, resume: bool = False,
                     seed: int = 0) -> int:
    from tongyi_agent.cli.grpo import check_grpo, optimize_grpo
    from tongyi_agent.learn.policy.policy_run import optimize_tool_policy
    from tongyi_agent.tools import default_registry

    if grpo:
        check_grpo(settings)
    if not workspace.has_data():
        raise fail("no recorded runs to learn a tool policy from: run questions with --train --training-mode rl")
    tools = default_registry(settings.profile.tool_names()).names()
    report = optimize_tool_policy(workspace, tools, settings.max_steps)
    out.print(f"Tool policy ({report.policy}) refitted from {report.runs_used} recorded rl-mode runs.")
    for arm in report.arms:
        mean = "—" if arm["mean_reward"] is None else f"{arm['mean_reward']:.3f}"
        out.print(f"  {arm['arm']:<14} pulls {arm['pulls']:>4}  mean reward {mean}")
    if not grpo:
        out.print("Nothing is promoted in rl mode: the policy is used by the next runs with --training-mode rl.")
        return 0
    out.print("The next runs with --training-mode rl use this policy. Now GRPO on the model's weights.")
    return optimize_grpo(settings, workspace, steps=grpo_steps, tasks=tasks, resume=resume, seed=seed)


def _training_command(root: Path, *, training_stats: bool, as_json: bool, plot: Path | None,
                      export_path: Path | None, export_format: ExportFormat, min_reward: float | None,
                      chunk_size: int | None, feedback: tuple[str, float] | None, reset_training: bool,
                      yes: bool, trust_root: bool = False) -> int:
    from tongyi_agent.cli import training
    from tongyi_agent.cli.plot import PlotUnavailableError
    from tongyi_agent.config import ConfigError
    from tongyi_agent.learn.workspace import TrainingWorkspace
    from tongyi_agent.store import StoreError

    try:
        workspace = TrainingWorkspace.load(root, trust_root=trust_root)
        warn_ignored(err, workspace.trust, workspace.ignored)
        if feedback is not None:
            run_id, notes = training.feedback(workspace, *feedback)
            out.print(f"Recorded feedback {feedback[1]:g} for run {run_id}.")
            for note in notes:
                out.print(note, markup=False)
        if export_path is not None:
            if not workspace.has_data():
                raise StoreError(training.NO_DATA_HINT)
            tools_schema = None
            if export_format == ExportFormat.sft:  # only SFT examples declare the tools (and need them loaded)
                from tongyi_agent.tools import default_registry

                tools_schema = default_registry().openai_schemas()
            count = workspace.export(export_path, export_format.value, min_reward=min_reward,
                                     chunk_size=chunk_size, tools_schema=tools_schema)
            err.print(f"Exported {count} {'pairs' if export_format.value == 'dpo' else 'runs'} "
                      f"({export_format.value}) to {export_path}.")
            if _inside(export_path, workspace.root) and not _inside(export_path,
                                                                    workspace.training.data_dir(workspace.root)):
                # Seen on the guide's workflow: a backup written into the folder under research was
                # found by search_files, and later answers cited the old answers stored in it.
                err.print(f"Note: {export_path} is inside the project folder, so the agent's search tools can "
                          "find it and cite old answers from it. Keep exports outside the folder, or list them "
                          "in its .gitignore.", markup=False)
        if training_stats:
            training.show_stats(workspace, out, as_json=as_json, plot=plot)
        if reset_training:
            training.reset(workspace, out, yes=yes)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    except (StoreError, ValueError, PlotUnavailableError, OSError) as exc:
        raise fail(str(exc.args[0]) if isinstance(exc, StoreError) and exc.args else str(exc)) from None
    return 0


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def ask_once(settings: Settings, question: str, *, verbose: bool, as_json: bool,
             workspace: TrainingWorkspace | None, offline: bool = False, cache_dir: Path | None = None,
             prompt: PromptVersion | None = None, memory: TrainingWorkspace | None = None) -> int:
    from tongyi_agent.cli.render import print_result, result_dict
    from tongyi_agent.cli.session import AgentSession
    from tongyi_agent.config import ConfigError
    from tongyi_agent.llm.base import ModelError

    session = AgentSession(settings, err, verbose=verbose, workspace=workspace, offline=offline,
                           cache_dir=cache_dir, prompt=prompt, memory=memory)
    try:
        result = session.ask(question)
    except ModelError as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    except ConfigError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None
    finally:
        session.close()
    if as_json:
        print(json.dumps({**result_dict(result), "run_id": session.last_run_id}, ensure_ascii=False))
    else:
        print_result(out, result, run_id=session.last_run_id)
    return EXIT_FAILED if result.stop_reason == "deadline" else 0


def main() -> None:
    try:
        app()
        code: int | str | None = 0
    except KeyboardInterrupt:
        err.print("Error: interrupted", style="red", markup=False)
        code = 130
    except SystemExit as exc:
        code = exc.code
    _exit(code)


def _exit(code: int | str | None) -> None:
    """Exit now, even when a thread is still busy with abandoned work.

    A tool or an embedded generation abandoned at the deadline (or by Ctrl-C) cannot be stopped from
    outside its thread, and the interpreter would wait for it at exit. Everything worth keeping is
    written by then (the store commits each run before the command returns), so leave without
    waiting; sandboxes die with us (PR_SET_PDEATHSIG)."""
    if isinstance(code, str):
        err.print(code, markup=False)
        code = 1
    code = code or 0
    # Idle pool workers end on their own once the session's event loop is closed; give them a moment.
    until = time.monotonic() + 0.5
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join(max(0.0, until - time.monotonic()))
    busy = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if not busy:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

