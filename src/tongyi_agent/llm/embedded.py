"""The embedded backend: a GGUF model run in-process by llama-cpp-python, no network, no key.

Text only: tool calls are the agent dialect's business (ReAct with a GBNF grammar for these small
models). llama-cpp-python's own function-calling chat formats are not used: they cannot emit a text
answer and drop tool results.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

from tongyi_agent.llm.base import ChatMessage, ChatRequest, ChatResponse, ModelError, Usage


class EmbeddedBackend:
    """`Llama(model_path)` behind the ChatModel protocol. One call at a time per loaded model."""

    supports_grammar = True

    def __init__(self, model_path: Path, *, name: str, n_ctx: int = 4096, n_threads: int | None = None,
                 max_output_tokens: int = 1024, temperature: float = 0.0, seed: int = 0,
                 lora_path: Path | None = None) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:  # pragma: no cover - the default install has it
            raise ModelError("llama-cpp-python is not installed; reinstall tongyi-agent") from exc
        self.name = name
        self.max_output_tokens = max_output_tokens
        self.temperature = temperature
        self._lock = threading.Lock()
        if lora_path is not None and not lora_path.is_file():
            raise ModelError(f"LoRA adapter not found: {lora_path}")
        try:
            self._llama = Llama(model_path=str(model_path), n_ctx=n_ctx,
                                n_threads=n_threads or max(1, os.cpu_count() or 1),
                                lora_path=str(lora_path) if lora_path else None,
                                seed=seed, verbose=False)
        except (ValueError, RuntimeError) as exc:
            what = f"{model_path.name} with adapter {lora_path}" if lora_path else model_path.name
            raise ModelError(f"could not load {what}: {exc}") from exc
        self.n_ctx = n_ctx

    async def chat(self, messages: list[ChatMessage], request: ChatRequest | None = None) -> ChatResponse:
        return await asyncio.to_thread(self._chat_sync, messages, request or ChatRequest())

    def _chat_sync(self, messages: list[ChatMessage], request: ChatRequest) -> ChatResponse:
        from llama_cpp import LlamaGrammar

        kwargs: dict[str, Any] = {
            "messages": [_to_plain(m) for m in messages],
            "max_tokens": request.max_tokens or self.max_output_tokens,
            "temperature": self.temperature if request.temperature is None else request.temperature,
        }
        if request.top_p is not None:
            kwargs["top_p"] = request.top_p
        if request.stop:
            kwargs["stop"] = request.stop
        if request.grammar:
            kwargs["grammar"] = LlamaGrammar.from_string(request.grammar, verbose=False)
        with self._lock:
            try:
                result = self._llama.create_chat_completion(**kwargs)
            except ValueError as exc:  # e.g. prompt longer than the context window
                raise ModelError(f"{self.name}: {exc}") from exc
        choice = result["choices"][0]
        usage = result.get("usage") or {}
        return ChatResponse(
            content=choice["message"].get("content") or "",
            usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
            model=self.name,
            finish_reason=choice.get("finish_reason"),
        )

    def count_tokens(self, text: str) -> int:
        return len(self._llama.tokenize(text.encode(), add_bos=False))


def _to_plain(message: ChatMessage) -> dict[str, str]:
    """Text dialects already render tool calls and results as text; keep roles the template knows."""
    role = "user" if message.role == "tool" else message.role
    return {"role": role, "content": message.content}
