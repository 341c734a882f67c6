"""Tool-call dialects, by the names used in models.ini."""

from tongyi_agent.agent.dialects.base import Dialect
from tongyi_agent.agent.dialects.native import NativeDialect
from tongyi_agent.agent.dialects.react import ReactDialect
from tongyi_agent.agent.dialects.tongyi import TongyiDialect

DIALECTS: dict[str, type[Dialect]] = {"native": NativeDialect, "tongyi": TongyiDialect, "react": ReactDialect}


def get_dialect(name: str) -> Dialect:
    try:
        return DIALECTS[name]()
    except KeyError:
        raise ValueError(f"unknown dialect {name!r}; known: {', '.join(DIALECTS)}") from None


__all__ = ["DIALECTS", "Dialect", "NativeDialect", "ReactDialect", "TongyiDialect", "get_dialect"]
