"""Questions that relate two entries by date: "Which urllib3 version was released in the same month
as requests 2.32.4?"

The answer names another entry than the question's subject, so the grounding check cannot ask that
it sit beside the subject. It compares dates instead: the section (a changelog entry) that names the
subject's version and the one that names the answer's version must be dated in the same year,
month, week or day, as the section lines of the tool results show them
(`[urllib3/CHANGES.rst, section "2.5.0 (2025-06-18)":]`). A small model answered these from the
first entry it saw; knowing the subject's date, a search for that period finds the right one.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from tongyi_agent.agent.dates import iso_of
from tongyi_agent.tools.search_results import section_place

_SAME_PERIOD = re.compile(r"\bsame (year|month|week|day)\b", re.I)
_VERSION = re.compile(r"(?<![\w.])v?(\d+(?:\.\d+)+)(?![\w]|\.\d)")
_NAME = re.compile(r"[A-Za-z][\w.-]*[A-Za-z0-9]")
# Words before a version that do not name what it is the version of.
_NOT_NAMES = frozenset("version versions release released of in as the a an and or was were is v".split())
_MONTH_NAMES = ("January February March April May June July August September October November "
                "December").split()


@dataclass(frozen=True)
class Dated:
    """A version and the date of the section that names it (None: no tool result dates it)."""

    version: str
    date: str | None
    label: str | None  # the file of that section


@dataclass(frozen=True)
class PeriodCheck:
    period: str  # year | month | week | day
    subject: str  # as the question names it: "requests 2.32.4"
    subject_date: str | None
    answered: tuple[Dated, ...]
    target: str | None  # the file the answer should come from, when the tool results showed it

    @property
    def holds(self) -> bool:
        return self.subject_date is not None and any(
            a.date is not None and same_period(a.date, self.subject_date, self.period) for a in self.answered)

    def period_text(self) -> str:
        """The subject's period as a reader writes it: "2025-06" for a month."""
        assert self.subject_date is not None
        if self.period == "year":
            return self.subject_date[:4]
        if self.period == "month":
            return self.subject_date[:7]
        if self.period == "week":
            return f"the week of {self.subject_date}"
        return self.subject_date

    def search_pattern(self) -> str:
        """A search_files regex for dates in the subject's period, in ISO and written-out forms."""
        assert self.subject_date is not None
        day = datetime.date.fromisoformat(self.subject_date)
        if self.period in ("year", "month"):
            month = f"{day.month:02d}" if self.period == "month" else r"\d\d"
            name = _MONTH_NAMES[day.month - 1] if self.period == "month" else r"[A-Z][a-z]+"
            return (rf"{day.year}-{month}-\d\d|{name}\.? \d{{1,2}}(?:st|nd|rd|th)?,? {day.year}"
                    rf"|\d{{1,2}} {name},? {day.year}")
        days = [day] if self.period == "day" else [day - datetime.timedelta(days=day.weekday() - n) for n in range(7)]
        return "|".join(rf"{d.isoformat()}|{_MONTH_NAMES[d.month - 1]} {d.day},? {d.year}" for d in days)


def period_check(question: str, answer_versions: Sequence[str], outputs: Iterable[str]) -> PeriodCheck | None:
    """The date relation a "same month as X" question asks for, read from the tool results; None when
    the question asks for none or names no version to relate to. It holds only when the answer names
    a version (an answer with none is judged by its type, see grounding)."""
    asked = _SAME_PERIOD.search(question)
    if not asked:
        return None
    after = _VERSION.search(question, asked.end()) or _VERSION.search(question)
    if after is None:
        return None
    hint = _name_before(question[:after.start()])
    subject = f"{hint} {after.group(1)}" if hint else after.group(1)
    sections = [place for output in outputs for line in output.splitlines() if (place := section_place(line))]
    subject_dated = _dated(after.group(1), sections, lambda label: not hint or _norm(hint) in _norm(label))
    others = {_norm(w) for w in _NAME.findall(question)} - {_norm(hint or ""), ""} - _NOT_NAMES

    def asked_about(label: str) -> bool:  # a file the question names, other than the subject's
        return bool(_file_names(label) & others) and label != subject_dated.label

    # The answer's version from the file the question asks about, where it has one.
    answered = tuple(_dated(v, sections, asked_about, fallback=True) for v in answer_versions)
    target = next((label for label, _ in sections if asked_about(label)), None)
    return PeriodCheck(asked.group(1).lower(), subject, subject_dated.date, answered, target)


def same_period(a: str, b: str, period: str) -> bool:
    if period == "year":
        return a[:4] == b[:4]
    if period == "month":
        return a[:7] == b[:7]
    if period == "week":
        return datetime.date.fromisoformat(a).isocalendar()[:2] == datetime.date.fromisoformat(b).isocalendar()[:2]
    return a == b


def in_period(text: str, check: PeriodCheck) -> bool:
    """Whether `text` (a section line) is dated in the subject's period."""
    date = iso_of(text)
    return date is not None and check.subject_date is not None and same_period(date, check.subject_date,
                                                                                check.period)


def _dated(version: str, sections: Sequence[tuple[str, str]], in_file: Callable[[str], bool],
           fallback: bool = False) -> Dated:
    """The first dated section naming `version` in a file `in_file` accepts (requests' HISTORY.md
    also has a 2.4.0, from 2014); with `fallback`, in any file when none of those dates it."""
    pattern = re.compile(rf"(?<![\w.])v?{re.escape(version)}(?:\.0)*(?![\w]|\.\d)")
    dated = [(label, date) for label, name in sections if (date := iso_of(name)) and pattern.search(name)]
    label, date = next((d for d in dated if in_file(d[0])), dated[0] if fallback and dated else (None, None))
    return Dated(version, date, label)


def _name_before(text: str) -> str | None:
    """What a version is the version of: the last name-like word before it ("requests" in "as
    requests 2.32.4")."""
    words = _NAME.findall(text)
    return words[-1] if words and words[-1].lower() not in _NOT_NAMES else None


def _file_names(label: str) -> set[str]:
    """What a file's path says it is about: its folders and its name ("urllib3", "changes")."""
    path = PurePosixPath(label)
    return {_norm(part) for part in (*path.parts[:-1], path.stem)}


def _norm(text: str) -> str:
    """charset-normalizer, charset_normalizer and Charset Normalizer alike."""
    return re.sub(r"[\s_-]", "", text.lower())
