"""GBNF grammars for the ReAct protocol, built from the tool registry.

With the grammar a small embedded model can only write `Thought: ...` followed by either an
`Action:` naming a registered tool with a JSON object matching that tool's schema, or a
`Final Answer:`. Invalid tool names and malformed arguments become impossible rather than retried.
"""

from __future__ import annotations

import json
from typing import Any

from tongyi_agent.tools.base import Tool, ToolRegistry

_PRIMITIVES = r'''
ws ::= [ ]?
string ::= "\"" ( [^"\\\x00-\x1f] | "\\" ["\\/bfnrt] )* "\""
integer ::= "-"? [0-9] [0-9]? [0-9]? [0-9]? [0-9]? [0-9]? [0-9]?
number ::= "-"? [0-9]+ ( "." [0-9]+ )?
boolean ::= "true" | "false"
thought ::= [^\n]+
answer ::= [^\x00]+
'''


def _rule_name(tool: Tool) -> str:
    return "args-" + "".join(c if c.isalnum() else "-" for c in tool.name)


def _value(prop: dict[str, Any]) -> str:
    types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
    alternatives = [{"string": "string", "integer": "integer", "number": "number", "boolean": "boolean",
                     "null": '"null"'}[t] for t in types]
    return alternatives[0] if len(alternatives) == 1 else "( " + " | ".join(alternatives) + " )"


def _pair(name: str, prop: dict[str, Any]) -> str:
    return f'{json.dumps(json.dumps(name))} ws ":" ws {_value(prop)}'


def _object_rule(tool: Tool) -> str:
    props: dict[str, Any] = tool.parameters["properties"]
    required = [p for p in props if p in tool.parameters["required"]]
    optional = [p for p in props if p not in required]
    if required:
        body = ' "," ws '.join(_pair(p, props[p]) for p in required)
        body += "".join(f' ( "," ws {_pair(p, props[p])} )?' for p in optional)
        return f'"{{" ws {body} ws "}}"'
    if not optional:
        return '"{" ws "}"'
    # All optional: any in-order subset, the first one present without a leading comma.
    starts = []
    for i, first in enumerate(optional):
        rest = "".join(f' ( "," ws {_pair(p, props[p])} )?' for p in optional[i + 1:])
        starts.append(f"{_pair(first, props[first])}{rest}")
    return '"{" ws ( ' + " | ".join(starts) + ' )? ws "}"'


def react_grammar(tools: ToolRegistry, *, final_only: bool = False) -> str:
    """The GBNF text; `final_only` leaves the model no choice but a final answer."""
    final = 'final ::= "Final Answer: " answer'
    if final_only or len(tools) == 0:
        return f'root ::= "Thought: " thought "\\n" final\n{final}\n{_PRIMITIVES}'
    actions = " | ".join(f'"{t.name}\\nAction Input: " {_rule_name(t)}' for t in tools)
    rules = [
        'root ::= "Thought: " thought "\\n" ( action | final )',
        f'action ::= "Action: " ( {actions} ) "\\n"',
        final,
        *[f"{_rule_name(t)} ::= {_object_rule(t)}" for t in tools],
    ]
    return "\n".join(rules) + "\n" + _PRIMITIVES
