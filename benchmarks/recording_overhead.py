"""Agent runs with recording on vs off, side by side: the cost of turning every run into training data.

Each run is a real agent loop (search, read, answer) over a generated folder, driven by the
in-process scripted model so that only our own overhead is measured: tool calls, span capture,
reward computation and the SQLite transaction. Prints runs/s for both and the overhead ratio.

    python benchmarks/recording_overhead.py          # 300 runs each
    python benchmarks/recording_overhead.py -n 1000
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from tongyi_agent.agent.dialects import get_dialect
from tongyi_agent.agent.loop import Agent
from tongyi_agent.config.training import TrainingConfig
from tongyi_agent.learn.recording import RunRecorder
from tongyi_agent.llm.base import ChatResponse, ToolCall
from tongyi_agent.llm.scripted import ScriptedModel
from tongyi_agent.store import TrajectoryStore
from tongyi_agent.tools import default_registry


def make_project(root: Path) -> None:
    for i in range(50):
        (root / f"service_{i}.md").write_text(f"# Service {i}\n\n- Listens on port {8000 + i}.\n- Owner: team {i}.\n")


def script(n: int) -> list[ChatResponse]:
    replies = []
    for i in range(n):
        replies += [
            ChatResponse("", [ToolCall("c1", "search_files", {"query": f"service {i % 50} port"})]),
            ChatResponse("", [ToolCall("c2", "read_file", {"path": f"service_{i % 50}.md"})]),
            ChatResponse(f"Service {i % 50} listens on port {8000 + i % 50}."),
        ]
    return replies


async def run_many(root: Path, n: int, recorder: RunRecorder | None) -> float:
    agent = Agent(ScriptedModel(script(n)), default_registry(), get_dialect("native"), root)
    started = time.perf_counter()
    for i in range(n):
        question = f"Which port does service {i % 50} listen on?"
        if recorder is None:
            await agent.run(question)
        else:
            await recorder.run(agent, question)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=300, help="runs per configuration (default 300)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "project"
        root.mkdir()
        make_project(root)
        off = asyncio.run(run_many(root, args.n, None))
        with TrajectoryStore(Path(tmp) / "trajectories.sqlite") as store:
            recorder = RunRecorder(store, TrainingConfig(), backend="scripted", dialect="native")
            on = asyncio.run(run_many(root, args.n, recorder))
            assert store.count_runs() == args.n
    print(f"\nRecording overhead: {args.n} agent runs each (3 model calls, 2 tool calls per run)\n")
    print(f"{'recording':<10} {'seconds':>8} {'runs/s':>8} {'ms/run':>8}")
    for label, seconds in (("off", off), ("on", on)):
        print(f"{label:<10} {seconds:>8.2f} {args.n / seconds:>8.0f} {1000 * seconds / args.n:>8.2f}")
    print(f"\noverhead ratio on/off: {on / off:.2f}  (+{1000 * (on - off) / args.n:.2f} ms per run)")


if __name__ == "__main__":
    main()
