"""Redaction: credentials in tool output, questions and answers never reach the store or an export.

One recorded run reads a file holding every format (as a cloned repository's .env, a backup of a
models.ini, a private key or a config dump would), with a secret in the question and one in the
model's answer. Then the raw bytes of the store (database and WAL) and of each export format are
searched for every secret. The unit cases below check each shape on its own, and that ordinary text
near key-like words survives.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.fakes.openai_server import FakeOpenAIServer
from tongyi_agent.cli.app import app
from tongyi_agent.store.redact import redact_text

PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7Vbm3x9Qk2Lr"

# (format, text as it appears in a file, the part that must never be stored)
PLANTED: list[tuple[str, str, str]] = [
    ("stripe sk_live_", "stripe: sk_live_51HqLyjWDarjtT1zdp7dcXYZab", "51HqLyjWDarjtT1zdp7dcXYZab"),
    ("github_pat_", "pat github_pat_11AAAAAAA0abcdefghijkl_MNOPQRSTUVWXYZ0123456789abcdefghij",
     "11AAAAAAA0abcdefghijkl_MNOPQRSTUVWXYZ0123456789abcdefghij"),
    ("gitlab glpat-", "ci uses glpat-Zx9Yw8Vu7Ts6Rq5Po4Nm", "Zx9Yw8Vu7Ts6Rq5Po4Nm"),
    ("hugging face hf_", "hub: hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567", "AbCdEfGhIjKlMnOpQrStUvWxYz01234567"),
    ("google AIza", "maps AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"),
    ("JWT", "session eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36P",
     "SflKxwRJSMeKKF2QT4fwpMeJf36P"),
    ("PEM private key body",
     f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\nQ2hhcmxpZQ==\n-----END RSA PRIVATE KEY-----", PEM_BODY),
    ("scheme://user:PASS@host", "DATABASE_URL postgres://app:Pa55w0rdXyz@db.internal:5432/prod", "Pa55w0rdXyz"),
    ("key glued to a letter", "token=xsk-proj-AbCdEf0123456789GhIjKlMnOp", "AbCdEf0123456789GhIjKlMnOp"),
    ("GITHUB_TOKEN=", "GITHUB_TOKEN=v1.2f8a9c3e7b", "v1.2f8a9c3e7b"),
    ("*_SECRET=", "STRIPE_WEBHOOK_SECRET=whsec_plainvalue42", "whsec_plainvalue42"),
    ("*_KEY=", "MAPBOX_KEY=pk.eyplain.value77", "pk.eyplain.value77"),
    ("PASSWORD=", "PASSWORD=correct-horse-battery", "correct-horse-battery"),
    ("key in a models.ini", "[tongyi]\nopenrouter_key = 0f8e7d6c5b4a39281706\napi_key = plainvalue123456",
     "0f8e7d6c5b4a39281706"),
    ("random token near a key-like word", "the deploy key is Zq8XkP2vL9mN4rT7wY1bC6dF for prod",
     "Zq8XkP2vL9mN4rT7wY1bC6dF"),
]
QUESTION_SECRET = "sk_live_QuestionSecret0123456789"
ANSWER_SECRET = "glpat-AnswerSecret0123456789ab"


def _export(runner: CliRunner, root: Path, fmt: str, out: Path) -> bytes:
    result = runner.invoke(app, ["--root", str(root), "--export-training-data", str(out), "--format", fmt])
    assert result.exit_code == 0, result.output
    return out.read_bytes()


def test_every_format_is_redacted_in_the_store_and_every_export(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "backup").mkdir(parents=True)
    (root / "notes.txt").write_text("\n".join(text for _, text, _ in PLANTED[:13]) + "\n")
    (root / "backup" / "models.ini").write_text(PLANTED[13][1] + "\n")
    (root / "deploy.md").write_text(PLANTED[14][1] + "\n")
    replies = [
        {"tool_calls": [{"name": "read_file", "arguments": {"path": "notes.txt"}},
                        {"name": "read_file", "arguments": {"path": "backup/models.ini"}},
                        {"name": "read_file", "arguments": {"path": "deploy.md"}}]},
        {"content": f"I found these; one is {ANSWER_SECRET}."},
    ]
    runner = CliRunner()
    with FakeOpenAIServer(replies) as model:
        result = runner.invoke(app, ["--root", str(root), "--base-url", model.base_url, "--model-id", "m", "--train",
                                     f"Is {QUESTION_SECRET} still valid? List the keys in my files."])
    assert result.exit_code == 0, result.output
    # The model really saw the secrets (the test plants them where a run picks them up).
    sent = json.dumps(model.chat_requests[-1])
    assert all(secret in sent for _, _, secret in PLANTED)

    stored = b"".join(p.read_bytes() for p in (root / ".tongyi_training").glob("trajectories.sqlite*"))
    exports = {fmt: _export(runner, root, fmt, tmp_path / f"out.{fmt}") for fmt in ("json", "jsonl", "sft")}
    assert b"[REDACTED]" in stored and all(b"[REDACTED]" in data for data in exports.values())
    secrets = [(name, secret) for name, _, secret in PLANTED]
    secrets += [("secret in the question", QUESTION_SECRET), ("secret in the answer", ANSWER_SECRET)]
    leaks = [(name, where) for name, secret in secrets
             for where, data in [("store", stored), *exports.items()] if secret.encode() in data]
    assert leaks == []


@pytest.mark.parametrize("name,text,secret", PLANTED, ids=[p[0] for p in PLANTED])
def test_each_format_on_its_own(name: str, text: str, secret: str) -> None:
    redacted = redact_text(text)
    assert secret not in redacted and "[REDACTED]" in redacted
    assert redact_text(redacted) == redacted  # exports redact stored rows again


@pytest.mark.parametrize("text", [
    "max_tokens = 512 and input_tokens: 12345678",
    "the cache key is src/tongyi_agent/store/redact.py",
    "cache_key = make_key(request)",
    "a risk-assessment-framework-2024 and the primary key id",
    "The billing service listens on port 8443.",
    "https://example.org/papers/2101.00001v2",
])
def test_ordinary_text_survives(text: str) -> None:
    assert redact_text(text) == text
