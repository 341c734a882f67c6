"""Evaluate, save and restore the KV state of a prompt prefix in a llama-cpp-python `Llama`.

`Llama.save_state()` is not used: it copies the logits buffer too (n_batch x vocabulary floats,
about 300 MB for Qwen2.5), where the KV cells of one sequence are what a prefix needs (about 28 KB
per token for the 1.5B model). After a restore, `Llama.generate` finds the prefix in `input_ids`
and evaluates only the rest of the prompt, exactly as it does for a prefix kept in memory.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

_SEQUENCE = 0  # llama-cpp-python evaluates everything as sequence 0


def chat_prefix_tokens(llama: Any, system: str) -> list[int] | None:
    """The tokens every prompt with this system message starts with, under the model's chat template.

    Rendered by the same Jinja template llama-cpp-python uses for `create_chat_completion`: two
    conversations that differ only in the user's text share exactly the prefix we want. The last
    token is dropped, because a tokenizer may merge it with what follows. None when the model has
    no template in its metadata.
    """
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        return None
    formatter = Jinja2ChatFormatter(template=template, eos_token=_token_text(llama, llama.token_eos()),
                                    bos_token=_token_text(llama, llama.token_bos()))
    one = formatter(messages=[{"role": "system", "content": system}, {"role": "user", "content": "A"}]).prompt
    two = formatter(messages=[{"role": "system", "content": system}, {"role": "user", "content": "B"}]).prompt
    shared = 0
    while shared < min(len(one), len(two)) and one[shared] == two[shared]:
        shared += 1
    tokens = llama.tokenize(one[:shared].encode(), add_bos=_adds_bos(llama), special=True)
    return tokens[:-1] if len(tokens) > 1 else None


def _token_text(llama: Any, token: int) -> str:
    return "" if token < 0 else llama.detokenize([token], special=True).decode(errors="replace")


def _adds_bos(llama: Any) -> bool:
    return str(llama.metadata.get("tokenizer.ggml.add_bos_token", "false")).lower() == "true"


def holds_prefix(llama: Any, tokens: Sequence[int]) -> bool:
    """Whether the context already has these tokens evaluated at its start (a warm process)."""
    n = len(tokens)
    return llama.n_tokens >= n and list(llama.input_ids[:n]) == list(tokens)


def evaluate_and_save(llama: Any, tokens: Sequence[int]) -> bytes:
    """Evaluate exactly `tokens` from an empty context and return the sequence's KV state."""
    import llama_cpp

    _clear(llama)
    llama.eval(list(tokens))
    size = llama_cpp.llama_state_seq_get_size(llama.ctx, _SEQUENCE)
    buffer = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(llama.ctx, buffer, size, _SEQUENCE)
    if written == 0 or written > size:
        raise RuntimeError("llama.cpp could not copy the sequence state")
    return bytes(buffer)[:written]


def restore(llama: Any, tokens: Sequence[int], state: bytes) -> bool:
    """Load a state saved by `evaluate_and_save` for `tokens`; False (and an empty context) if refused."""
    import llama_cpp

    _clear(llama)
    buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
    if llama_cpp.llama_state_seq_set_data(llama.ctx, buffer, len(state), _SEQUENCE) == 0:
        _clear(llama)
        return False
    llama.input_ids[: len(tokens)] = list(tokens)
    llama.n_tokens = len(tokens)
    return True


def _clear(llama: Any) -> None:
    import llama_cpp

    llama.reset()  # n_tokens = 0; the next generate evaluates before sampling
    memory = llama_cpp.llama_get_memory(llama.ctx)
    if memory is not None:
        llama_cpp.llama_memory_clear(memory, True)
