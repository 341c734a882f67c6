"""The agent loop: ask the model, run the tools it asks for, repeat until it answers or a budget ends.

Errors the model causes (malformed calls, bad arguments, repeats) are told to the model as
observations. Errors of the backend raise ModelError to the caller.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tongyi_agent.agent.budget import Budget
from tongyi_agent.agent.citations import select_sources, strip_model_sources
from tongyi_agent.agent.context import cap_observation, fit_messages
from tongyi_agent.agent.dialects import Dialect
from tongyi_agent.agent.evidence import verify
from tongyi_agent.agent.grounding import GroundingGate, absent_answer
from tongyi_agent.agent.prompts import load_prompt
from tongyi_agent.agent.steps import ModelStep, NoteStep, ParsedTurn, RunResult, Step, ToolStep
from tongyi_agent.agent.taint import TaintGuard
from tongyi_agent.llm.base import ChatMessage, ChatModel, ChatRequest, ChatResponse, DeadlineError, ToolCall, Usage
from tongyi_agent.tools.base import SourceRef, ToolContext, ToolRegistry, ToolResult

# A backend's own timeout fires at the deadline; this much later the loop stops waiting regardless.
DEADLINE_GRACE_S = 0.25
NOT_FOUND = "I could not find the answer in the files within the budget."
DEADLINE = "I could not finish within the time limit of {seconds} s."


@dataclass
class AgentSpec:
    """What to run: instructions, limits and the context window. Data, not behaviour."""

    instructions: str = field(default_factory=lambda: load_prompt("system"))
    forced_answer: str = field(default_factory=lambda: load_prompt("forced_answer"))  # has a {reason} slot
    max_steps: int = 8
    max_tokens: int = 24000
    max_seconds: float = 300.0
    context_tokens: int = 4096
    max_output_tokens: int = 512
    max_observation_chars: int | None = None  # default: about 40 % of the context window
    examples: list[ChatMessage] = field(default_factory=list)  # worked examples, before the question
    # "on_demand": constrain a grammar-capable model (GBNF) only when re-asking after a malformed call
    # and for a forced answer; "always": every call. Sampling under a grammar costs CPU time, and on
    # file_lookup (benchmarks/latency.py, 15 questions) both gave 10/15 with no malformed call, while
    # on demand took 0.62x the CPU seconds per question.
    grammar: str = "on_demand"
    grounding: str = "check"  # "check": an answer's key facts must come from tool results (one retry); "off"

    def observation_cap(self) -> int:
        return self.max_observation_chars or int(self.context_tokens * 3.5 * 0.4)


class Agent:
    """Runs one question at a time against `model` with the tools of `tools`, confined to `root`."""

    def __init__(self, model: ChatModel, tools: ToolRegistry, dialect: Dialect, root: Path,
                 spec: AgentSpec | None = None, on_step: Callable[[Step], None] | None = None, *,
                 tool_context: ToolContext | None = None) -> None:
        self.model = model
        self.tools = tools
        self.dialect = dialect
        self.root = root
        self.spec = spec or AgentSpec()
        self.on_step = on_step
        self.tool_context = tool_context or ToolContext(root=root)

    def variant(self, *, instructions: str | None = None, forced_answer: str | None = None,
                root: Path | None = None, tools: ToolRegistry | None = None, max_steps: int | None = None,
                examples: list[ChatMessage] | None = None) -> Agent:
        """The same model with other prompt texts, root, tools, step budget or worked examples (prompt
        candidates, tasks, tool-policy arms, experience memory)."""
        twin = copy.copy(self)
        twin.spec = dataclasses.replace(self.spec, instructions=instructions or self.spec.instructions,
                                        forced_answer=forced_answer or self.spec.forced_answer,
                                        max_steps=max_steps or self.spec.max_steps,
                                        examples=self.spec.examples if examples is None else examples)
        twin.tools = tools or self.tools
        if root is not None:
            twin.root = root
            twin.tool_context = dataclasses.replace(self.tool_context, root=root)
        return twin

    def with_components(self, model: ChatModel, tools: ToolRegistry) -> Agent:
        """The same agent speaking to another model and tool registry (e.g. recording wrappers)."""
        twin = copy.copy(self)
        twin.model, twin.tools = model, tools
        return twin

    def run_sync(self, question: str, history: list[ChatMessage] | None = None) -> RunResult:
        return asyncio.run(self.run(question, history))

    async def run(self, question: str, history: list[ChatMessage] | None = None) -> RunResult:
        spec = self.spec
        budget = Budget(spec.max_steps, spec.max_tokens, spec.max_seconds)
        messages = [ChatMessage("system", self.dialect.system_prompt(spec.instructions, self.tools)),
                    *spec.examples, *(history or []), ChatMessage("user", question)]
        steps: list[Step] = []
        usage = Usage()
        returned: list[SourceRef] = []
        seen_calls: set[str] = set()
        repeats = 0
        names = set(self.tools.names())
        # Tools stop at the tool deadline, leaving the reserve for the forced answer.
        ctx = dataclasses.replace(self.tool_context, deadline=budget.tool_deadline)
        forced_reason: str | None = None
        answer: str | None = None
        taint = TaintGuard(question)
        malformed = False  # the last reply broke the protocol: the re-ask is constrained
        gate = GroundingGate(question, enabled=spec.grounding == "check")
        observed: list[str] = []  # every tool result the model saw, for the grounding check

        while answer is None:
            forced_reason = forced_reason or budget.exhausted()
            final = forced_reason is not None
            if final:
                messages.append(self._note(steps, _fill(spec.forced_answer, reason=forced_reason)))
            constrain = spec.grammar == "always" or final or malformed
            request = self.dialect.request(self.tools, final=final,
                                           grammar_ok=self.model.supports_grammar and constrain)
            request.max_tokens = spec.max_output_tokens
            started = time.monotonic()
            response = await self._chat_within(budget, steps, messages, request)
            if response is None:  # the deadline passed before the model answered
                answer, forced_reason = _fill(DEADLINE, seconds=f"{spec.max_seconds:g}"), "deadline"
                break
            budget.spend(model_calls=1, tokens=response.usage.total_tokens)
            usage.add(response.usage)
            parsed = self.dialect.parse(response, set() if final else names)
            self._emit(steps, ModelStep(len(steps), response, parsed, time.monotonic() - started, forced=final))
            messages.append(self.dialect.assistant_message(response, parsed))

            if final:
                answer = parsed.answer or _salvage(parsed, response.content) or NOT_FOUND
                break
            if parsed.answer is not None and parsed.answer.strip():
                retry = gate.retry_note(parsed.answer, observed, can_retry=budget.exhausted() is None, tools=names)
                lookup = gate.lookup
                if retry:  # key facts no tool returned: one chance per run to look them up
                    # The rejected answer leaves the conversation (a small model repeats what it said
                    # before), and the loop runs the look-up itself, so the retry costs one model call.
                    # Its result goes inside the note: as a tool turn of its own, the model copied the
                    # loop's call instead of answering.
                    messages.pop()
                    if lookup is not None:
                        outputs: list[str] = []
                        while lookup is not None:  # the gate follows up at most once
                            seen_calls.add(f"{lookup.name}:{json.dumps(lookup.arguments, sort_keys=True)}")
                            outputs.append(await self._call_tool(lookup, ctx, taint, steps, returned, observed))
                            lookup = gate.follow_up(outputs[-1])
                        retry = retry.replace("{results}", gate.results(outputs))
                    messages.append(self._note(steps, retry))
                    continue
                answer = parsed.answer
                break
            malformed = (bool(parsed.error) or not parsed.tool_calls
                         or any(c.name not in names for c in parsed.tool_calls))
            if parsed.error or not parsed.tool_calls:
                note = parsed.error or "Your reply was empty. Call a tool or give your final answer."
                messages.append(self._note(steps, note))
                continue

            results: list[tuple[ToolCall, str]] = []
            for call in parsed.tool_calls:
                key = f"{call.name}:{json.dumps(call.arguments, sort_keys=True)}"
                if key in seen_calls:
                    repeats += 1
                    guard = load_prompt("repeat_guard").format(tool=call.name)
                    self._emit(steps, ToolStep(len(steps), call, ToolResult(guard, ok=False), 0.0, skipped="repeat"))
                    results.append((call, guard))
                    if repeats >= 2:
                        forced_reason = "the same tool call was repeated"
                    continue
                seen_calls.add(key)
                results.append((call, await self._call_tool(call, ctx, taint, steps, returned, observed)))
            messages.extend(self.dialect.observation_messages(results))

        answer = strip_model_sources(answer)
        stop = "deadline" if forced_reason == "deadline" else "forced" if forced_reason else "answer"
        grounding = gate.final(answer, observed)
        if grounding is not None and (grounding.absent_subjects or grounding.absent_ids) and stop != "deadline":
            # Whatever the model claims about a version or id that nothing the tools returned names
            # comes from memory, as does an answer that is only an id no result names: the files do
            # not have it. The model's guess stays in the steps (--verbose).
            self._emit(steps, NoteStep(len(steps), f"Answer replaced, the question's subject or the answer's "
                                                   f"id is in no tool result; the model had answered: {answer}"))
            answer = absent_answer(grounding.absent_subjects, grounding.absent_ids)
            grounding = gate.final(answer, observed)
        sources = select_sources(answer, question, returned)
        return RunResult(question=question, answer=answer, sources=sources, steps=steps, model=self.model.name,
                         seconds=budget.elapsed, usage=usage, stop_reason=stop,
                         evidence=verify(answer, sources, returned, observed, question),
                         grounded=grounding.grounded if grounding else None,
                         unsupported=grounding.unsupported_texts() if grounding else [])

    async def _call_tool(self, call: ToolCall, ctx: ToolContext, taint: TaintGuard, steps: list[Step],
                         returned: list[SourceRef], observed: list[str]) -> str:
        """Run one tool call and record it; returns the observation the model sees."""
        started = time.monotonic()
        # Untrusted web content in the conversation must not make us write, or send data out.
        refusal = taint.refusal(self.tools.get(call.name), call.arguments)
        if refusal is not None:
            result = ToolResult.error(refusal)
        else:
            result = await self.tools.run(call.name, call.arguments, ctx, call.id)
        taint.observe(result)
        self._emit(steps, ToolStep(len(steps), call, result, time.monotonic() - started))
        returned.extend(result.sources)
        output = cap_observation(result.output, self.spec.observation_cap())
        if result.ok:  # an error message echoes the call's arguments: it supports no fact
            observed.append(output)
        return output

    async def _chat_within(self, budget: Budget, steps: list[Step], messages: list[ChatMessage],
                           request: ChatRequest) -> ChatResponse | None:
        """One model call that gives up at the run's deadline (retries included); None when it did.

        Remote backends get the time left as their request timeout. The embedded backend cannot be
        interrupted mid-generation: the run ends at the deadline and its thread finishes on its own."""
        left = budget.remaining()
        if left > 0:
            request.timeout = left
            try:
                return await asyncio.wait_for(
                    self.model.chat(fit_messages(messages, self.spec.context_tokens, self.spec.max_output_tokens,
                                                 getattr(self.model, "count_tokens", None)),
                                    request), left + DEADLINE_GRACE_S)
            except (TimeoutError, DeadlineError):
                pass  # wait_for gave up, or the backend's time (retries included) ran out
        self._emit(steps, NoteStep(len(steps), f"the run's time limit of {self.spec.max_seconds:g} s was reached "
                                               "before the model answered; the call was abandoned"))
        return None

    def _emit(self, steps: list[Step], step: Step) -> None:
        steps.append(step)
        if self.on_step:
            self.on_step(step)

    def _note(self, steps: list[Step], text: str) -> ChatMessage:
        """Record what the loop tells the model and return it as the dialect's message."""
        self._emit(steps, NoteStep(len(steps), text))
        return self.dialect.note_message(text)


def _salvage(parsed: ParsedTurn, content: str) -> str | None:
    """In a forced turn, prose without protocol tags still counts as the answer."""
    # When the turn parsed as tool calls, the content is protocol text (<tool_call>...): never the answer.
    text = (parsed.thought if parsed.tool_calls else parsed.thought or content).strip()
    return text or None


def _fill(template: str, **values: str) -> str:
    """str.format for prompt texts that an optimizer may have rewritten: stray braces stay as they are."""
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        return template
