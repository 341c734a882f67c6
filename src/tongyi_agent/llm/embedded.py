"""The embedded backend: a GGUF model run in-process by llama-cpp-python, no network, no key.

Text only: tool calls are the agent dialect's business (ReAct with a GBNF grammar for these small
models). llama-cpp-python's own function-calling chat formats are not used: they cannot emit a text
answer and drop tool results.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tongyi_agent.llm import llama_prefix
from tongyi_agent.llm.base import ChatMessage, ChatRequest, ChatResponse, ModelError, Usage
from tongyi_agent.llm.prompt_cache import CachedPrefix, PromptCache, file_digest, prefix_key
from tongyi_agent.llm.repetition import RepetitionGuard


class EmbeddedBackend:
    """`Llama(model_path)` behind the ChatModel protocol. One call at a time per loaded model."""

    supports_grammar = True

    def __init__(self, model_path: Path, *, name: str, n_ctx: int = 4096, n_threads: int | None = None,
                 max_output_tokens: int = 1024, temperature: float = 0.0, seed: int = 0,
                 lora_path: Path | None = None, prompt_cache: PromptCache | None = None,
                 weights_id: str | None = None) -> None:
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
        # The system prompt's KV state is loaded from (or saved to) this cache instead of prefilled.
        self.prompt_cache = prompt_cache
        if prompt_cache is not None:
            prompt_cache.on_note = self._note
        self.on_note: Callable[[str], None] | None = None  # --verbose notes (cache misses, discarded entries)
        self._weights_id = weights_id or f"{model_path.resolve()}:{model_path.stat().st_size}"
        self._adapter_id = file_digest(lora_path) if lora_path else ""
        self._prefixes: dict[str, list[int] | None] = {}  # system text -> prefix tokens
        self.prefix_stats = {"loaded": 0, "saved": 0, "warm": 0}

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
            if self.prompt_cache is not None and messages and messages[0].role == "system":
                self._warm_prefix(messages[0].content)
            guard = RepetitionGuard(once=request.once_per_reply)
            generated, finish = 0, None
            try:
                # Streamed, so that a generation stuck in a loop can be stopped (llm/repetition.py).
                stream = self._llama.create_chat_completion(**kwargs, stream=True)
                for chunk in stream:
                    choice = chunk["choices"][0]
                    piece = choice["delta"].get("content")
                    finish = choice.get("finish_reason") or finish
                    if piece is not None:
                        generated += 1  # one chunk per sampled token
                        if guard.feed(piece):
                            finish = "repetition"
                            stream.close()
                            break
            except ValueError as exc:  # e.g. prompt longer than the context window
                raise ModelError(f"{self.name}: {exc}") from exc
            # A stream reports no usage: what the context holds now is the prompt and the tokens evaluated.
            prompt_tokens = max(0, self._llama.n_tokens - generated + (1 if finish == "length" else 0))
        return ChatResponse(
            content=guard.result(),
            usage=Usage(prompt_tokens, generated),
            model=self.name,
            finish_reason=finish,
        )

    def _warm_prefix(self, system: str) -> None:
        """Have the system prompt's KV state in the context: kept from the last call, loaded from
        the prompt cache, or evaluated now and saved there for the next process."""
        assert self.prompt_cache is not None
        if system not in self._prefixes:
            self._prefixes[system] = llama_prefix.chat_prefix_tokens(self._llama, system)
        tokens = self._prefixes[system]
        if not tokens or len(tokens) >= self.n_ctx // 2:
            return
        if llama_prefix.holds_prefix(self._llama, tokens):
            self.prefix_stats["warm"] += 1
            return
        import llama_cpp

        key = prefix_key(weights_id=self._weights_id, adapter_id=self._adapter_id, n_ctx=self.n_ctx,
                         runtime=f"llama-cpp-python {llama_cpp.__version__}", tokens=tokens)
        entry = self.prompt_cache.get(key)
        if entry is not None:
            if tuple(tokens) == entry.tokens and llama_prefix.restore(self._llama, tokens, entry.state):
                self.prefix_stats["loaded"] += 1
                self._note(f"prompt cache: loaded the KV state of {len(tokens)} prefix tokens")
                return
            self.prompt_cache.discard(key, "llama.cpp refused the state")
        try:
            state = llama_prefix.evaluate_and_save(self._llama, tokens)
        except RuntimeError as exc:
            self._note(f"prompt cache: not saved ({exc})")
            return
        self.prompt_cache.put(key, CachedPrefix(tuple(tokens), state))
        self.prefix_stats["saved"] += 1
        self._note(f"prompt cache: saved the KV state of {len(tokens)} prefix tokens ({len(state) // 1024} KiB)")

    def _note(self, text: str) -> None:
        if self.on_note is not None:
            self.on_note(text)

    def count_tokens(self, text: str) -> int:
        return len(self._llama.tokenize(text.encode(), add_bos=False))


def _to_plain(message: ChatMessage) -> dict[str, str]:
    """Text dialects already render tool calls and results as text; keep roles the template knows."""
    role = "user" if message.role == "tool" else message.role
    return {"role": role, "content": message.content}
