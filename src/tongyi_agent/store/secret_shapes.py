"""What credentials look like in text, and a function that replaces every one it recognises.

Shapes: provider keys by prefix (OpenAI/Anthropic/OpenRouter ``sk-``, Stripe ``sk_live_``, GitHub
``ghp_``/``github_pat_``, GitLab ``glpat-``, Hugging Face ``hf_``, Google ``AIza``, Slack ``xox?-``, AWS
``AKIA``), JWTs, PEM private keys, passwords in URLs (``scheme://user:PASS@host``), ``Bearer`` values,
assignments whose name says secret (``api_key = ...``, ``GITHUB_TOKEN=...``, ``db_password: ...``), and
long random-looking tokens a few words after a key-like word. Prefixes carry no leading word
boundary: a key glued to a letter (``xsk-...``) is still a key. Every replacement is idempotent, since
exports redact rows that were already redacted when stored.
"""

from __future__ import annotations

import math
import re
from collections import Counter

REDACTED = "[REDACTED]"

_ASSIGNMENT_VALUE = r"""(?!(?:(?:Bearer|Basic|Token)\s+)?\[REDACTED\])"""

KEY_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    # A PEM private key, BEGIN line to END line, or to the end of the text when a page cut it off.
    (
        re.compile(r"(-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----)[\s\S]*?"
                   r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)"),
        r"\1" + "\n" + REDACTED + "\n-----END PRIVATE KEY-----",
    ),
    # key/value pairs in JSON, INI, env files, headers, query strings: `"api_key": "x"`, `API_KEY=x`,
    # `Authorization: Basic x`. Before the others, so a whole "Authorization: Bearer x" value goes at
    # once. Bare "token"/"secret" are left out here: prose about LLMs says "token: ..." all the time.
    (
        re.compile(
            r"""(?P<key>["']?\b(?:[A-Za-z0-9]+[_-])*(?:api[_-]?key|apikey|secret[_-]?key|access[_-]?key|"""
            r"""client[_-]?secret|access[_-]?token|auth[_-]?token|refresh[_-]?token|password|passwd|"""
            r"""authorization)["']?\s*[:=]\s*["']?)""" + _ASSIGNMENT_VALUE +
            r"""(?P<value>(?:(?:Bearer|Basic|Token)\s+)?[^"'\s,;&}\]]+)""",
            re.IGNORECASE,
        ),
        r"\g<key>" + REDACTED,
    ),
    # Environment-style assignments in tool output: GITHUB_TOKEN=..., AWS_SECRET_ACCESS_KEY=...,
    # DB_PASSWORD: ..., SECRET=... (upper case only, so prose such as "the key: ..." stays).
    (
        re.compile(r"""(?P<key>\b(?:[A-Z0-9]+_)*(?:TOKEN|SECRET|KEY|PASSWORD|PASSWD|PAT|CREDENTIALS?)"""
                   r"""["']?\s*[:=]\s*["']?)(?!\[REDACTED\])(?P<value>[^"'\s,;&}\]]+)"""),
        r"\g<key>" + REDACTED,
    ),
    # The same in lower case (INI, YAML): `github_token = ...`, `openrouter_key: ...`. A prefix is
    # required, and the value must look like a credential (8+ characters, not a call like make_key(x)).
    (
        re.compile(r"""(?P<key>\b(?:[A-Za-z0-9]+_)+(?:token|secret|key|password|passwd|credentials?)"""
                   r"""["']?\s*[:=]\s*["']?)(?!\[REDACTED\])(?P<value>[A-Za-z0-9_\-+/=.~]{8,}(?![\w(]))""",
                   re.IGNORECASE),
        r"\g<key>" + REDACTED,
    ),
    # scheme://user:password@host: the password goes; user and host stay readable.
    (re.compile(r"\b([a-z][a-z0-9+.\-]*://[^\s:/@\[\]]*:)(?!\[REDACTED\]@)[^\s@/]+@", re.IGNORECASE),
     r"\1" + REDACTED + "@"),
    (re.compile(r"\bsk-[A-Za-z0-9][A-Za-z0-9_\-]{15,}"), REDACTED),
    # Glued to a letter there is no word boundary; a run of 20 key characters tells it from "risk-free".
    (re.compile(r"sk-(?:[A-Za-z0-9]+-){0,3}[A-Za-z0-9_]{20,}"), REDACTED),
    (re.compile(r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}"), REDACTED),  # Stripe secret and restricted keys
    (re.compile(r"github_pat_[A-Za-z0-9_]{20,}"), REDACTED),
    (re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}"), REDACTED),
    (re.compile(r"glpat-[A-Za-z0-9_\-]{20,}"), REDACTED),  # GitLab
    (re.compile(r"hf_[A-Za-z0-9]{30,}"), REDACTED),  # Hugging Face
    (re.compile(r"AIza[0-9A-Za-z_\-]{30,}"), REDACTED),  # Google
    (re.compile(r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"), REDACTED),  # JWT
    (re.compile(r"\bBearer\s+(?!\[REDACTED\])[A-Za-z0-9._~+/\-]{8,}=*", re.IGNORECASE), "Bearer " + REDACTED),
    (re.compile(r"xox[bpas]-[A-Za-z0-9\-]{10,}"), REDACTED),  # Slack
    (re.compile(r"(?:AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),  # AWS access key ids
)

# One cheap search that every shape above (and the entropy check) needs to hit first; most strings
# (prose, code, file contents) hit none, and this skips the substitutions for them.
MAYBE_SHAPE = re.compile(
    r"sk-|sk_|rk_|bearer|gh[pousr]_|github_pat_|glpat-|hf_|AIza|eyJ|xox[bpas]-|AKIA|ASIA|PRIVATE KEY|://[^\s/]*@|"
    r"key|token|secret|passw|authoriz|credential|auth|\bpat\b",
    re.IGNORECASE,
)

# A long random-looking token shortly after a key-like word ("my key is 8f3kQ..."): it has no known
# shape, so its entropy gives it away.
_KEYWORD = re.compile(r"key|token|secret|passw|credential|auth|bearer|\bpat\b", re.IGNORECASE)
_CANDIDATE = re.compile(r"(?<![A-Za-z0-9_\-+/=.~])[A-Za-z0-9_\-+/=.~]{20,}")
_HEX = re.compile(r"[0-9a-fA-F]{32,}")
NEAR_CHARS = 40  # how far after the key-like word, on the same line, a token may start
MIN_ENTROPY_BITS = 3.5  # per character: words, paths and version strings score lower, random keys higher


def shannon_entropy(text: str) -> float:
    """Bits per character of ``text``'s character distribution."""
    total = len(text)
    return -sum(n / total * math.log2(n / total) for n in Counter(text).values()) if total else 0.0


def looks_random(token: str) -> bool:
    """Mixed case and digits (base62/base64 keys) or 32+ hex digits, at high entropy; hyphenated words
    and version strings ("risk-assessment-framework-2024") have no upper case and are not hex."""
    mixed = any(c.isdigit() for c in token) and any(c.islower() for c in token) and any(c.isupper() for c in token)
    return ((mixed or bool(_HEX.fullmatch(token))) and REDACTED not in token
            and shannon_entropy(token) >= MIN_ENTROPY_BITS)


def _random_near_keywords(text: str) -> str:
    spans: set[tuple[int, int]] = set()
    for word in _KEYWORD.finditer(text):
        line_end = text.find("\n", word.end())
        line_end = len(text) if line_end == -1 else line_end
        for token in _CANDIDATE.finditer(text, word.end(), line_end):
            if token.start() > word.end() + NEAR_CHARS:
                break
            if looks_random(token.group(0)):
                spans.add(token.span())
    for start, end in sorted(spans, reverse=True):
        text = text[:start] + REDACTED + text[end:]
    return text


def redact_shapes(text: str) -> str:
    """``text`` with every recognised credential replaced by ``[REDACTED]``."""
    if not MAYBE_SHAPE.search(text):
        return text
    for shape, replacement in KEY_SHAPES:
        text = shape.sub(replacement, text)
    return _random_near_keywords(text)
