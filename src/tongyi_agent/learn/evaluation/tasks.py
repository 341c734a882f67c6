"""Tasks to learn from: task files (JSONL) and recorded runs, with deterministic splits.

A task file has one JSON object per line: `question` (required), optional `answer` or
`answer_regex`, optional `root` (relative to the task file's folder), optional `sources`
(`path:line` strings), and optionally `id` and `split` (train | validation | test) to fix the split.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from tongyi_agent.store import USER_FEEDBACK, TrajectoryStore

SPLITS = ("train", "validation", "test")
CONFIRMED = 0.5  # a user rating from which a run's answer counts as confirmed


class TaskFileError(ValueError):
    """A task file that cannot be used; the message is one line naming the file and line."""


@dataclass(frozen=True)
class Task:
    question: str
    root: Path
    answer: str | None = None
    answer_regex: str | None = None
    sources: tuple[str, ...] = ()
    id: str = ""
    split: str | None = None
    kind: str = ""

    @property
    def key(self) -> str:
        return self.id or hashlib.sha256(f"{self.root}\0{self.question}".encode()).hexdigest()[:16]

    @property
    def has_reference(self) -> bool:
        return self.answer is not None or self.answer_regex is not None


@dataclass
class Splits:
    train: list[Task] = field(default_factory=list)
    validation: list[Task] = field(default_factory=list)
    test: list[Task] = field(default_factory=list)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def load_tasks(path: Path, default_root: Path) -> list[Task]:
    """Read a task file; raises TaskFileError (one line) on the first bad line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskFileError(f"{path}: cannot read: {exc}") from None
    tasks = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            tasks.append(task_from_dict(json_line(path, number, line), f"{path}:{number}", path.parent, default_root))
    return tasks


def json_line(path: Path, number: int, line: str) -> dict[str, object]:
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise TaskFileError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise TaskFileError(f"{path}:{number}: expected a JSON object")
    return data


def task_from_dict(data: dict[str, object], where: str, base_dir: Path, default_root: Path) -> Task:
    """One task object of the task-file format; a relative `root` is resolved against `base_dir`.

    Raises TaskFileError (one line, starting with `where`) when a field is unusable."""
    question = data.get("question")
    if not isinstance(question, str) or not question.strip():
        raise TaskFileError(f"{where}: 'question' must be a non-empty string")
    answer = data.get("answer")
    if answer is not None and not isinstance(answer, str | int | float):
        raise TaskFileError(f"{where}: 'answer' must be a string or a number")
    regex = data.get("answer_regex")
    if regex is not None:
        if not isinstance(regex, str):
            raise TaskFileError(f"{where}: 'answer_regex' must be a string")
        try:
            re.compile(regex)
        except re.error as exc:
            raise TaskFileError(f"{where}: 'answer_regex' is not a valid regex ({exc})") from None
    raw_root = data.get("root")
    root = (base_dir / raw_root).resolve() if isinstance(raw_root, str) else default_root
    if not root.is_dir():
        raise TaskFileError(f"{where}: root '{raw_root}' is not a directory")
    split = data.get("split")
    if split is not None and split not in SPLITS:
        raise TaskFileError(f"{where}: 'split' must be one of {', '.join(SPLITS)}")
    sources = data.get("sources") or []
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise TaskFileError(f"{where}: 'sources' must be a list of strings")
    return Task(question=question.strip(), root=root, answer=None if answer is None else str(answer),
                answer_regex=regex, sources=tuple(sources), id=str(data.get("id") or ""),
                split=split if isinstance(split, str) else None, kind=str(data.get("kind") or ""))


def tasks_from_runs(store: TrajectoryStore, root: Path, limit: int = 500) -> list[Task]:
    """Distinct questions of successfully recorded runs under `root`. An answer the user confirmed
    (every rating of the run at least 0.5) is the task's reference answer; other tasks are scored
    by the target reward."""
    seen: dict[str, Task] = {}
    for run in store.iter_runs():
        if run.status == "failed" or (run.root and Path(run.root) != root):
            continue
        known = seen.get(run.question)
        if known is not None and known.has_reference:
            continue
        ratings = [r.value for r in run.rewards if r.name == USER_FEEDBACK and r.value is not None]
        confirmed = bool(ratings) and min(ratings) >= CONFIRMED and bool(run.answer.strip())
        if known is None and len(seen) >= limit:
            continue
        if known is None or confirmed:
            seen[run.question] = Task(question=run.question, root=root, answer=run.answer if confirmed else None)
    return list(seen.values())


def split_tasks(tasks: list[Task], seed: int = 0) -> Splits:
    """50 / 25 / 25 by a hash of (seed, task key): deterministic, and a task never changes split.

    A split named in the task file is kept as given."""
    splits = Splits()
    for task in tasks:
        name = task.split or _hashed_split(task.key, seed)
        getattr(splits, name).append(task)
    return splits


def _hashed_split(key: str, seed: int) -> str:
    bucket = int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest(), 16) % 4
    return "train" if bucket < 2 else ("validation" if bucket == 2 else "test")
