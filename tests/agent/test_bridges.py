"""Nested questions: an answer that stopped at a bridge (the lead's name, asked about the lead's
organisation) is looked up one step further, with real search_files output."""

from __future__ import annotations

from pathlib import Path

import pytest

from tongyi_agent.agent.bridges import Bridge, Chain, about_bridge, bridge, chain_of, next_bridge
from tongyi_agent.agent.dialects import NativeDialect
from tongyi_agent.agent.grounding import GroundingGate, key_facts
from tongyi_agent.agent.loop import Agent, AgentSpec
from tongyi_agent.agent.steps import ToolStep
from tongyi_agent.llm.base import ChatResponse, ToolCall
from tongyi_agent.llm.scripted import ScriptedModel
from tongyi_agent.tools import default_registry
from tongyi_agent.tools.base import ToolContext
from tongyi_agent.tools.search_files import search_files

PROJECT = """# Project Siskin

Siskin investigates battery degradation.

## Key facts

- Status: on hold
- Lead: Jonas Quist
- Budget: EUR 835,000
- Start date: 2023-04-23
"""
DIRECTORY = """# Staff directory

| Name | Role | Organisation | Start year |
| --- | --- | --- | --- |
| Jonah Quist | Technician | Fennwick Institute | 2008 |
| Jonas Quist | Senior scientist | Brightmoor Research | 2009 |
| Rafael Brannock | Director | Brightmoor Research | 2019 |
| Hana Sandoval | Director | Fennwick Institute | 2013 |
"""
ORG = """# Brightmoor Research

Visitors sign in at the front desk.

- Founded: 1987
- Headquarters: Ghent
- Director: Rafael Brannock
"""
NOTES = """# Meeting notes, 2024-10-31

Attendees: Luca Castell, Jonas Quist

## Items

- Siskin: Jonas Quist presented the latest measurements.
"""
ORG_OF_LEAD = "Which organisation does the lead of project Siskin work for?"
DIRECTOR = "Who directs the organisation that employs the lead of project Siskin?"


@pytest.fixture()
def world(tmp_path: Path) -> ToolContext:
    files = {"projects/siskin.md": PROJECT, "people/directory.md": DIRECTORY,
             "orgs/brightmoor-research.md": ORG, "notes/2024-10-31-meeting.md": NOTES}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return ToolContext(root=tmp_path)


def search(ctx: ToolContext, query: str) -> str:
    return search_files(ctx, query).output


def names_in(text: str) -> list[str]:
    return [f.text for f in key_facts(text) if f.kind == "name"]


def named(chain: Chain, names: list[str], outputs: list[str], previous: list[str]) -> Bridge | None:
    """`bridge` for an answer that is only `names`."""
    return bridge(chain, names, names, outputs, previous, names_in)


@pytest.mark.parametrize(("question", "depth", "steps"), [
    (ORG_OF_LEAD, 1, ()),
    ("What is the role of the person who leads project Merlin?", 1, ()),
    ("In which year did the lead of project Curlew start at their organisation?", 1, ()),
    (DIRECTOR, 2, ("organisation",)),
    ("In which city is the organisation of the lead of project Merlin headquartered?", 2, ("organisation",)),
])
def test_nested_questions_have_a_chain(question: str, depth: int, steps: tuple[str, ...]) -> None:
    chain = chain_of(question)
    assert chain is not None and chain.relation == "lead" and chain.subject_word in question
    assert (chain.depth, chain.steps) == (depth, steps)


@pytest.mark.parametrize("question", [
    "Who leads project Curlew?",  # asks for the relation itself
    "Who is the lead of project Curlew?",
    "What is the current budget of project Siskin?",
    "Who is the team lead of the billing service?",
    "Which urllib3 version was released in the same month as requests 2.32.4?",
])
def test_direct_questions_have_none(question: str) -> None:
    assert chain_of(question) is None


def test_the_leads_name_is_a_bridge_and_the_right_answer_is_not(world: ToolContext) -> None:
    chain = chain_of(ORG_OF_LEAD)
    assert chain is not None
    found = [search(world, "lead project Siskin")]
    assert named(chain, ["Jonas Quist"], found, []) == Bridge("Jonas Quist", "- Lead: Jonas Quist")
    assert named(chain, ["Brightmoor Research"], [*found, search(world, "Jonas Quist")], []) is None
    assert named(chain, [], found, []) is None


def test_an_answer_from_the_subjects_own_record_stops_before_the_bridge(world: ToolContext) -> None:
    chain = chain_of("In which year did the lead of project Siskin start at their organisation?")
    assert chain is not None
    found = [search(world, "lead project Siskin start")]
    assert "Start date: 2023-04-23" in found[0]
    assert bridge(chain, ["2023"], [], found, [], names_in) == Bridge("Jonas Quist", "- Lead: Jonas Quist")
    looked = [*found, search(world, "Jonas Quist")]
    assert bridge(chain, ["2009"], [], looked, ["Jonas Quist"], names_in) is None  # the answer
    assert bridge(chain, ["2009"], [], looked, [], names_in) is None  # on a line of its own, not the subject's


def test_a_second_step_is_a_bridge_only_for_a_question_nested_twice(world: ToolContext) -> None:
    outputs = [search(world, "lead project Siskin"), search(world, "Jonas Quist")]
    twice, once = chain_of(DIRECTOR), chain_of(ORG_OF_LEAD)
    assert twice is not None and once is not None
    assert named(twice, ["Brightmoor Research"], outputs, ["Jonas Quist"]) == Bridge(
        "Brightmoor Research", "| Jonas Quist | Senior scientist | Brightmoor Research | 2009 |")
    assert named(once, ["Brightmoor Research"], outputs, ["Jonas Quist"]) is None  # the answer, for once
    assert named(twice, ["Jonas Quist"], outputs, ["Jonas Quist"]) is None  # the same bridge again


def test_the_bridges_look_up_shows_its_record_not_its_neighbours(world: ToolContext) -> None:
    chain = chain_of(ORG_OF_LEAD)
    assert chain is not None
    shown = about_bridge(search(world, "Jonas Quist"), "Jonas Quist", chain, limit=4)
    assert shown.index("| Name | Role | Organisation | Start year |") < shown.index("| Jonas Quist |")
    assert "Jonah Quist" not in shown  # a neighbouring row
    assert "Lead: Jonas Quist" not in shown and "Siskin:" not in shown  # where the answer came from
    assert shown.index("Staff directory") < shown.index("Attendees")  # the table row first
    record = about_bridge(search(world, "Brightmoor Research"), "Brightmoor Research", chain, limit=4)
    assert record.startswith('[orgs/brightmoor-research.md, section "Brightmoor Research"')
    assert "Director: Rafael Brannock" in record  # a section named after the bridge comes whole


def test_the_next_step_is_read_off_the_column_the_question_names(world: ToolContext) -> None:
    twice = chain_of(DIRECTOR)
    assert twice is not None
    shown = about_bridge(search(world, "Jonas Quist"), "Jonas Quist", twice, limit=4)
    lead = Bridge("Jonas Quist", "- Lead: Jonas Quist")
    found = next_bridge(shown, twice, lead)
    assert found is not None and found.name == "Brightmoor Research"
    once = chain_of(ORG_OF_LEAD)
    assert once is not None and next_bridge(shown, once, lead) is None  # nothing more to read off


def test_the_gate_looks_the_bridge_up_once_per_step(world: ToolContext) -> None:
    gate = GroundingGate(ORG_OF_LEAD)
    outputs = [search(world, "lead project Siskin")]
    note = gate.retry_note("Jonas Quist", outputs, can_retry=True, tools=["search_files"])
    assert note is not None and '"Jonas Quist" is a step on the way ("- Lead: Jonas Quist")' in note
    assert gate.lookup == ToolCall("grounding_lookup", "search_files", {"query": "Jonas Quist"})
    looked = search(world, "Jonas Quist")
    assert gate.follow_up(looked) is None  # nested once: nothing to follow
    assert "| Jonas Quist | Senior scientist | Brightmoor Research |" in gate.results([looked])
    outputs.append(looked)
    assert gate.retry_note("Brightmoor Research", outputs, can_retry=True, tools=["search_files"]) is None
    assert gate.retry_note("Jonas Quist", outputs, can_retry=True, tools=["search_files"]) is None  # no loop


def test_the_gate_without_search_or_without_retries_accepts_the_bridge(world: ToolContext) -> None:
    outputs = [search(world, "lead project Siskin")]
    assert GroundingGate(ORG_OF_LEAD).retry_note("Jonas Quist", outputs, can_retry=False,
                                                 tools=["search_files"]) is None
    assert GroundingGate(ORG_OF_LEAD).retry_note("Jonas Quist", outputs, can_retry=True, tools=[]) is None
    assert GroundingGate(ORG_OF_LEAD, enabled=False).retry_note("Jonas Quist", outputs, can_retry=True,
                                                                tools=["search_files"]) is None


async def test_the_loop_follows_a_question_nested_twice_to_its_answer(world: ToolContext) -> None:
    first = ChatResponse(content="", tool_calls=[ToolCall("c1", "search_files", {"query": "lead project Siskin"})])
    model = ScriptedModel([first, "Jonas Quist", "Rafael Brannock"])
    agent = Agent(model, default_registry(), NativeDialect(), world.root, AgentSpec())
    result = await agent.run(DIRECTOR)
    lookups = [s.call.arguments for s in result.steps if isinstance(s, ToolStep)][1:]
    assert lookups == [{"query": "Jonas Quist"}, {"query": "Brightmoor Research"}]
    note = model.calls[2].messages[-1].content or ""
    assert "Brightmoor Research is the organisation in that row" in note and "Director: Rafael Brannock" in note
    assert (result.answer, result.grounded, result.model_calls) == ("Rafael Brannock", True, 3)


async def test_a_direct_question_is_answered_without_a_look_up(world: ToolContext) -> None:
    first = ChatResponse(content="", tool_calls=[ToolCall("c1", "search_files", {"query": "lead project Siskin"})])
    model = ScriptedModel([first, "Jonas Quist"])
    agent = Agent(model, default_registry(), NativeDialect(), world.root, AgentSpec())
    result = await agent.run("Who leads project Siskin?")
    assert (result.answer, result.model_calls) == ("Jonas Quist", 2)
