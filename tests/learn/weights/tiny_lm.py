"""A tiny random Qwen2 and a word-level tokenizer, built in-test, for TRL training tests.

The model has the real architecture (so the PEFT → GGUF name map is exercised end to end) but a
vocabulary of a few words, so tests need no downloaded weights and train in seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tongyi_agent.learn.weights.gguf_lora import BaseModelInfo

WORDS = ("which", "port", "does", "billing", "use", "?", "the", "answer", "is", "9090", "search", "first",
         "you", "are", "careful", "system", "user", "assistant")
TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m.role }} {{ m.content }}<|im_end|> {% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant {% endif %}")


def tiny_tokenizer(words: Sequence[str] = WORDS) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]
    vocab = {w: i for i, w in enumerate(specials + list(words))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<unk>",
                                        eos_token="<|im_end|>", additional_special_tokens=specials[2:])
    tokenizer.chat_template = TEMPLATE
    return tokenizer


def tiny_model(vocab_size: int) -> Any:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         tie_word_embeddings=True)
    return Qwen2ForCausalLM(config)


def base_info(model: Any) -> BaseModelInfo:
    """What gguf_lora.base_model_info reads from a GGUF, taken from the tiny model's own linear layers."""
    import gguf
    import torch

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN2, 2)
    shapes = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            gguf_name = names.get_name(name + ".weight", try_suffixes=(".weight",))
            if gguf_name:
                shapes[gguf_name] = (module.in_features, module.out_features)
    return BaseModelInfo("qwen2", 2, shapes)
