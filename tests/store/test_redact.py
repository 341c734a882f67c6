from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.store.conftest import SECRET
from tests.store.factories import make_rewards, make_run, make_spans
from tongyi_agent.store import REDACTED, TrajectoryStore, export_json, export_sft, redact, secret_values_from_env

KEYS = [
    "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
    "sk-ant-api03-abcdefghijklmnopqrstuvwxyz",
    "sk-or-v1-0123456789abcdef0123456789abcdef",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "xoxb-123456789012-abcdefghijkl",
    "AKIAIOSFODNN7EXAMPLE",
]


@pytest.mark.parametrize("key", KEYS)
def test_key_shapes(key: str) -> None:
    assert redact(f"use {key} now") == f"use {REDACTED} now"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-ghi_jkl", f"Authorization: {REDACTED}"),
        ("sent Bearer abcdefghijklmnop", f"sent Bearer {REDACTED}"),
        ('{"api_key": "plain-looking"}', f'{{"api_key": "{REDACTED}"}}'),
        ("OPENROUTER_API_KEY=whatever123", f"OPENROUTER_API_KEY={REDACTED}"),
        ("GET /x?api_key=abc&page=2", f"GET /x?api_key={REDACTED}&page=2"),
        ("password: hunter22", f"password: {REDACTED}"),
        # Ordinary text about tokens stays.
        ("input_tokens: 500, the next token: 'Hello'", "input_tokens: 500, the next token: 'Hello'"),
    ],
)
def test_patterns_and_idempotence(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(expected) == expected


def test_exact_values_and_secret_dict_keys() -> None:
    value = {"msg": f"key is {SECRET}!", "api_key": 12345, "Authorization": "x", "input_tokens": 7,
             "nested": [{"password": None, "token": ["a"]}], "max_tokens": 100}  # fmt: skip
    assert redact(value, [SECRET]) == {"msg": f"key is {REDACTED}!", "api_key": REDACTED, "Authorization": REDACTED,
                                       "input_tokens": 7, "nested": [{"password": None, "token": REDACTED}],
                                       "max_tokens": 100}  # fmt: skip


def test_secret_values_from_env() -> None:
    env = {"OPENROUTER_API_KEY": "sk-or-longvalue", "GITHUB_TOKEN": "ghtok12345", "DB_PASSWORD": "short",
           "HOME": "/home/someone-long", "MY_SECRET": "abcdefgh"}  # fmt: skip
    assert secret_values_from_env(env) == ["abcdefgh", "ghtok12345", "sk-or-longvalue"]


def test_store_redacts_every_text_field_and_exports(store: TrajectoryStore, tmp_path: Path) -> None:
    leak = f"{SECRET} and sk-ant-api03-abcdefghijklmnopqrstuvwxyz"
    spans = make_spans(question=f"q {leak}", answer=f"a {leak}")
    spans[1].input = {"path": leak, "api_key": "anything"}
    spans[1].error = leak
    run = make_run(f"q {leak}", answer=f"a {leak}", error=leak, metadata={"env": leak, "token": "t"},
                   sources=[{"path": "p", "line": 1, "text": leak}])  # fmt: skip
    run_id = store.record_run(run, spans, make_rewards())
    store.add_feedback(run_id, 1.0, f"thanks {leak}")

    dump = "\n".join(str(tuple(row)) for table in ("runs", "spans", "rewards", "feedback")
                     for row in store.connection.execute(f"SELECT * FROM {table}"))  # fmt: skip
    assert SECRET not in dump and "sk-ant" not in dump
    assert REDACTED in store.get_run(run_id).question
    assert run.question == f"q {leak}"  # the caller's record is not modified

    # Rows written before the secret was known are redacted again on export.
    with TrajectoryStore(store.path) as unaware:
        unaware.record_run(make_run(f"late {SECRET}"), make_spans(question=f"late {SECRET}"))
    export_json(store, tmp_path / "out.json", {"OPENROUTER_API_KEY": SECRET}, {})
    export_sft(store, tmp_path / "out.jsonl", [])
    for name in ("out.json", "out.jsonl"):
        text = (tmp_path / name).read_text()
        assert SECRET not in text and "sk-ant" not in text, name
    assert json.loads((tmp_path / "out.json").read_text())["config"]["OPENROUTER_API_KEY"] == REDACTED
