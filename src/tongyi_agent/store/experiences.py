"""Experiences: confirmed runs kept as worked examples, with a full-text index for retrieval.

The learn layer decides which runs are confirmed and how each later use went; this module stores
them and answers "which experiences are most like this question" with SQLite's FTS5 bm25. Uses are
kept per (experience, run) in ``experience_uses``, so a run judged again (it was rated later) changes
its one use instead of adding another; each experience's counters and status are recounted from them.
Text is redacted with the store's secrets before it is written, as everything else in the store.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from tongyi_agent.store.db import StoreError
from tongyi_agent.store.redact import redact
from tongyi_agent.store.rows import dumps, loads, target_reward_sql
from tongyi_agent.store.trajectories import USER_FEEDBACK, TrajectoryStore

ACTIVE, RETIRED = "active", "retired"
_WORD = re.compile(r"\w+", re.UNICODE)
# Words that say nothing about what a question is about; bm25 weights rare words up anyway, but in a
# small memory even "the" is rare enough to decide a match.
_STOPWORDS = frozenset(
    "a an and are as at be by can do does did for from has have how i in is it its many much of on or "
    "that the their there these this to was were what when where which who whom whose why will with "
    "you your".split())


@dataclass
class ExperienceUse:
    """One later run that was shown an experience, and whether that run went well (as last judged)."""

    run_id: str
    success: bool
    used_at: float
    judged_at: float


@dataclass
class UseChanges:
    """Experiences whose status changed when uses were recorded or judged again."""

    retired: list[int] = field(default_factory=list)
    reactivated: list[int] = field(default_factory=list)


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
    confirmed_by: str  # "feedback", "task", "reward" or "correction"
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

    def record_use(self, run_id: str, ids: list[int], *, success: bool, retire_after: int) -> UseChanges:
        """Record that run ``run_id`` was shown experiences ``ids`` and whether it went well. A run counts
        once per experience: recording it again judges that use again instead of adding one."""
        return self._store._write(lambda conn: self._judge(conn, run_id, ids, success, retire_after))

    def rejudge_uses(self, run_id: str, *, success: bool, retire_after: int) -> UseChanges:
        """Judge again every use recorded for ``run_id`` (it was rated after it was recorded). A run
        with no recorded use (it was shown nothing, or was counted before uses were kept per run) changes
        nothing."""

        def write(conn: sqlite3.Connection) -> UseChanges:
            ids = [int(row[0]) for row in conn.execute(
                "SELECT experience_id FROM experience_uses WHERE run_id = ? ORDER BY id", (run_id,))]
            return self._judge(conn, run_id, ids, success, retire_after, add=False)

        return self._store._write(write)

    @staticmethod
    def _judge(conn: sqlite3.Connection, run_id: str, ids: list[int], success: bool, retire_after: int, *,
               add: bool = True) -> UseChanges:
        now = time.time()
        changes = UseChanges()
        for experience_id in dict.fromkeys(ids):
            if conn.execute("SELECT 1 FROM experiences WHERE id = ?", (experience_id,)).fetchone() is None:
                continue  # forgotten since it was shown
            row = conn.execute("SELECT success FROM experience_uses WHERE experience_id = ? AND run_id = ?",
                               (experience_id, run_id)).fetchone()
            if row is not None and bool(row[0]) == success:
                continue  # judged the same before: nothing to count again
            if row is not None:
                conn.execute("""UPDATE experience_uses SET success = ?, judged_at = ?
                                WHERE experience_id = ? AND run_id = ?""", (success, now, experience_id, run_id))
            elif add:
                conn.execute("""INSERT INTO experience_uses (experience_id, run_id, success, used_at, judged_at)
                                VALUES (?, ?, ?, ?, ?)""", (experience_id, run_id, success, now, now))
                conn.execute("UPDATE experiences SET last_used_at = ? WHERE id = ?", (now, experience_id))
            else:
                continue
            before, after = _recount(conn, experience_id, retire_after)
            if (before, after) == (ACTIVE, RETIRED):
                changes.retired.append(experience_id)
            elif (before, after) == (RETIRED, ACTIVE):
                changes.reactivated.append(experience_id)
        return changes

    def uses(self, experience_id: int) -> list[ExperienceUse]:
        """The uses recorded per run, oldest first (uses counted before this was kept are not listed)."""
        rows = self._conn.execute(
            "SELECT run_id, success, used_at, judged_at FROM experience_uses WHERE experience_id = ? ORDER BY id",
            (experience_id,)).fetchall()
        return [ExperienceUse(row[0], bool(row[1]), row[2], row[3]) for row in rows]

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

    def usage_outcomes(self, target: str, *, min_reward: float, confirmed: float) -> dict[str, dict[str, Any]]:
        """Recorded runs with and without worked examples (metadata ``experiences``): ``runs``,
        ``success_rate`` and ``mean_reward`` (target reward; None when none has it).

        A run succeeded by the rule that judges a use (``learn.memory.use_succeeded``, which this must
        agree with): its latest user rating is at least ``confirmed``; without a rating, its ``task``
        reward is 1; without either, it ended with status success and a target reward of at least
        ``min_reward``. Ratings are read now, so a run rated after it was recorded counts as rated."""
        reward = target_reward_sql("r", ":name")
        task = target_reward_sql("r", "'task'")
        rows = self._conn.execute(
            f"""SELECT used, COUNT(*) AS runs, AVG(CASE
                           WHEN rating IS NOT NULL THEN rating >= :confirmed
                           WHEN task IS NOT NULL THEN task >= 1.0
                           ELSE status = 'success' AND COALESCE(reward >= :min_reward, 0) END) AS success_rate,
                       AVG(reward) AS mean_reward
                FROM (SELECT COALESCE(json_array_length(json_extract(r.metadata, '$.experiences')), 0) > 0 AS used,
                             r.status AS status, {reward} AS reward, {task} AS task,
                             (SELECT w.value FROM rewards w WHERE w.run_id = r.id AND w.name = :feedback
                              AND w.value IS NOT NULL ORDER BY w.id DESC LIMIT 1) AS rating
                      FROM runs r WHERE json_valid(r.metadata))
                GROUP BY used""",
            {"name": target, "feedback": USER_FEEDBACK, "confirmed": confirmed,
             "min_reward": min_reward}).fetchall()
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


def _recount(conn: sqlite3.Connection, experience_id: int, retire_after: int) -> tuple[str, str]:
    """Bring an experience's counters and status up to date with its uses; returns (status before,
    status after). The status follows the uses: retired when the latest ``retire_after`` uses in a row
    failed, active otherwise, so a failed use judged a success again can bring an experience back."""
    row = conn.execute("""SELECT status, prior_uses, prior_failures, prior_failure_streak FROM experiences
                          WHERE id = ?""", (experience_id,)).fetchone()
    status, uses, failures, streak = row[0], int(row[1]), int(row[2]), int(row[3])
    for (success,) in conn.execute("SELECT success FROM experience_uses WHERE experience_id = ? ORDER BY id",
                                   (experience_id,)):
        uses += 1
        failures += 0 if success else 1
        streak = 0 if success else streak + 1
    after = RETIRED if streak >= retire_after else ACTIVE
    conn.execute("UPDATE experiences SET uses = ?, failures = ?, failure_streak = ?, status = ? WHERE id = ?",
                 (uses, failures, streak, after, experience_id))
    return status, after


def _from_row(row: sqlite3.Row) -> Experience:
    data = {k: row[k] for k in Experience.__dataclass_fields__}
    data["trajectory"] = loads(data["trajectory"]) or {}
    return Experience(**data)
