"""GBNF grammars for the ReAct dialect: their content, and that llama.cpp's own parser accepts them."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import platformdirs
import pytest

from tongyi_agent.agent.dialects.grammar import react_grammar
from tongyi_agent.tools import default_registry
from tongyi_agent.tools.base import Tool, ToolContext, ToolRegistry, ToolResult


def ping(ctx: ToolContext) -> ToolResult:
    """Check that tools run."""
    return ToolResult("pong")


def find_notes(ctx: ToolContext, query: str | None = None, limit: int = 10, exact: bool = False,
               min_score: float = 0.5) -> ToolResult:
    """Find notes; every argument is optional.

    Args:
        query: words to look for
        limit: most notes to return
        exact: match whole words only
        min_score: lowest score shown
    """
    return ToolResult("none")


def odd_registry() -> ToolRegistry:
    return ToolRegistry([Tool.from_function(ping), Tool.from_function(find_notes, name="find-notes.v2")])


def rules(grammar: str) -> dict[str, str]:
    """rule name -> body, for one-line rules."""
    found = {}
    for line in grammar.splitlines():
        name, sep, body = line.partition(" ::= ")
        if sep:
            found[name.strip()] = body
    return found


def test_grammar_names_every_tool_with_its_argument_rule() -> None:
    tools = default_registry()
    grammar = react_grammar(tools)
    parsed = rules(grammar)
    assert parsed["root"] == '"Thought: " thought "\\n" ( action | final )'
    for name in tools.names():
        rule = "args-" + name.replace("_", "-")
        assert f'"{name}\\nAction Input: " {rule}' in parsed["action"]
        assert rule in parsed
    # Every rule that is referenced is defined.
    referenced = set(re.findall(r"\b(args-[\w-]+|thought|answer|string|integer|ws|final|action)\b",
                                " ".join(parsed.values())))
    assert referenced <= set(parsed)


def test_required_arguments_are_mandatory_and_optional_ones_optional() -> None:
    parsed = rules(react_grammar(default_registry()))
    read_file = parsed["args-read-file"]
    # path is required: it directly follows the opening brace, not inside an optional group.
    assert read_file.startswith('"{" ws "\\"path\\"" ws ":" ws string ')
    assert '( "," ws "\\"start_line\\"" ws ":" ws ( integer | "null" ) )?' in read_file
    assert '( "," ws "\\"end_line\\"" ws ":" ws ( integer | "null" ) )?' in read_file
    search = parsed["args-search-files"]
    assert search.startswith('"{" ws "\\"query\\"" ws ":" ws string ')
    assert '( "," ws "\\"path\\"" ws ":" ws string )?' in search
    # list_files has only optional arguments: the whole body is optional, so "{}" is allowed.
    list_files = parsed["args-list-files"]
    assert list_files.startswith('"{" ws ( ') and list_files.endswith(' )? ws "}"')


def test_no_parameters_and_all_optional_tools() -> None:
    parsed = rules(react_grammar(odd_registry()))
    assert parsed["args-ping"] == '"{" ws "}"'
    body = parsed["args-find-notes-v2"]
    # Any one of the optional arguments may come first, each with its own type.
    for first in ('"\\"query\\"" ws ":" ws ( string | "null" )', '"\\"limit\\"" ws ":" ws integer',
                  '"\\"exact\\"" ws ":" ws boolean', '"\\"min_score\\"" ws ":" ws number'):
        assert f"( {first}" in body or f"| {first}" in body
    assert '"find-notes.v2\\nAction Input: " args-find-notes-v2' in parsed["action"]


@pytest.mark.parametrize("tools", [default_registry(), odd_registry(), ToolRegistry()])
def test_final_only_grammar_has_no_action(tools: ToolRegistry) -> None:
    grammar = react_grammar(tools, final_only=True)
    parsed = rules(grammar)
    assert parsed["root"] == '"Thought: " thought "\\n" final'
    assert parsed["final"] == '"Final Answer: " answer'
    assert "Action" not in grammar and "action" not in parsed
    assert not any(name.startswith("args-") for name in parsed)


def test_empty_registry_grammar_is_final_only() -> None:
    assert react_grammar(ToolRegistry()) == react_grammar(default_registry(), final_only=True)


# -- llama.cpp's parser ------------------------------------------------------------------------------------
#
# In llama-cpp-python 0.3.x `LlamaGrammar.from_string` only stores the text; llama.cpp parses a grammar when
# a sampler is built for a vocabulary. A GGUF loaded with vocab_only=True (no weights, well under a second)
# gives that vocabulary, so these tests catch GBNF syntax errors without running a model.

_CACHE = Path(os.environ.get("TONGYI_CACHE_DIR") or platformdirs.user_cache_dir("tongyi-agent"))


def _smallest_gguf() -> Path | None:
    found = sorted((_CACHE / "models").glob("*.gguf"), key=lambda p: p.stat().st_size)
    return found[0] if found else None


@pytest.fixture(scope="module")
def gbnf_parses() -> Iterator[Callable[[str], bool]]:
    llama_cpp = pytest.importorskip("llama_cpp")
    path = _smallest_gguf()
    if path is None:
        pytest.skip(f"no GGUF model in {_CACHE / 'models'} to take a vocabulary from")
    from llama_cpp import llama_cpp as lib

    model = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    vocab = lib.llama_model_get_vocab(model._model.model)

    def parses(grammar: str) -> bool:
        sampler = lib.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
        if not sampler:
            return False
        lib.llama_sampler_free(sampler)
        return True

    yield parses
    model.close()


def test_grammar_check_rejects_broken_gbnf(gbnf_parses: Callable[[str], bool]) -> None:
    # The check itself must be able to fail.
    assert gbnf_parses('root ::= "a" ( "b"') is False
    assert gbnf_parses("root ::= undefined-rule") is False
    assert gbnf_parses('root ::= "a" | "b"') is True


@pytest.mark.parametrize("final_only", [False, True])
@pytest.mark.parametrize("make_tools", [default_registry, odd_registry, ToolRegistry], ids=["default", "odd", "empty"])
def test_llama_cpp_parses_the_grammar(gbnf_parses: Callable[[str], bool], make_tools: Callable[[], ToolRegistry],
                                      final_only: bool) -> None:
    grammar = react_grammar(make_tools(), final_only=final_only)
    from llama_cpp import LlamaGrammar

    assert LlamaGrammar.from_string(grammar, verbose=False) is not None
    assert gbnf_parses(grammar), grammar
