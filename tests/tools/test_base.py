"""Schema generation, argument validation and the registry's error handling."""

from __future__ import annotations

import time

import pytest

from tongyi_agent.tools import default_registry, tool_names
from tongyi_agent.tools.base import Tool, ToolContext, ToolError, ToolRegistry, ToolResult


def sample(ctx: ToolContext, name: str, count: int = 3, ratio: float | None = None,
           loud: bool = False) -> ToolResult:
    """Say a name some times.

    Args:
        name: who to greet
        count: how many times
    """
    return ToolResult(output=" ".join([name.upper() if loud else name] * count))


def failing(ctx: ToolContext) -> ToolResult:
    """Always fails the way a bad model request does."""
    raise ToolError("that file does not exist")


def slow(ctx: ToolContext) -> ToolResult:
    """Takes too long."""
    time.sleep(1.0)
    return ToolResult(output="finished")


def test_schema_from_signature() -> None:
    tool = Tool.from_function(sample)
    schema = tool.parameters
    assert tool.name == "sample"
    assert tool.description == "Say a name some times."
    assert schema["required"] == ["name"]
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert "ctx" not in props
    assert props["name"] == {"type": "string", "description": "who to greet"}
    assert props["count"] == {"type": "integer", "description": "how many times", "default": 3}
    assert props["ratio"] == {"type": ["number", "null"]}
    assert props["loud"]["type"] == "boolean"
    assert tool.openai_schema()["function"]["parameters"] is schema


def test_unsupported_parameter_type_is_rejected() -> None:
    def bad(ctx: ToolContext, items: list[str]) -> ToolResult:
        """Bad."""
        return ToolResult(output="")

    with pytest.raises(TypeError, match="unsupported"):
        Tool.from_function(bad)


def test_validate_coerces_numeric_strings() -> None:
    tool = Tool.from_function(sample)
    assert tool.validate({"name": "x", "count": "3"}) == {"name": "x", "count": 3}
    assert tool.validate({"name": "x", "count": "-2"})["count"] == -2
    assert tool.validate({"name": "x", "count": 4.0})["count"] == 4
    assert tool.validate({"name": "x", "ratio": 1})["ratio"] == 1.0
    assert tool.validate({"name": "x", "ratio": None})["ratio"] is None


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"name": "x", "colour": "red"}, "unknown argument"),
        ({"count": 2}, "missing required argument"),
        ({"name": "x", "count": "three"}, "'count' must be integer"),
        ({"name": "x", "count": "--3"}, "'count' must be integer"),
        ({"name": "x", "count": True}, "'count' must be integer"),
        ({"name": "x", "loud": "yes"}, "'loud' must be boolean"),
        ({"name": None}, "'name' must be string"),
        (["x"], "must be a JSON object"),
    ],
)
def test_validate_rejects_bad_arguments(arguments: object, message: str) -> None:
    with pytest.raises(ToolError, match=message):
        Tool.from_function(sample).validate(arguments)


async def test_registry_runs_a_valid_call(tmp_path) -> None:
    registry = ToolRegistry([Tool.from_function(sample)])
    result = await registry.run("sample", {"name": "hi", "count": "2"}, ToolContext(root=tmp_path))
    assert result.ok
    assert result.output == "hi hi"


async def test_registry_reports_unknown_tool(tmp_path) -> None:
    registry = ToolRegistry([Tool.from_function(sample)])
    result = await registry.run("delete_everything", {}, ToolContext(root=tmp_path))
    assert not result.ok
    assert "unknown tool 'delete_everything'" in result.output
    assert "sample" in result.output


async def test_registry_reports_bad_arguments(tmp_path) -> None:
    registry = ToolRegistry([Tool.from_function(sample)])
    result = await registry.run("sample", {"nme": "x"}, ToolContext(root=tmp_path))
    assert not result.ok
    assert "unknown argument(s) nme" in result.output


async def test_registry_turns_tool_error_into_result(tmp_path) -> None:
    registry = ToolRegistry([Tool.from_function(failing)])
    result = await registry.run("failing", {}, ToolContext(root=tmp_path))
    assert result == ToolResult(output="Error: that file does not exist", ok=False)


async def test_registry_stops_slow_tool(tmp_path) -> None:
    registry = ToolRegistry([Tool.from_function(slow)], timeout=0.2)
    started = time.monotonic()
    result = await registry.run("slow", {}, ToolContext(root=tmp_path))
    assert time.monotonic() - started < 0.9
    assert not result.ok
    assert "abandoned after 0.2 s (the tool time limit)" in result.output


def test_registry_refuses_duplicate_names() -> None:
    registry = ToolRegistry([Tool.from_function(sample)])
    with pytest.raises(ValueError, match="registered twice"):
        registry.add(Tool.from_function(sample))


def test_default_registry_offers_every_tool_and_subsets() -> None:
    registry = default_registry(timeout=5.0)
    assert registry.names() == tool_names() and len(registry) == 13
    assert [t.name for t in registry if t.writes] == ["clean_csv", "clean_markdown"]
    assert default_registry(["search_files", "list_files"]).names() == ["search_files", "list_files"]
    with pytest.raises(ValueError, match=r"unknown tool.*grep"):
        default_registry(["grep"])
    assert registry.timeout == 5.0
    for schema in registry.openai_schemas():
        function = schema["function"]
        assert function["description"]
        assert all("description" in p for p in function["parameters"]["properties"].values())
    read_schema = registry.get("read_file")
    assert read_schema is not None
    assert read_schema.parameters["required"] == ["path"]
