"""Remove credentials from anything before it is written to disk.

Trajectories end up in exports that people share and train on, so the store redacts on write (and
the exporters once more on read, for rows written before a secret was known). Three layers:
exact values the caller knows (e.g. from the environment), well-known key shapes, and values stored
under dict keys that name a secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

REDACTED = "[REDACTED]"

# Shorter values are too likely to occur in ordinary text (ports, flags, "true").
MIN_SECRET_LENGTH = 8

_SECRET_ENV_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|AUTHORIZATION|CREDENTIAL", re.IGNORECASE)

# Dict keys whose values are always secrets. Anchored on "_" boundaries so that usage counters
# such as "input_tokens" or "max_tokens" are not caught.
_SECRET_DICT_KEY = re.compile(
    r"(?:^|_)(?:api_?key|apikey|secret_?key|private_?key|access_?key|authorization|password|passwd|"
    r"secret|client_secret|token|access_token|refresh_token|auth_token|credentials?)$"
)

_KEY_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    # key/value pairs in JSON, INI, env files, headers, query strings: `"api_key": "x"`, `API_KEY=x`,
    # `Authorization: Basic x`. First, so a whole "Authorization: Bearer x" value goes at once. Bare
    # "token"/"secret" are left out here: prose about LLMs says "token: ..." all the time. The
    # lookahead keeps redaction idempotent (exports redact already-redacted rows again).
    (
        re.compile(
            r"""(?P<key>["']?\b(?:[A-Za-z0-9]+[_-])*(?:api[_-]?key|apikey|secret[_-]?key|access[_-]?key|"""
            r"""client[_-]?secret|access[_-]?token|auth[_-]?token|refresh[_-]?token|password|passwd|"""
            r"""authorization)["']?\s*[:=]\s*["']?)"""
            r"""(?!(?:(?:Bearer|Basic|Token)\s+)?\[REDACTED\])"""
            r"""(?P<value>(?:(?:Bearer|Basic|Token)\s+)?[^"'\s,;&}\]]+)""",
            re.IGNORECASE,
        ),
        r"\g<key>" + REDACTED,
    ),
    # OpenAI/Anthropic/OpenRouter keys all start with "sk-" ("sk-proj-", "sk-ant-", "sk-or-v1-").
    (re.compile(r"\bsk-[A-Za-z0-9][A-Za-z0-9_\-]{15,}"), REDACTED),
    (re.compile(r"\bBearer\s+(?!\[REDACTED\])[A-Za-z0-9._~+/\-]{8,}=*", re.IGNORECASE), "Bearer " + REDACTED),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), REDACTED),
    (re.compile(r"\bxox[bpas]-[A-Za-z0-9\-]{10,}"), REDACTED),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),
)


# One cheap search that every shape above needs to hit first; most strings (prose, code, file
# contents) hit none, and this skips the six substitutions for them.
_MAYBE_SHAPE = re.compile(r"sk-|bearer|gh[pousr]_|xox[bpas]-|AKIA|ASIA|key|token|secret|passw|authoriz", re.IGNORECASE)

# Recorded conversations repeat the same messages (system prompt, earlier turns) in every llm span.
_CACHE_MAX_LEN = 4096


def secret_values_from_env(env: Mapping[str, str]) -> list[str]:
    """Values of variables whose names look secret (``*KEY*``, ``*TOKEN*``, ...), at least 8 chars long."""
    values = {v.strip() for k, v in env.items() if _SECRET_ENV_NAME.search(k) and v}
    return sorted(v for v in values if len(v) >= MIN_SECRET_LENGTH)


@lru_cache(maxsize=32)
def _exact_pattern(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    # Longest first so that a secret containing another is replaced whole.
    usable = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
    return re.compile("|".join(re.escape(s) for s in usable)) if usable else None


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    if len(text) <= _CACHE_MAX_LEN:
        return _redact_short(text, secrets)
    return _redact_text(text, secrets)


@lru_cache(maxsize=4096)
def _redact_short(text: str, secrets: tuple[str, ...]) -> str:
    return _redact_text(text, secrets)


def _redact_text(text: str, secrets: tuple[str, ...]) -> str:
    pattern = _exact_pattern(secrets)
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    if _MAYBE_SHAPE.search(text):
        for shape, replacement in _KEY_SHAPES:
            text = shape.sub(replacement, text)
    return text


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_DICT_KEY.search(key.lower().replace("-", "_")))


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    """Return a copy of ``value`` with secrets replaced by ``[REDACTED]``; recurses into dicts and lists.

    Non-string scalars are returned as they are, except under a secret-named dict key.
    """
    return _redact(value, secrets if isinstance(secrets, tuple) else tuple(secrets))


def _redact(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if v is not None and isinstance(k, str) and is_secret_key(k) else _redact(v, secrets))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v, secrets) for v in value]
    return value
