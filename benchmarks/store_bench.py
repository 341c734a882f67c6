"""Trajectory store benchmark: ingest rate, and time and peak memory of stats and export by history size.

For each size N, writes N synthetic runs (4 spans and 4 rewards each) into a fresh temporary store
through ``record_run`` (one transaction per run, as the agent does), then measures
``compute_stats`` and ``export_json`` each in a fresh subprocess: wall time, the peak of Python
allocations (tracemalloc) and the growth of the process's peak RSS (ru_maxrss, which includes
SQLite's own memory). Memory should not grow with N: the last lines print the ratios between the
largest and smallest size, which should be about 1.

    python benchmarks/store_bench.py                      # 10k and 100k runs (~2 min on 2 cores)
    python benchmarks/store_bench.py --sizes 1000,10000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from tongyi_agent.store import RewardRecord, RunRecord, SpanRecord, TrajectoryStore, compute_stats, export_json

LIMITS = {"max_response_time": 30.0, "min_success_rate": 0.8, "min_tool_efficiency": 0.7}
SYSTEM = "You are a research assistant. Answer from the project's files and cite path:line. " * 4
FILE_TEXT = "def add(a, b):\n    return a + b\n" * 20
DAY = 86_400.0


def synthetic_run(i: int, started_at: float) -> tuple[RunRecord, list[SpanRecord], list[RewardRecord]]:
    question = f"Where is service {i % 997} configured, and which port does it listen on? (variant {i})"
    answer = f"Service {i % 997} is configured in services/s{i % 997}.md:3 and listens on port {8000 + i % 997}. " * 5
    call = {"id": f"call_{i}", "name": "read_file", "arguments": {"path": f"services/s{i % 997}.md"}}
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    turn = [{"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": FILE_TEXT}]  # fmt: skip
    failed_tool = i % 10 == 0
    spans = [
        SpanRecord(0, "llm", "bench-model", messages, {"content": None, "tool_calls": [call]}, started_at, 0.8,
                   300, 20),
        SpanRecord(1, "tool", "read_file", call["arguments"], FILE_TEXT, started_at + 0.8, 0.01,
                   error="not found" if failed_tool else None, attributes={"tool_call_id": call["id"]}),
        SpanRecord(2, "llm", "bench-model", messages + turn, {"content": answer, "tool_calls": []}, started_at + 0.9,
                   1.1, 700, 90),
        SpanRecord(3, "tool", "cite", {"path": f"services/s{i % 997}.md", "line": 3}, "ok", started_at + 2.0, 0.001),
    ]  # fmt: skip
    run = RunRecord(
        question=question, answer=answer, status="failed" if i % 17 == 0 else "success", model="bench-model",
        backend="scripted", dialect="native", prompt_version=f"v{i % 3}", training_mode="prompt", root="/proj",
        started_at=started_at, seconds=1.0 + (i % 100) / 10, input_tokens=1000, output_tokens=110, model_calls=2,
        tool_calls=2, tools_used=["read_file", "cite"], stop_reason="answer",
        sources=[{"path": f"services/s{i % 997}.md", "line": 3, "text": "port: 8000"}], metadata={"bench": True},
    )  # fmt: skip
    rewards = [RewardRecord(name, (i * k % 101) / 100, "builtin", None, started_at)
               for k, name in enumerate(("task_success", "citation", "efficiency", "format"), start=7)]  # fmt: skip
    return run, spans, rewards


def ingest(path: Path, n: int) -> float:
    start_day = 1_700_000_000.0
    with TrajectoryStore(path) as store:
        t0 = time.perf_counter()
        for i in range(n):
            # Spread runs over 60 days so the 30-day trend has work to do.
            store.record_run(*synthetic_run(i, start_day + i * (60 * DAY / n)))
        elapsed = time.perf_counter() - t0
        store.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return elapsed


def operation(name: str, db: Path, out_dir: Path) -> None:
    with TrajectoryStore(db) as store:
        if name == "stats":
            compute_stats(store, **LIMITS, target="task_success")
        else:
            export_json(store, out_dir / "export.json", {"bench": True}, {}, reward_name="task_success")


def child(name: str, db: Path) -> dict[str, Any]:
    """Run one operation in this (fresh) process: timed without tracing, then again under tracemalloc."""
    with tempfile.TemporaryDirectory() as out:
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        operation(name, db, Path(out))
        seconds = time.perf_counter() - t0
        rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline
        tracemalloc.start()
        operation(name, db, Path(out))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return {"seconds": seconds, "py_peak_kib": peak / 1024, "rss_delta_kib": rss_kib}


def measure(name: str, db: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", name, "--db", str(db)],
                          capture_output=True, text=True, check=True, timeout=600)  # fmt: skip
    return json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated run counts (default: 10000,100000)")
    parser.add_argument("--child", choices=["stats", "export"], help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.db)))
        return

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    rows: list[dict[str, Any]] = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "trajectories.sqlite"
            ingest_s = ingest(db, n)
            row = {"runs": n, "ingest_per_s": n / ingest_s, "db_mib": db.stat().st_size / 2**20}
            for name in ("stats", "export"):
                row[name] = measure(name, db)
            rows.append(row)
            print(f"  measured {n} runs", flush=True)

    print(f"{'runs':>8} {'ingest/s':>9} {'db MiB':>7} | {'stats s':>8} {'py peak KiB':>11} {'rss +KiB':>9} | "
          f"{'export s':>8} {'py peak KiB':>11} {'rss +KiB':>9}")  # fmt: skip
    for r in rows:
        s, e = r["stats"], r["export"]
        print(f"{r['runs']:>8} {r['ingest_per_s']:>9.0f} {r['db_mib']:>7.1f} | {s['seconds']:>8.2f} "
              f"{s['py_peak_kib']:>11.0f} {s['rss_delta_kib']:>9.0f} | {e['seconds']:>8.2f} "
              f"{e['py_peak_kib']:>11.0f} {e['rss_delta_kib']:>9.0f}")  # fmt: skip
    if len(rows) > 1:
        small, big = rows[0], rows[-1]
        label = f"{big['runs'] // 1000}k/{small['runs'] // 1000}k" if small["runs"] >= 1000 else "largest/smallest"
        for name in ("stats", "export"):
            py = big[name]["py_peak_kib"] / small[name]["py_peak_kib"]
            # RSS moves in pages and allocator arenas: deltas under 1 MiB are noise, so they count as 1 MiB.
            rss = max(big[name]["rss_delta_kib"], 1024) / max(small[name]["rss_delta_kib"], 1024)
            print(f"peak memory ratio {label} {name}: python {py:.2f}, rss delta {rss:.2f} (flat = ~1)")
        print(f"time ratio {label}: stats {big['stats']['seconds'] / small['stats']['seconds']:.1f}, "
              f"export {big['export']['seconds'] / small['export']['seconds']:.1f} "
              f"(linear = {big['runs'] / small['runs']:.0f})")  # fmt: skip


if __name__ == "__main__":
    main()
