"""Experiences: confirmed runs kept as worked examples, with a full-text index for retrieval.

The learn layer decides which runs are confirmed and records how later uses went; this module only
stores them and answers "which experiences are most like this question" with SQLite's FTS5 bm25.
Text is redacted with the store's secrets before it is written, as everything else in the store.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from tongyi_agent.store.db import StoreError
from tongyi_agent.store.redact import redact
from tongyi_agent.store.rows import dumps, loads, target_reward_sql
from tongyi_agent.store.trajectories import TrajectoryStore

ACTIVE, RETIRED = "active", "retired"
_WORD = re.compile(r"\w+", re.UNICODE)
# Words that say nothing about what a question is about; bm25 weights rare words up anyway, but in a
# small memory even "the" is rare enough to decide a match.
_STOPWORDS = frozenset(
    "a an and are as at be by can do does did for from has have how i in is it its many much of on or "
    "that the their there these this to was were what when where which who whom whose why will with "
    "you your".split())


@dataclass
class Experience:
    id: int
    run_id: str
    question: str
    root: str
    trajectory: dict[str, Any]  # {"steps": [{"thought", "tool", "arguments", "observation"}], "cited": [...]}
    answer: str
    model: str
    dialect: str
    prompt_version: str | None
    confirmed_by: str  # "feedback", "task" or "reward"
    status: str  # "active" or "retired"
    uses: int
    failures: int
    failure_streak: int
    created_at: float
    last_used_at: float | None


class ExperienceStore:
    """The ``experiences`` table of one :class:`TrajectoryStore`."""

    def __init__(self, store: TrajectoryStore) -> None:
        self._store = store

    # -- writing -------------------------------------------------------------------------------

    def add(self, *, run_id: str, question: str, root: str, trajectory: dict[str, Any], answer: str, model: str,
            dialect: str, prompt_version: str | None, confirmed_by: str) -> Experience:
        """Keep a confirmed run as an experience; a run already kept is returned unchanged (a retired
        one stays retired: confirming the run again does not undo what its later uses showed)."""
        s = self._store.secrets
        now = time.time()

        def write(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT id FROM experiences WHERE run_id = ?", (run_id,)).fetchone()
            if row is not None:
                return int(row[0])
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise StoreError(f"no run with id {run_id!r}")
            cursor = conn.execute(
                """INSERT INTO experiences (run_id, question, root, trajectory, answer, model, dialect,
                       prompt_version, confirmed_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (run_id, redact(question, s), root, dumps(redact(trajectory, s)), redact(answer, s), model, dialect,
                 prompt_version, confirmed_by, now))  # fmt: skip
            return int(cursor.lastrowid or 0)

        return self.get(self._store._write(write))

    def forget(self, experience_id: int) -> Experience:
        """Delete one experience (its run stays recorded); StoreError when there is none."""
        experience = self.get(experience_id)
        self._store._write(lambda c: c.execute("DELETE FROM experiences WHERE id = ?", (experience_id,)))
        return experience

    def forget_run(self, run_id: str) -> Experience | None:
        """Delete the experience made from ``run_id``, if there is one (the run was rated down)."""
        experience = self.by_run(run_id)
        if experience is not None:
            self.forget(experience.id)
        return experience

    def record_use(self, ids: list[int], *, success: bool, retire_after: int) -> list[int]:
        """Count one use of each experience by a later run; a failed use extends its failure streak,
        a successful one ends it. Returns the ids retired now (``retire_after`` failures in a row)."""
        now = time.time()

        def write(conn: sqlite3.Connection) -> list[int]:
            retired = []
            for experience_id in ids:
                if success:
                    conn.execute("""UPDATE experiences SET uses = uses + 1, failure_streak = 0, last_used_at = ?
                                    WHERE id = ?""", (now, experience_id))
                    continue
                conn.execute("""UPDATE experiences SET uses = uses + 1, failures = failures + 1,
                                failure_streak = failure_streak + 1, last_used_at = ? WHERE id = ?""",
                             (now, experience_id))
                row = conn.execute("SELECT status, failure_streak FROM experiences WHERE id = ?",
                                   (experience_id,)).fetchone()
                if row is not None and row[0] == ACTIVE and row[1] >= retire_after:
                    conn.execute("UPDATE experiences SET status = ? WHERE id = ?", (RETIRED, experience_id))
                    retired.append(experience_id)
            return retired

        return self._store._write(write)

    # -- reading -------------------------------------------------------------------------------

    def get(self, experience_id: int) -> Experience:
        row = self._conn.execute("SELECT * FROM experiences WHERE id = ?", (experience_id,)).fetchone()
        if row is None:
            raise StoreError(f"no experience with id {experience_id}")
        return _from_row(row)

    def by_run(self, run_id: str) -> Experience | None:
        row = self._conn.execute("SELECT * FROM experiences WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else _from_row(row)

    def list(self, *, root: str | None = None, status: str | None = None, limit: int = 1000) -> list[Experience]:
        """Newest first."""
        rows = self._conn.execute(
            """SELECT * FROM experiences WHERE (:root IS NULL OR root = :root) AND (:status IS NULL OR status = :status)
               ORDER BY created_at DESC, id DESC LIMIT :limit""",
            {"root": root, "status": status, "limit": limit}).fetchall()
        return [_from_row(row) for row in rows]

    def similar(self, question: str, root: str, *, limit: int, recent: int) -> list[Experience]:
        """Up to ``limit`` active experiences of ``root`` most like ``question`` by bm25 over their
        questions, among the ``recent`` newest active ones there. Each failure in a row divides an
        experience's score, so one that keeps failing loses rank; ties go to the newer one. Two
        experiences with the same question count once."""
        match = fts_query(question)
        if not match or limit <= 0 or recent <= 0:
            return []
        rows = self._conn.execute(
            """SELECT e.*, m.score AS score FROM
                   (SELECT rowid AS id, bm25(experiences_fts) AS score FROM experiences_fts
                    WHERE experiences_fts MATCH :match) m
               JOIN (SELECT * FROM experiences WHERE root = :root AND status = 'active'
                     ORDER BY created_at DESC, id DESC LIMIT :recent) e ON e.id = m.id
               ORDER BY m.score / (1 + e.failure_streak), e.created_at DESC, e.id DESC LIMIT :fetch""",
            {"match": match, "root": root, "recent": recent, "fetch": limit * 4}).fetchall()
        chosen: list[Experience] = []
        seen: set[str] = set()
        for row in rows:
            key = " ".join(row["question"].lower().split())
            if key not in seen:
                seen.add(key)
                chosen.append(_from_row(row))
            if len(chosen) == limit:
                break
        return chosen

    def counts(self) -> dict[str, int]:
        """``exist``, ``active`` and ``retired`` experiences."""
        row = self._conn.execute(
            """SELECT COUNT(*), COALESCE(SUM(status = 'active'), 0), COALESCE(SUM(status = 'retired'), 0)
               FROM experiences""").fetchone()
        return {"exist": int(row[0]), "active": int(row[1]), "retired": int(row[2])}

    def usage_outcomes(self, target: str) -> dict[str, dict[str, Any]]:
        """Recorded runs with and without worked examples (metadata ``experiences``): ``runs``,
        ``success_rate`` (status success) and ``mean_reward`` (target reward; None when none has it)."""
        reward = target_reward_sql("r", ":name")
        rows = self._conn.execute(
            f"""SELECT COALESCE(json_array_length(json_extract(r.metadata, '$.experiences')), 0) > 0 AS used,
                       COUNT(*) AS runs, AVG(r.status = 'success') AS success_rate, AVG({reward}) AS mean_reward
                FROM runs r WHERE json_valid(r.metadata) GROUP BY used""", {"name": target}).fetchall()
        outcome = {key: {"runs": 0, "success_rate": None, "mean_reward": None} for key in ("with", "without")}
        for row in rows:
            outcome["with" if row["used"] else "without"] = {
                "runs": row["runs"], "success_rate": row["success_rate"], "mean_reward": row["mean_reward"]}
        return outcome

    @property
    def _conn(self) -> sqlite3.Connection:
        return self._store.connection


def fts_query(question: str) -> str:
    """An FTS5 MATCH expression: any of the question's content words, each quoted (so no word is
    read as FTS syntax). Empty when the question has none."""
    words: list[str] = []
    for word in _WORD.findall(question.lower()):
        if (len(word) > 1 or word.isdigit()) and word not in _STOPWORDS and word not in words:
            words.append(word)
    return " OR ".join(f'"{word}"' for word in words)


def _from_row(row: sqlite3.Row) -> Experience:
    data = {k: row[k] for k in Experience.__dataclass_fields__}
    data["trajectory"] = loads(data["trajectory"]) or {}
    return Experience(**data)
