"""Turning run results and steps into terminal output or JSON. No logic about running."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tongyi_agent.agent.steps import ModelStep, NoteStep, RunResult, Step, ToolStep
from tongyi_agent.tools.base import ToolRegistry

_PREVIEW = 160


def _short(text: str, limit: int = _PREVIEW) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def step_line(step: Step) -> Text:
    """One line per step for --verbose."""
    if isinstance(step, ModelStep):
        parsed = step.parsed
        what = (f"answer: {_short(parsed.answer, 80)}" if parsed.answer is not None
                else ", ".join(f"{c.name}({json.dumps(c.arguments, ensure_ascii=False)})" for c in parsed.tool_calls)
                or f"unparsed: {_short(parsed.error or step.response.content, 80)}")
        thought = f" — {_short(parsed.thought, 80)}" if parsed.thought else ""
        label = "forced " if step.forced else ""
        return Text.assemble((f"[{step.index}] {label}model ", "bold cyan"),
                             f"{step.seconds:.1f}s {step.response.usage.total_tokens} tok: ", what, (thought, "dim"))
    if isinstance(step, ToolStep):
        status = "skipped" if step.skipped else ("ok" if step.result.ok else "error")
        style = "green" if status == "ok" else "yellow"
        return Text.assemble((f"[{step.index}] tool ", "bold magenta"), f"{step.call.name} ",
                             (status, style), f" {step.seconds:.2f}s: ", (_short(step.result.output), "dim"))
    assert isinstance(step, NoteStep)
    return Text.assemble((f"[{step.index}] note ", "bold yellow"), _short(step.text))


def step_dict(step: Step) -> dict[str, Any]:
    if isinstance(step, ModelStep):
        return {"type": "model", "index": step.index, "seconds": round(step.seconds, 3), "forced": step.forced,
                "thought": step.parsed.thought, "answer": step.parsed.answer, "error": step.parsed.error,
                "tool_calls": [{"name": c.name, "arguments": c.arguments} for c in step.parsed.tool_calls],
                "usage": {"input_tokens": step.response.usage.input_tokens,
                          "output_tokens": step.response.usage.output_tokens}}
    if isinstance(step, ToolStep):
        return {"type": "tool", "index": step.index, "name": step.call.name, "arguments": step.call.arguments,
                "ok": step.result.ok, "skipped": step.skipped, "seconds": round(step.seconds, 3),
                "output": step.result.output}
    return {"type": "note", "index": step.index, "text": step.text}


def result_dict(result: RunResult) -> dict[str, Any]:
    return {
        "answer": result.answer,
        "sources": [{"path": s.path, "line": s.line, "text": s.text} for s in result.sources],
        "steps": [step_dict(s) for s in result.steps],
        "model": result.model,
        "seconds": round(result.seconds, 3),
        "usage": {"input_tokens": result.usage.input_tokens, "output_tokens": result.usage.output_tokens,
                  "model_calls": result.model_calls},
        "stop_reason": result.stop_reason,
        "evidence": [{"claim": e.claim, "source": e.source, "snippet": e.snippet, "verified": e.verified}
                     for e in result.evidence],
        "verification_rate": result.verification_rate,
        "experiences": result.experiences,
        "grounded": result.grounded,
        "unsupported": result.unsupported,
    }


def grounding_mark(result: RunResult) -> str | None:
    """The line printed above an answer whose key facts no tool result of the run contained."""
    if result.grounded is not False:
        return None
    facts = ", ".join(result.unsupported)
    return f"UNVERIFIED: not found in the files: {facts}" if facts else "UNVERIFIED: not found in the files"


def print_result(console: Console, result: RunResult, run_id: str | None = None) -> None:
    mark = grounding_mark(result)
    if mark:
        console.print(mark, style="bold yellow", markup=False, highlight=False)
    console.print(result.answer, markup=False, highlight=False)
    console.print()
    if result.sources:
        console.print("Sources:", style="bold")
        for source in result.sources:
            console.print(Text.assemble("- ", (source.label(), "cyan"), ("  " + _short(source.text, 100), "dim")))
    else:
        console.print("Sources: none (no tool result supports this answer)", style="yellow")
    unverified = [e for e in result.evidence if not e.verified]
    if unverified:
        console.print(f"Unverified claims ({len(unverified)} of {len(result.evidence)}): the cited tool results "
                      "do not contain these quotes or numbers:", style="bold yellow")
        for item in unverified:
            where = f" [{item.source}]" if item.source else " [no supporting tool result]"
            console.print(Text.assemble(("  ! ", "yellow"), _short(item.claim, 120), (where, "dim")))
    note = {"forced": " (budget reached, answer forced)",
            "deadline": " (time limit reached before an answer; unfinished work abandoned)"}.get(result.stop_reason, "")
    recorded = f" · recorded as run {run_id[:12]}" if run_id else ""
    console.print(f"{result.model} · {_count(result.model_calls, 'model call')} · "
                  f"{_count(len(result.tool_calls), 'tool call')} · "
                  f"{result.usage.total_tokens} tokens · {result.seconds:.1f}s{note}{recorded}", style="dim")


def tools_table(tools: ToolRegistry) -> Table:
    table = Table(title="Tools", show_lines=True)
    table.add_column("name", style="bold")
    table.add_column("description")
    table.add_column("parameters (JSON schema)")
    for tool in tools:
        table.add_row(tool.name, tool.description, json.dumps(tool.parameters, indent=1))
    return table
