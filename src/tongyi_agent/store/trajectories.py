"""The trajectory store: runs, their spans, rewards and feedback in one SQLite file."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from tongyi_agent.store.db import StoreError, connect
from tongyi_agent.store.migrations import migrate
from tongyi_agent.store.records import (
    REWARD_SOURCES,
    RUN_STATUSES,
    SPAN_KINDS,
    RewardRecord,
    RunRecord,
    SpanRecord,
)
from tongyi_agent.store.redact import redact
from tongyi_agent.store.rows import (
    INSERT_REWARD,
    INSERT_RUN,
    INSERT_SPAN,
    JSON_RUN_COLUMNS,
    RUN_COLUMNS,
    dumps,
    reward_from_row,
    run_from_row,
    span_from_row,
    target_reward_sql,
)

T = TypeVar("T")

MIN_PREFIX = 6
WRITE_ATTEMPTS = 5  # on top of SQLite's own 10 s busy timeout per attempt
USER_FEEDBACK = "user_feedback"


class StoreTransaction:
    """What a caller may do inside :meth:`TrajectoryStore.transaction`: read and write ``meta`` keys.

    Every call runs in the one open write transaction, so a read-modify-write (load a JSON value,
    change it, save it) cannot interleave with another process doing the same."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def set_meta(self, key: str, value: str | None) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def delete_meta(self, key: str) -> None:
        self._conn.execute("DELETE FROM meta WHERE key = ?", (key,))


class TrajectoryStore:
    """Runs, spans, rewards and feedback in one SQLite file (e.g. ``<training dir>/trajectories.sqlite``).

    Everything textual is redacted with ``secrets`` (plus known key shapes) before it is written.
    Safe to use from several processes at once; not to share one instance between threads.
    """

    def __init__(self, path: Path, secrets: Iterable[str] = ()) -> None:
        self.path = Path(path)
        self.secrets: tuple[str, ...] = tuple(secrets)
        self._conn = connect(self.path)
        migrate(self._conn)

    @property
    def connection(self) -> sqlite3.Connection:
        return self._conn

    # -- writing -------------------------------------------------------------------------------

    def record_run(
        self, run: RunRecord, spans: Iterable[SpanRecord] = (), rewards: Iterable[RewardRecord] = ()
    ) -> str:
        """Write a run with its spans and rewards (``rewards`` plus any already on ``run.rewards``) in one
        transaction; return the run id. Text is redacted first; the caller's records are not modified."""
        if run.status not in RUN_STATUSES:
            raise ValueError(f"run status must be one of {sorted(RUN_STATUSES)}, not {run.status!r}")
        now = time.time()
        s = self.secrets
        run_row = {
            **{c: getattr(run, c) for c in RUN_COLUMNS},
            "question": redact(run.question, s),
            "answer": redact(run.answer, s),
            "error": redact(run.error, s),
            "stop_reason": redact(run.stop_reason, s),
            "sources": redact(run.sources, s),
            "metadata": redact(run.metadata, s),
            "started_at": run.started_at or now,
        }
        values = [dumps(run_row[c]) if c in JSON_RUN_COLUMNS else run_row[c] for c in RUN_COLUMNS]
        span_rows = [self._span_row(run.id, span) for span in spans]
        reward_rows = [self._reward_row(run.id, reward, now) for reward in [*run.rewards, *rewards]]

        def write(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(INSERT_RUN, values)
            except sqlite3.IntegrityError as err:
                raise StoreError(f"run {run.id} is already recorded") from err
            conn.executemany(INSERT_SPAN, span_rows)
            conn.executemany(INSERT_REWARD, reward_rows)

        self._write(write)
        return run.id

    def add_reward(self, run_id: str, reward: RewardRecord, *, replace: bool = False) -> None:
        """Add a reward to a run; with ``replace``, the run's earlier rewards of the same name and
        source go (a user's later answer to a run supersedes their earlier one instead of averaging)."""
        row = self._reward_row(run_id, reward, time.time())

        def write(conn: sqlite3.Connection) -> None:
            self._require_run(run_id)
            if replace:
                conn.execute("DELETE FROM rewards WHERE run_id = ? AND name = ? AND source = ?",
                             (run_id, reward.name, reward.source))
            conn.execute(INSERT_REWARD, row)

        self._write(write)

    def add_feedback(self, run_id: str, score: float, comment: str | None = None) -> float:
        """Store a user's score for a run, plus a ``user_feedback`` reward (source ``user``).

        Scores in [0, 1] are used as they are. Scores in [-1, 0) come from a thumbs scale and map
        linearly onto [0, 0.5) (so thumbs-down -1 becomes 0.0, thumbs-up +1 stays 1.0). Anything
        else raises ``ValueError``: a 1-5 star rating is not guessed, divide it first. The raw score
        is kept in ``feedback``; the normalised one (returned) is the reward.
        """
        if not -1.0 <= score <= 1.0:
            raise ValueError(f"feedback score must be in [0, 1] (or -1 for thumbs-down), not {score}")
        value = score if score >= 0 else (score + 1.0) / 2.0
        now = time.time()
        comment = redact(comment, self.secrets)
        reward = RewardRecord(USER_FEEDBACK, value, "user", comment, now)
        reward_row = self._reward_row(run_id, reward, now)

        def write(conn: sqlite3.Connection) -> None:
            self._require_run(run_id)
            conn.execute(
                "INSERT INTO feedback (run_id, score, comment, created_at) VALUES (?, ?, ?, ?)",
                (run_id, score, comment, now),
            )
            conn.execute(INSERT_REWARD, reward_row)

        self._write(write)
        return value

    def set_meta(self, key: str, value: str | None) -> None:
        with self.transaction() as tx:
            tx.set_meta(key, value)

    def delete_meta(self, key: str) -> None:
        with self.transaction() as tx:
            tx.delete_meta(key)

    @contextmanager
    def transaction(self) -> Iterator[StoreTransaction]:
        """One write transaction (``BEGIN IMMEDIATE``), committed when the block ends and rolled back
        if it raises. Use it for read-modify-write of ``meta`` values that must not race."""
        self._begin()
        try:
            yield StoreTransaction(self._conn)
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:  # SQLite may already have rolled back on some errors
                self._conn.execute("ROLLBACK")
            raise

    def reset(self) -> None:
        """Delete every row (runs, spans, rewards, feedback, meta); the schema and migrations stay."""

        def write(conn: sqlite3.Connection) -> None:
            for table in ("experience_uses", "experiences", "feedback", "rewards", "spans", "runs", "meta"):
                conn.execute(f"DELETE FROM {table}")

        self._write(write)

    # -- reading -------------------------------------------------------------------------------

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def get_run(self, run_id: str) -> RunRecord:
        row = self._conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"no run with id {run_id!r}")
        run = run_from_row(row)
        run.rewards = [reward_from_row(r) for r in self._conn.execute(
            "SELECT * FROM rewards WHERE run_id = ? ORDER BY id", (run_id,))]  # fmt: skip
        return run

    def resolve_run_id(self, prefix: str) -> str:
        """The full id of the one run whose id starts with ``prefix`` (at least 6 characters, like git)."""
        prefix = prefix.strip().lower()
        if len(prefix) < MIN_PREFIX:
            raise StoreError(f"run id prefix {prefix!r} is too short: give at least {MIN_PREFIX} characters")
        # A range on the primary key instead of LIKE, so the lookup uses the index.
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        rows = self._conn.execute(
            "SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 2", (prefix, upper)
        ).fetchall()
        if not rows:
            raise StoreError(f"no run id starts with {prefix!r}")
        if len(rows) > 1:
            raise StoreError(f"run id prefix {prefix!r} is ambiguous: give more characters")
        return str(rows[0][0])

    def count_runs(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    def iter_runs(
        self, min_reward: float | None = None, reward_name: str | None = None, batch: int = 500
    ) -> Iterator[RunRecord]:
        """Yield runs oldest first, with their rewards, ``batch`` rows per query.

        Keyset pagination on (started_at, id): each batch is a fresh indexed query, so memory stays
        flat and no read transaction is held open while the caller works. With ``min_reward``, only
        runs whose target reward (``RunRecord.reward(reward_name)``) is at least that are yielded.
        """
        target = target_reward_sql("r", ":name" if reward_name else None)
        where = "(r.started_at, r.id) > (:t, :id)"
        if min_reward is not None:
            where += f" AND {target} >= :min"
        sql = f"SELECT r.* FROM runs r WHERE {where} ORDER BY r.started_at, r.id LIMIT :batch"
        params: dict[str, Any] = {"t": float("-inf"), "id": "", "name": reward_name, "min": min_reward,
                                  "batch": max(1, batch)}  # fmt: skip
        while True:
            rows = self._conn.execute(sql, params).fetchall()
            if not rows:
                return
            runs = [run_from_row(row) for row in rows]
            by_id = {run.id: run for run in runs}
            marks = ", ".join("?" * len(by_id))
            for r in self._conn.execute(f"SELECT * FROM rewards WHERE run_id IN ({marks}) ORDER BY id", list(by_id)):
                by_id[r["run_id"]].rewards.append(reward_from_row(r))
            yield from runs
            params["t"], params["id"] = rows[-1]["started_at"], rows[-1]["id"]

    def iter_spans(self, run_id: str) -> Iterator[SpanRecord]:
        for row in self._conn.execute("SELECT * FROM spans WHERE run_id = ? ORDER BY seq", (run_id,)):
            yield span_from_row(row)

    def backup(self, path: Path) -> None:
        """A consistent copy of the whole store at ``path`` (SQLite's online backup; safe while others write)."""
        target = connect(Path(path))
        try:
            self._conn.backup(target)
        finally:
            target.close()

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> TrajectoryStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------

    def _require_run(self, run_id: str) -> None:
        if self._conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
            raise StoreError(f"no run with id {run_id!r}")

    def _span_row(self, run_id: str, span: SpanRecord) -> tuple[Any, ...]:
        if span.kind not in SPAN_KINDS:
            raise ValueError(f"span kind must be one of {sorted(SPAN_KINDS)}, not {span.kind!r}")
        s = self.secrets
        return (
            run_id, span.seq, span.kind, span.name, dumps(redact(span.input, s)), dumps(redact(span.output, s)),
            span.started_at, span.duration, span.input_tokens, span.output_tokens, redact(span.error, s),
            dumps(redact(span.attributes, s)),
        )  # fmt: skip

    def _reward_row(self, run_id: str, reward: RewardRecord, now: float) -> tuple[Any, ...]:
        if reward.source not in REWARD_SOURCES:
            raise ValueError(f"reward source must be one of {sorted(REWARD_SOURCES)}, not {reward.source!r}")
        value = None if reward.value is None else float(reward.value)
        return (run_id, reward.name, value, reward.source, redact(reward.detail, self.secrets),
                reward.created_at or now)  # fmt: skip

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one write transaction (for the store's own modules, which write SQL)."""
        with self.transaction():
            return work(self._conn)

    def _begin(self) -> None:
        """``BEGIN IMMEDIATE``, retrying a few times if the file stays locked.

        IMMEDIATE takes the write lock up front, so SQLite's busy timeout applies; the retry loop
        covers the rare case where the timeout itself expires under heavy contention.
        """
        for attempt in range(WRITE_ATTEMPTS):
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as err:
                if not _is_busy(err) or attempt == WRITE_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * 2**attempt)


def _is_busy(err: sqlite3.OperationalError) -> bool:
    text = str(err).lower()
    return "locked" in text or "busy" in text
