"""Scheduled optimization: triggers from SQL, the flock lock, and launching in the background."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.store.factories import DAY0, make_run
from tongyi_agent.config.training import OptimizationScheduleSettings
from tongyi_agent.learn import schedule
from tongyi_agent.learn.schedule import (
    LAST_COUNT_KEY,
    LOCK_FILE,
    LOG_FILE,
    OptimizationLock,
    OptimizationLockedError,
    check_triggers,
    optimize_command,
    rolling_mean_reward,
    schedule_status,
    start_background,
)
from tongyi_agent.store import RewardRecord, TrajectoryStore

TARGET = "response_quality"
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TrajectoryStore]:
    with TrajectoryStore(tmp_path / "data" / "trajectories.sqlite") as s:
        yield s


def add_runs(store: TrajectoryStore, n: int, reward: float | None = 0.9) -> None:
    for _ in range(n):
        rewards = [] if reward is None else [RewardRecord(TARGET, reward, "builtin"),
                                             RewardRecord("response_speed", 1.0, "builtin")]
        store.record_run(make_run(started_at=DAY0 + store.count_runs(), rewards=rewards))


# -- triggers ------------------------------------------------------------------------------------


def test_periodic_fires_at_the_interval_and_resets(store: TrajectoryStore) -> None:
    settings = OptimizationScheduleSettings(schedule="periodic", periodic_interval=5)
    add_runs(store, 4)
    assert check_triggers(store, settings, TARGET) is None
    add_runs(store, 1)
    reason = check_triggers(store, settings, TARGET)
    assert reason is not None and reason.startswith("periodic: 5 runs since the last optimization")
    store.set_meta(LAST_COUNT_KEY, "5")  # what start_background records
    assert check_triggers(store, settings, TARGET) is None
    add_runs(store, 4)
    assert check_triggers(store, settings, TARGET) is None
    add_runs(store, 1)
    assert check_triggers(store, settings, TARGET) is not None


def test_manual_schedule_never_fires_on_count(store: TrajectoryStore) -> None:
    add_runs(store, 60)
    assert check_triggers(store, OptimizationScheduleSettings(schedule="manual", periodic_interval=5), TARGET) is None


def test_performance_drop_needs_a_full_window_below_the_threshold(store: TrajectoryStore) -> None:
    settings = OptimizationScheduleSettings(trigger_on_performance_drop=True, performance_threshold=0.6)
    add_runs(store, 4, reward=0.2)
    assert check_triggers(store, settings, TARGET, window=5) is None  # too few runs to judge
    add_runs(store, 1, reward=0.2)
    reason = check_triggers(store, settings, TARGET, window=5)
    assert reason == "performance drop: mean response_quality of the last 5 runs is 0.20, below 0.60"


def test_performance_drop_uses_the_newest_runs_and_the_target_reward(store: TrajectoryStore) -> None:
    settings = OptimizationScheduleSettings(trigger_on_performance_drop=True, performance_threshold=0.6)
    add_runs(store, 5, reward=0.1)
    add_runs(store, 5, reward=0.7)  # recovered: the older bad runs are outside the window
    assert check_triggers(store, settings, TARGET, window=5) is None
    assert rolling_mean_reward(store, TARGET, 5) == pytest.approx(0.7)
    # Other reward names (response_speed is 1.0 on every run) do not lift the mean.
    add_runs(store, 5, reward=0.59)
    assert rolling_mean_reward(store, TARGET, 5) == pytest.approx(0.59)
    assert check_triggers(store, settings, TARGET, window=5) is not None


def test_performance_drop_is_off_unless_enabled(store: TrajectoryStore) -> None:
    add_runs(store, 30, reward=0.0)
    assert check_triggers(store, OptimizationScheduleSettings(trigger_on_performance_drop=False), TARGET) is None


def test_performance_drop_waits_for_a_new_window_after_an_optimization(store: TrajectoryStore) -> None:
    settings = OptimizationScheduleSettings(trigger_on_performance_drop=True, performance_threshold=0.6)
    add_runs(store, 5, reward=0.2)
    assert check_triggers(store, settings, TARGET, window=5) is not None
    store.set_meta(LAST_COUNT_KEY, "5")  # an optimization just started
    add_runs(store, 4, reward=0.2)
    assert check_triggers(store, settings, TARGET, window=5) is None  # no re-trigger after every run
    add_runs(store, 1, reward=0.2)
    assert check_triggers(store, settings, TARGET, window=5) is not None


def test_both_triggers_are_reported_together(store: TrajectoryStore) -> None:
    settings = OptimizationScheduleSettings(schedule="periodic", periodic_interval=5,
                                            trigger_on_performance_drop=True, performance_threshold=0.6)
    add_runs(store, 5, reward=0.1)
    reason = check_triggers(store, settings, TARGET, window=5)
    assert reason is not None and "performance drop" in reason and "periodic" in reason and "\n" not in reason


# -- the lock ------------------------------------------------------------------------------------


def test_lock_excludes_a_second_holder_in_the_same_process(tmp_path: Path) -> None:
    path = tmp_path / "sub" / LOCK_FILE
    first, second = OptimizationLock(path), OptimizationLock(path)
    assert first.acquire()
    assert first.acquire()  # re-acquiring what it holds is fine
    assert not second.acquire()
    assert second.held_by_other() and not first.held_by_other()
    with pytest.raises(OptimizationLockedError, match="already running"), second:
        pass
    first.release()
    assert not second.held_by_other()
    assert not second.held  # the probe did not keep it
    with second:
        assert second.held and first.held_by_other()
    assert not first.held_by_other()


def test_a_killed_holder_releases_the_lock(tmp_path: Path) -> None:
    path = tmp_path / LOCK_FILE
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(SRC)!r})
        from pathlib import Path
        from tongyi_agent.learn.schedule import OptimizationLock
        assert OptimizationLock(Path({str(path)!r})).acquire()
        print("locked", flush=True)
        time.sleep(60)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        lock = OptimizationLock(path)
        assert lock.held_by_other()
        assert lock.holder_pid() == holder.pid
        assert not lock.acquire()
    finally:
        holder.kill()  # SIGKILL: no cleanup code runs, only the kernel can release the lock
        holder.wait(timeout=10)
    assert lock.acquire()
    lock.release()


# -- launching -----------------------------------------------------------------------------------


def test_start_background_does_nothing_while_the_lock_is_held(tmp_path: Path, store: TrajectoryStore,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def no_launch(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("must not launch while another optimization runs")

    monkeypatch.setattr(schedule.subprocess, "Popen", no_launch)
    add_runs(store, 3)
    data_dir = tmp_path / "data"
    with OptimizationLock(data_dir / LOCK_FILE):
        assert start_background(tmp_path, data_dir, [], store=store, reason="test") is None
    assert schedule_status(store) == {"last_started": None, "last_count": 0}


def test_start_background_launches_detached_and_records_it(tmp_path: Path, store: TrajectoryStore) -> None:
    add_runs(store, 7)
    data_dir = tmp_path / "data"

    def fake(root: Path, argv: list[str]) -> list[str]:  # a child that exits at once
        return [sys.executable, "-c", "import sys; print('child ran', sys.argv[1:])", str(root), *argv]

    process = start_background(tmp_path, data_dir, ["--budget", "3"], store=store, reason="periodic: 7 runs",
                               command=fake)
    assert process is not None
    assert process.wait(timeout=30) == 0
    log = (data_dir / LOG_FILE).read_text()
    assert "scheduled optimization: periodic: 7 runs" in log
    assert f"child ran ['{tmp_path}', '--budget', '3']" in log
    status = schedule_status(store)
    assert status["last_count"] == 7
    assert status["last_started"]["pid"] == process.pid and status["last_started"]["reason"] == "periodic: 7 runs"
    # The periodic trigger now counts from here.
    assert check_triggers(store, OptimizationScheduleSettings(schedule="periodic", periodic_interval=5), TARGET) is None
    # A second launch appends to the same log.
    second = start_background(tmp_path, data_dir, [], store=store, command=fake)
    assert second is not None and second.wait(timeout=30) == 0
    assert (data_dir / LOG_FILE).read_text().count("child ran") == 2


def test_start_background_runs_the_package_detached(tmp_path: Path, store: TrajectoryStore,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[list[str], dict[str, Any]]] = []

    class FakePopen:
        pid = 4242

        def __init__(self, cmd: list[str], **kwargs: Any) -> None:
            calls.append((cmd, kwargs))

    monkeypatch.setattr(schedule.subprocess, "Popen", FakePopen)
    start_background(tmp_path, tmp_path / "data", ["--optimize-iterations", "2"], store=store, reason="r")
    [(cmd, kwargs)] = calls
    assert cmd == [sys.executable, "-I", "-m", "tongyi_agent", "--root", str(tmp_path), "--optimize",
                   "--optimize-iterations", "2"]
    assert cmd == optimize_command(tmp_path, ["--optimize-iterations", "2"])
    assert kwargs["start_new_session"] is True and kwargs["stdin"] == subprocess.DEVNULL
    assert kwargs["cwd"] == tmp_path / "data"  # never the caller's working directory
    assert kwargs["stdout"].name == str(tmp_path / "data" / LOG_FILE)
    assert json.loads(store.get_meta("schedule.last_started") or "{}")["pid"] == 4242
