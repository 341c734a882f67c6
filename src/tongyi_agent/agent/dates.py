"""Dates as written in changelogs and answers ("2025-06-10", "June 10, 2025", "10 June 2025"),
read as ISO dates so that differently written dates compare equal."""

from __future__ import annotations

import re

_MONTHS = {m: i for i, m in enumerate(
    "january february march april may june july august september october november december".split(), 1)}
_MONTH = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?" \
         r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
ISO_DATE = re.compile(r"(?<!\d)(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?!\d)")
MONTH_FIRST = re.compile(rf"\b({_MONTH})\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.I)
DAY_FIRST = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH}),?\s+(\d{{4}})\b", re.I)
DATE_PATTERNS = (ISO_DATE, MONTH_FIRST, DAY_FIRST)


def iso(match: re.Match[str]) -> str | None:
    groups = match.groups()
    try:
        if match.re is ISO_DATE:
            year, month, day = int(groups[0]), int(groups[1]), int(groups[2])
        elif match.re is MONTH_FIRST:
            month, day, year = _month(groups[0]), int(groups[1]), int(groups[2])
        else:
            day, month, year = int(groups[0]), _month(groups[1]), int(groups[2])
    except (KeyError, ValueError, StopIteration):
        return None
    return f"{year:04d}-{month:02d}-{day:02d}" if 1 <= month <= 12 and 1 <= day <= 31 else None


def iso_of(text: str) -> str | None:
    for pattern in DATE_PATTERNS:
        match = pattern.search(text)
        if match:
            return iso(match)
    return None


def _month(name: str) -> int:
    key = name.lower().rstrip(".")
    return next(number for month, number in _MONTHS.items() if month.startswith(key[:3]))
