"""`--training-stats` as rich tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

_PASS = {True: "[green]pass[/]", False: "[red]fail[/]", None: "[dim]no data[/]"}


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    return table


def print_stats(console: Console, stats: dict[str, Any], *, target: str) -> None:
    summary = _table("Training data", "metric", "value")
    rows = [
        ("total interactions", f"{stats['total_interactions']}"),
        ("success rate", f"{stats['success_rate']:.1%} ({stats['successful_interactions']} answered unforced)"),
        ("mean response time", f"{stats['average_response_time']:.2f} s"),
        ("p95 response time", f"{stats['p95_response_time']:.2f} s"),
        ("mean model calls / tool calls", f"{stats['average_model_calls']:.2f} / {stats['average_tool_calls']:.2f}"),
        ("tool usage efficiency", f"{stats['tool_usage_efficiency']:.1%}"),
        ("tokens in / out", f"{stats['total_input_tokens']} / {stats['total_output_tokens']}"),
        ("cost total / per run", f"${stats['total_cost']:.4f} / ${stats['cost_per_run']:.4f}"),
        ("cost per successful run", "—" if stats["cost_per_successful_run"] is None
         else f"${stats['cost_per_successful_run']:.4f}"),
    ]
    for row in rows:
        summary.add_row(*row)
    console.print(summary)

    rewards = _table(f"Mean reward (target: {target})", "reward", "mean")
    for name, value in stats["average_reward"].items():
        label = f"[bold]{name}[/]" if name == target else name
        rewards.add_row(label, "missing" if value is None else f"{value:.3f}")
    console.print(rewards)

    thresholds = _table("Performance thresholds (\\[performance_metrics])", "threshold", "limit", "value", "result")
    for name, item in stats["thresholds"].items():
        thresholds.add_row(name, f"{item['threshold']:g}", f"{item['value']:.3f}", _PASS[item["pass"]])
    console.print(thresholds)

    trend = _table(f"Daily trend (last 30 days of data, reward = {target})", "day", "runs", "mean reward", "mean s")
    for day in stats["reward_trend"]:
        reward = "—" if day["mean_reward"] is None else f"{day['mean_reward']:.3f}"
        trend.add_row(day["date"], str(day["count"]), reward, f"{day['mean_seconds']:.2f}")
    console.print(trend)

    usage = _table("In use", "prompt version / model", "runs")
    for name, count in {**stats["prompt_versions"], **stats["models"]}.items():
        usage.add_row(str(name), str(count))
    console.print(usage)


def print_learning(console: Console, stats: dict[str, Any]) -> None:
    """Prompt version in use, last optimization, A/B experiment and schedule."""
    console.print(f"Active prompt version: {stats.get('active_prompt_version') or 'packaged default'}")
    run = stats.get("prompt_optimization")
    if run:
        report = run.get("report") or {}
        line = f"Last prompt optimization {run['id']}: {run['status']}"
        if report:
            line += (f"; held-out test {report['seed_test']:.3f} -> {report['best_test']:.3f}; "
                     f"{'promoted' if report['promoted'] else 'not promoted'} ({report['decision']})")
        console.print(line)
    for key, label, size_key, unit in (("fine_tuning", "fine-tuning", "examples", "examples"),
                                       ("grpo", "GRPO run", "rows", "prompts")):
        if stats.get(key):
            console.print(_adapter_run_line(label, size_key, unit, stats[key]))
    experiment = stats.get("experiment") or {}
    current = experiment.get("current")
    if current:
        table = _table(f"A/B experiment {current['id']}: {current['treatment']} vs {current['control']} "
                       f"({current['duration']} runs)", "arm", "runs", "mean reward", "success", "mean s")
        for arm, row in experiment.get("arms", {}).items():
            reward = "—" if row["mean_reward"] is None else f"{row['mean_reward']:.3f}"
            table.add_row(arm, str(row["runs"]), reward, f"{row['success_rate']:.1%}", f"{row['mean_seconds']:.2f}")
        console.print(table)
    elif experiment.get("last_result"):
        console.print(f"Last A/B experiment: {experiment['last_result'].get('reason', experiment['last_result'])}")
    if stats.get("tool_policy"):
        table = _table("Tool policy (rl mode)", "arm", "pulls", "mean reward")
        for arm in stats["tool_policy"]:
            mean = "—" if arm["mean_reward"] is None else f"{arm['mean_reward']:.3f}"
            table.add_row(arm["arm"], str(arm["pulls"]), mean)
        console.print(table)
    memory = stats.get("memory") or {}
    if memory.get("exist"):
        console.print(f"Experience memory: {memory['exist']} experiences, {memory['active']} active, "
                      f"{memory['retired']} retired")
        for key, label in (("with", "with worked examples"), ("without", "without")):
            row = memory.get(key) or {}
            if row.get("runs"):
                reward = "—" if row["mean_reward"] is None else f"{row['mean_reward']:.3f}"
                console.print(f"  runs {label}: {row['runs']}, success rate {row['success_rate']:.1%}, "
                              f"mean reward {reward}")
    schedule = stats.get("schedule") or {}
    if schedule.get("last_started"):
        started = schedule["last_started"]
        console.print(f"Last scheduled optimization: {started.get('reason')} (pid {started.get('pid')})")


def _adapter_run_line(label: str, size_key: str, unit: str, run: dict[str, Any]) -> str:
    """One line for the last SFT or GRPO run: its size, held-out base -> adapter, and the promotion."""
    report = run.get("report") or {}
    line = f"Last {label} {run['id']} ({run.get('profile', '?')}): {run['status']}"
    if report:
        # None marks an errored run, left out of the gate and of these means.
        base = [s for s in report["base_scores"] if s is not None]
        tuned = [s for s in report["adapter_scores"] if s is not None]
        line += (f"; {report[size_key]} {unit}; held-out test "
                 f"{sum(base) / max(1, len(base)):.3f} -> {sum(tuned) / max(1, len(tuned)):.3f}; "
                 f"{'promoted as ' + str(report['promoted_profile']) if report['promoted'] else 'not promoted'}")
    return line
