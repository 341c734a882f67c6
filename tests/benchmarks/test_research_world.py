"""The synthetic research-world generator: deterministic, exact sources, unambiguous answers, sound splits."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import statistics
import sys
from pathlib import Path
from types import ModuleType

import pytest

MODULE_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "research_world.py"
SEEDS = (1, 2, 3, 4, 5)
# Word that every statement of a project attribute contains (the generator's filler avoids them all).
ATTRIBUTE_KEYWORDS = {"lead": "lead", "budget": "budget", "start": "start", "status": "status",
                      "review": "review", "supplier": "supplier"}


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("research_world", MODULE_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolves string annotations through sys.modules, so register before executing.
    sys.modules["research_world"] = module
    spec.loader.exec_module(module)
    return module


rw = _load()


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Path, list]]:
    out = {}
    for seed in SEEDS:
        root = tmp_path_factory.mktemp(f"world{seed}")
        out[seed] = (root, rw.generate_world(seed, root))
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _line(root: Path, source: str) -> str:
    path, number = source.rsplit(":", 1)
    lines = (root / path).read_text(encoding="utf-8").splitlines()
    assert 1 <= int(number) <= len(lines), source
    return lines[int(number) - 1]


def _fields(task) -> tuple:
    return (task.id, task.question, task.answer, task.answer_regex, task.kind, task.sources, task.split)


def test_same_seed_gives_identical_world_and_tasks(tmp_path: Path) -> None:
    first = rw.generate_world(7, tmp_path / "a")
    second = rw.generate_world(7, tmp_path / "b")
    other = rw.generate_world(8, tmp_path / "c")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert [_fields(t) for t in first] == [_fields(t) for t in second]
    assert _files(tmp_path / "a") != _files(tmp_path / "c")
    assert {t.question for t in first} != {t.question for t in other}


def test_task_count_and_kinds(worlds: dict) -> None:
    for _root, tasks in worlds.values():
        assert 40 <= len(tasks) <= 60
        assert {t.kind for t in tasks} == set(rw.KINDS)
        assert len({t.id for t in tasks}) == len(tasks)


def test_splits_disjoint_stable_and_large_enough(worlds: dict, tmp_path: Path) -> None:
    for seed, (_root, tasks) in worlds.items():
        by_split = {s: {t.id for t in tasks if t.split == s} for s in rw.SPLITS}
        assert set().union(*by_split.values()) == {t.id for t in tasks}, "every task has a known split"
        assert sum(len(ids) for ids in by_split.values()) == len(tasks), "no task in two splits"
        for split, ids in by_split.items():
            assert len(ids) >= 10, (seed, split)
            assert {t.kind for t in tasks if t.split == split} == set(rw.KINDS), (seed, split)
        assert len(by_split["train"]) >= len(by_split["validation"])
    again = rw.generate_world(1, tmp_path / "again")
    assert {t.id: t.split for t in again} == {t.id: t.split for t in worlds[1][1]}


def test_every_source_line_exists_and_supports_the_answer(worlds: dict) -> None:
    for root, tasks in worlds.values():
        for task in tasks:
            assert task.sources, task.id
            lines = [_line(root, s) for s in task.sources]
            assert all(line.strip() for line in lines), task.id
            if task.kind in ("lookup", "multi_hop"):
                assert task.answer in lines[-1], (task.id, lines[-1])
            elif task.kind == "which_file":
                assert (root / task.answer).is_file(), task.id
                assert task.sources[-1].rsplit(":", 1)[0] == task.answer, task.id


def test_multi_hop_chains_through_the_named_person(worlds: dict) -> None:
    for root, tasks in worlds.values():
        for task in (t for t in tasks if t.kind == "multi_hop"):
            paths = [s.rsplit(":", 1)[0] for s in task.sources]
            assert len(set(paths)) == len(paths) >= 2, task.id
            project_line, directory_row = _line(root, task.sources[0]), _line(root, task.sources[1])
            person = directory_row.split("|")[1].strip()
            assert person in project_line, (task.id, person, project_line)
            if len(task.sources) == 3:
                organisation = directory_row.split("|")[3].strip()
                assert (root / paths[2]).read_text().startswith(f"# {organisation}\n"), task.id


def _recompute(root: Path, task) -> str:
    _prefix, _kind, slug, op, metric = task.id.split("/")
    with (root / "data" / f"{slug}_measurements.csv").open(newline="") as handle:
        values = [float(row["value"]) for row in csv.DictReader(handle) if row["metric"] == metric]
    assert values, task.id
    if op == "sum":
        return str(int(sum(values)))
    if op == "mean":
        return f"{statistics.fmean(values):.1f}"
    if op == "max":
        return f"{max(values):.1f}" if metric != "samples" else str(int(max(values)))
    assert op == "count_alert", task.id
    match = re.search(r"^LATENCY_ALERT_MS = ([\d.]+)$", (root / "src" / "analysis.py").read_text(), re.MULTILINE)
    assert match is not None
    return str(sum(v > float(match.group(1)) for v in values))


def test_aggregation_answers_recomputed_from_csv(worlds: dict) -> None:
    ops = set()
    for root, tasks in worlds.values():
        for task in (t for t in tasks if t.kind == "aggregation"):
            assert _recompute(root, task) == task.answer, task.id
            ops.add(task.id.split("/")[3])
            if task.id.split("/")[3] == "count_alert":
                assert _line(root, task.sources[0]).startswith("LATENCY_ALERT_MS = "), task.id
    assert ops == set(rw.AGG_OPS)


def test_project_facts_are_stated_once_outside_archive(worlds: dict) -> None:
    """Any non-archive line that states a project attribute agrees with the answer; archive values differ."""
    for root, tasks in worlds.values():
        texts = {path: data.decode() for path, data in _files(root).items() if not path.startswith("archive/")}
        for task in (t for t in tasks if t.kind == "lookup" and t.id.split("/")[3] in ATTRIBUTE_KEYWORDS):
            slug, attribute = task.id.split("/")[2:4]
            codename, keyword = slug.capitalize(), ATTRIBUTE_KEYWORDS[attribute]
            stating = [line for path, text in texts.items() for line in text.splitlines()
                       if keyword in line.lower()
                       and (path == f"projects/{slug}.md" or re.search(rf"\b{codename}\b", line))]
            assert stating, task.id
            assert all(task.answer in line for line in stating), (task.id, stating)
        archive = (root / "archive" / "project-register-2023.md").read_text()
        superseded = re.findall(r"^- (\w+) (\w+) \(2023, superseded\): (.+)$", archive, re.MULTILINE)
        assert superseded
        for codename, attribute, old in superseded:
            current = texts[f"projects/{codename.lower()}.md"]
            assert attribute in current.lower() and old not in current, (codename, attribute, old)


def test_people_and_orgs_are_distinct_but_confusable(worlds: dict) -> None:
    for root, _tasks in worlds.values():
        rows = [line.split("|")[1:5] for line in (root / "people" / "directory.md").read_text().splitlines()[4:]]
        names = [row[0].strip() for row in rows]
        orgs = sorted({p.read_text().splitlines()[0][2:] for p in (root / "orgs").glob("*.md")})
        for group in (names, orgs):
            assert len(set(group)) == len(group)
            assert not [(a, b) for a in group for b in group if a != b and a in b], "a name inside another"
        surnames = [n.split(" ", 1)[1] for n in names]
        assert any(surnames.count(s) == 2 for s in surnames), "near-duplicate people are present"
        assert any(o.endswith(" Foundation") for o in orgs), "near-duplicate organisation is present"


def test_answer_regex_accepts_answer_and_rejects_superseded(worlds: dict) -> None:
    for root, tasks in worlds.values():
        archive = (root / "archive" / "project-register-2023.md").read_text()
        for task in tasks:
            if task.answer_regex is None:
                continue
            assert re.search(task.answer_regex, task.answer, re.IGNORECASE), task.id
            assert re.search(task.answer_regex, f"The answer is {task.answer}.", re.IGNORECASE), task.id
            if task.id.endswith("/budget") and task.kind == "lookup":
                old = re.search(rf"^- {task.id.split('/')[2].capitalize()} budget .*: (.+)$", archive, re.MULTILINE)
                assert old is not None and not re.search(task.answer_regex, old.group(1)), task.id
    budget = rw._budget_regex(1_240_000)
    assert all(re.search(budget, s) for s in ("EUR 1,240,000", "€1.24 million", "1240000 euros"))
    assert not re.search(budget, "EUR 11,240,000")
    assert re.search(rw._path_regex("projects/heron.md"), "It is /tmp/w/projects/heron.md.")
    assert not re.search(rw._path_regex("projects/heron.md"), "archive/projects/heron.md.bak")


def test_files_are_small(worlds: dict) -> None:
    for root, _tasks in worlds.values():
        sizes = {path: len(data) for path, data in _files(root).items()}
        assert len(sizes) >= 15
        assert max(sizes.values()) < 3 * 1024, max(sizes.items(), key=lambda kv: kv[1])


def test_jsonl_round_trip(worlds: dict, tmp_path: Path) -> None:
    root, tasks = worlds[1]
    path = tmp_path / "tasks.jsonl"
    rw.write_tasks(tasks, path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == len(tasks)
    for row, task in zip(rows, tasks, strict=True):
        assert {"question", "answer", "root", "sources", "id", "kind", "split"} <= row.keys()
        assert ("answer_regex" in row) == (task.answer_regex is not None)
        assert Path(row["root"]).is_absolute() and Path(row["root"]) == root.resolve()
    assert [(*_fields(t), t.root) for t in rw.read_tasks(path)] == [(*_fields(t), t.root) for t in tasks]


def test_cli_writes_tasks_beside_the_world(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert rw.main(["--seed", "1", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    tasks = rw.read_tasks(tmp_path / "tasks.jsonl")
    assert not list((tmp_path / "world").rglob("tasks.jsonl")), "answers must not be readable by the agent"
    assert re.search(rf"^total\s+(\d+)\s+(\d+)\s+(\d+)\s+{len(tasks)}$", printed, re.MULTILINE)
    with pytest.raises(FileExistsError):
        rw.main(["--seed", "1", "--out", str(tmp_path)])
    assert rw.main(["--seed", "1", "--out", str(tmp_path), "--force"]) == 0


def test_task_file_loads_with_the_optimizers_reader(worlds: dict, tmp_path: Path) -> None:
    from tongyi_agent.learn.evaluation.tasks import load_tasks

    root, tasks = worlds[2]
    path = tmp_path / "tasks.jsonl"
    rw.write_tasks(tasks, path)
    loaded = load_tasks(path, default_root=tmp_path)
    assert [(t.id, t.question, t.answer, t.answer_regex, list(t.sources), t.split, t.kind, t.root) for t in loaded] \
        == [(t.id, t.question, t.answer, t.answer_regex, t.sources, t.split, t.kind, root.resolve()) for t in tasks]
