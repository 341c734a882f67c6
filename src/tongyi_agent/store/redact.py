"""Remove credentials from anything before it is written to disk.

Trajectories end up in exports that people share and train on, so the store redacts on write (and
the exporters once more on read, for rows written before a secret was known). Three layers:
exact values the caller knows (e.g. from the environment), the credential shapes of
``store.secret_shapes`` (provider keys, JWTs, PEM private keys, passwords in URLs, ``NAME_TOKEN=``
assignments, random tokens near key-like words), and values stored under dict keys that name a secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from tongyi_agent.store.secret_shapes import REDACTED, redact_shapes

# Shorter values are too likely to occur in ordinary text (ports, flags, "true").
MIN_SECRET_LENGTH = 8

_SECRET_ENV_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|AUTHORIZATION|CREDENTIAL", re.IGNORECASE)

# Dict keys whose values are always secrets. Anchored on "_" boundaries so that usage counters
# such as "input_tokens" or "max_tokens" are not caught.
_SECRET_DICT_KEY = re.compile(
    r"(?:^|_)(?:api_?key|apikey|secret_?key|private_?key|access_?key|authorization|password|passwd|"
    r"secret|client_secret|token|access_token|refresh_token|auth_token|credentials?)$"
)

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
    return redact_shapes(text)


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
