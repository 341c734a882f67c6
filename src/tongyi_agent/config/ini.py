"""Reading ``models.ini`` layers: parse, unquote, validate each profile, merge by priority."""

from __future__ import annotations

import ast
import configparser
import contextlib
import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tongyi_agent.config.errors import ConfigError
from tongyi_agent.config.profiles import ModelProfile
from tongyi_agent.config.trust import UNTRUSTED_PROFILE_KEYS, Ignored, RootTrust, root_trust

MODELS_FILE = "models.ini"
MODELS_SECTION = "models"
MODELS_KEYS = ("default", "fallback")
# How the agent answers, whatever the profile: `grounding = check | off`.
AGENT_SECTION = "agent"
AGENT_KEYS = ("grounding",)
GROUNDING_MODES = ("check", "off")
PACKAGED_MODELS = Path(__file__).parent / "defaults" / MODELS_FILE
# Keys a profile section may hold: every field except `name`, which is the section header.
PROFILE_KEYS = tuple(k for k in ModelProfile.model_fields if k != "name")


@dataclass(frozen=True)
class ModelsFile:
    """One parsed and validated ``models.ini``."""

    path: Path
    profiles: dict[str, ModelProfile]
    # Raw [models] values; kept even when empty so `fallback =` in a higher layer can switch it off.
    models: dict[str, str] = field(default_factory=dict)
    # Keys left out of each profile because this file is an untrusted root's: they keep the value of
    # the same-named profile in a trusted layer beneath, or stay unset.
    stripped: dict[str, frozenset[str]] = field(default_factory=dict)
    agent: dict[str, str] = field(default_factory=dict)  # [agent] values, checked


@dataclass(frozen=True)
class ModelsConfig:
    """All layers merged: the effective profiles and ``[models]`` values, plus the files read."""

    profiles: dict[str, ModelProfile]
    default: str | None
    fallback: str | None
    files: list[Path] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)
    agent: dict[str, str] = field(default_factory=dict)  # [agent] keys, each from the highest layer setting it


# An inline comment starts at `#` or `;` after whitespace, as in the guide's `mode = "prompt"  # ...`.
# Without the whitespace it is part of the value: `http://host/#anchor`, `a;b`.
_INLINE_COMMENT = re.compile(r"\s[#;]")


def unquote(value: str) -> str:
    """Strip one pair of matching quotes, so `description = "a, b"` reads as `a, b`."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def ini_value(raw: str) -> str:
    """A value as written, less its inline comment and one pair of quotes.

    A quoted value keeps everything inside its quotes (`"a # b"` is `a # b`); a comment may follow
    the closing quote. An unquoted value ends where an inline comment begins; a value that is only a
    comment is empty.
    """
    raw = raw.strip()
    if raw[:1] in ("'", '"'):
        close = raw.find(raw[0], 1)
        rest = raw[close + 1:].strip() if close > 0 else None
        if rest is not None and (not rest or rest[0] in "#;"):
            return raw[1:close]
    # configparser strips the space after `=`, so `fallback =   # none` arrives as `# none`: empty.
    match = _INLINE_COMMENT.search(" " + raw)
    return unquote(raw[:max(match.start() - 1, 0)].rstrip() if match else raw)


def models_candidates(root: Path, config_dir: Path) -> list[Path]:
    """Where models.ini may live, highest priority first (existing or not)."""
    seen: list[Path] = []
    for path in (root / MODELS_FILE, config_dir / MODELS_FILE, PACKAGED_MODELS):
        if path.resolve() not in (p.resolve() for p in seen):
            seen.append(path)
    return seen


def read_ini(path: Path) -> dict[str, dict[str, str]]:
    """Sections of an INI file, each value unquoted and without its inline comment."""
    # No interpolation: URLs and keys may hold '%'. No DEFAULT inheritance: whole-section
    # replacement across layers is only predictable when a section holds exactly what it shows.
    parser = configparser.ConfigParser(interpolation=None, default_section="\0no-default")
    try:
        with path.open(encoding="utf-8") as fh:
            parser.read_file(fh)
    except configparser.Error as err:
        raise ConfigError(f"{path}: malformed INI: {_parse_problem(err)}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read: {err}") from err
    return {
        section: {key: ini_value(raw) for key, raw in parser.items(section)}
        for section in parser.sections()
    }


def parse_profile(name: str, values: dict[str, str], path: Path) -> ModelProfile:
    if "name" in values:
        raise ConfigError(f"{path} [{name}] name: not a key; the section header names the profile")
    try:
        # An empty value means "not set", so the field's default applies.
        return ModelProfile.model_validate({**{k: v for k, v in values.items() if v}, "name": name})
    except ValidationError as err:
        raise ConfigError(_one_line(err, name, path)) from None


def read_models_file(path: Path, *, untrusted: bool = False) -> ModelsFile:
    """One file's profiles; ``untrusted`` (an untrusted root's file) leaves out UNTRUSTED_PROFILE_KEYS
    and ``[agent] grounding = off``, each listed in ``stripped`` (the agent's under "agent")."""
    sections = read_ini(path)
    models = sections.pop(MODELS_SECTION, {})
    for key in models:
        if key not in MODELS_KEYS:
            raise ConfigError(f"{path} [{MODELS_SECTION}] {key}: {_unknown(key, MODELS_KEYS)}")
    agent = sections.pop(AGENT_SECTION, {})
    for key, value in agent.items():
        if key not in AGENT_KEYS:
            raise ConfigError(f"{path} [{AGENT_SECTION}] {key}: {_unknown(key, AGENT_KEYS)}")
        if key == "grounding" and value not in GROUNDING_MODES:
            raise ConfigError(f"{path} [{AGENT_SECTION}] grounding: expected check or off, got {value!r}")
    stripped: dict[str, frozenset[str]] = {}
    if untrusted:
        if agent.get("grounding") == "off":
            # The check is a limit the user relies on: a folder under research may not lift it.
            stripped[AGENT_SECTION] = frozenset({"grounding"})
            agent = {k: v for k, v in agent.items() if k != "grounding"}
        for name, values in sections.items():
            guarded = frozenset(k for k, v in values.items() if k in UNTRUSTED_PROFILE_KEYS and v)
            if guarded:
                stripped[name] = guarded
                sections[name] = {k: v for k, v in values.items() if k not in guarded}
    profiles = {name: parse_profile(name, values, path) for name, values in sections.items()}
    return ModelsFile(path, profiles, models, stripped, agent)


def merge(files: Iterable[ModelsFile]) -> ModelsConfig:
    """Merge layers given highest priority first: a profile is taken whole from the first file defining it."""
    profiles: dict[str, ModelProfile] = {}
    models: dict[str, str] = {}
    agent: dict[str, str] = {}
    read: list[Path] = []
    ignored: list[Ignored] = []
    # Walk lowest priority first so later (higher) layers overwrite.
    for layer in reversed(list(files)):
        for name, profile in layer.profiles.items():
            keys = layer.stripped.get(name, frozenset())
            ignored += [Ignored(layer.path, f"[{name}] {key}") for key in sorted(keys)]
            below = profiles.get(name)
            if keys and below is not None:
                # The endpoint, key variable and adapter stay those the user configured for this name.
                profile = profile.model_copy(update={key: getattr(below, key) for key in keys})
            profiles[name] = profile
        models.update(layer.models)
        ignored += [Ignored(layer.path, f"[{AGENT_SECTION}] {key}")
                    for key in sorted(layer.stripped.get(AGENT_SECTION, ()))]
        agent.update({k: v for k, v in layer.agent.items() if v})
        read.append(layer.path)
    return ModelsConfig(profiles, models.get("default") or None, models.get("fallback") or None,
                        list(reversed(read)), ignored, agent)


def load_models(root: Path, config_dir: Path, *, trust: RootTrust | None = None) -> ModelsConfig:
    """Read every models.ini that exists (root > config dir > packaged) and merge them.

    ``trust`` defaults to what the user's trust store says about ``root``."""
    trust = trust or root_trust(root, config_dir)
    return merge(read_models_file(p, untrusted=trust.guards(p))
                 for p in models_candidates(root, config_dir) if p.is_file())


def _parse_problem(err: configparser.Error) -> str:
    """configparser's messages span lines and repeat the file name; say what is wrong, on which line."""
    if isinstance(err, configparser.MissingSectionHeaderError):
        return f"line {err.lineno}: expected a [section] header before {err.line.strip()!r}"
    if isinstance(err, configparser.ParsingError) and err.errors:
        lineno, line = err.errors[0]
        # configparser stores repr(line); undo it so the message shows the text as written.
        with contextlib.suppress(ValueError, SyntaxError):
            line = ast.literal_eval(line)
        return f"line {lineno}: expected 'key = value', got {str(line).strip()!r}"
    if isinstance(err, configparser.DuplicateOptionError):
        return f"line {err.lineno}: key '{err.option}' repeated in [{err.section}]"
    if isinstance(err, configparser.DuplicateSectionError):
        return f"line {err.lineno}: section [{err.section}] repeated"
    return " ".join(str(err).split())


def _unknown(key: str, known: Iterable[str]) -> str:
    known = list(known)
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else f"; known keys: {', '.join(known)}"
    return f"unknown key{hint}"


def _one_line(err: ValidationError, section: str, path: Path) -> str:
    """Turn pydantic's multi-line report into `file [section] key: problem` for the first error."""
    errors = err.errors()
    first = errors[0]
    key = ".".join(str(p) for p in first["loc"])
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{path} [{section}] {key}: {_problem(first)}{more}"


def _problem(error: Any) -> str:
    kind, got = error["type"], error.get("input")
    if kind == "extra_forbidden":
        return _unknown(str(error["loc"][-1]), PROFILE_KEYS)
    if kind == "missing":
        # Usually a partial copy of a packaged profile: say why its other keys did not carry over.
        return "required key is missing (a section replaces a same-named one whole)"
    if kind.startswith("int_"):
        return f"expected an integer, got {got!r}"
    if kind.startswith("float_"):
        return f"expected a number, got {got!r}"
    if kind == "literal_error":
        return f"expected {error['ctx']['expected']}, got {got!r}"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    msg = str(error["msg"])
    return f"{msg[:1].lower()}{msg[1:]}, got {got!r}"
