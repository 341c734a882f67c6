"""`--training-stats --plot FILE.png`: reward and latency per day, with matplotlib (extra `plot`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class PlotUnavailableError(RuntimeError):
    pass


def plot_trend(stats: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotUnavailableError("--plot needs matplotlib: pip install 'tongyi-agent[plot]'") from exc
    trend = stats["reward_trend"]
    days = [d["date"] for d in trend]
    fig, reward_axis = plt.subplots(figsize=(8, 4))
    reward_axis.plot(days, [d["mean_reward"] for d in trend], marker="o", color="tab:blue")
    reward_axis.set_ylabel(f"mean reward ({stats.get('target') or 'all'})", color="tab:blue")
    reward_axis.set_ylim(0, 1)
    seconds_axis = reward_axis.twinx()
    seconds_axis.plot(days, [d["mean_seconds"] for d in trend], marker="s", color="tab:orange")
    seconds_axis.set_ylabel("mean response time (s)", color="tab:orange")
    reward_axis.set_title(f"Tongyi Agent: {stats['total_interactions']} recorded runs")
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
