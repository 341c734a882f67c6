"""Latency benchmark: what each speed-up buys, measured side by side in one run on the same questions.

Sections (all by default; `--sections` picks some):
- `startup`: seconds to run `tongyi-cli --help`, `--tools` and `--training-stats` (median of 5).
- `search`:  a generated tree of 20,000 files (about 50 MB): index build, incremental update after
  touching 10 files, query p50/p95 with the index vs a scan, each query in a new process; the top-20
  agreement of the two; and scan vs index on smaller trees (the scan threshold).
- `cache`:   one-shot questions on the demo folder, each in a new `tongyi-cli` process, prompt cache
  off vs on (embedded model).
- `grammar`: file-lookup questions and 8 research-world test questions (seed 13) with the GBNF
  grammar on every call vs on demand: accuracy, malformed replies, model calls, seconds (embedded model).
- `budget`:  the observation budget, old vs new defaults (hits per search, characters per line, the
  read_file window), on file-lookup questions, on 12 of the real-documents questions
  (benchmarks/real_docs) and on npm's own documentation (91 markdown files nobody here wrote, when
  installed), with questions whose answers were checked by hand.

Every measurement is stored in a results file as it is made and skipped when the file has it, so an
interrupted run resumes. `--max-runs N` stops after N new embedded-model runs (run it again to go
on): the embedded model must hold its lock for a few minutes at most.

    python benchmarks/latency.py --sections startup,search
    flock /tmp/tongyi-embedded.lock python benchmarks/latency.py --sections cache,grammar --max-runs 10
    python benchmarks/latency.py --report        # print what the results file holds
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "demo"
TREE_FILES = 20_000
TOUCHED = 10
QUERIES = 12
SMALL_TREES = (100, 400, 1600)
DEMO_QUESTIONS = [
    ("Which port does the billing service listen on?", "8443"),
    ("Who leads the discovery team that owns the search service?", "Wrona"),
    ("What was the invoice latency after caching the tax tables?", "180"),
    ("When does the new on-call rotation start?", "3 November"),
    ("At what time is the search index rebuilt?", "02:30"),
    ("Which database stores the invoices?", "PostgreSQL"),
]


# ---------------------------------------------------------------- results file (resumable)

class Results:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def put(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)

    def measure(self, key: str, run: Callable[[], Any]) -> Any:
        if key not in self.data:
            self.put(key, run())
        return self.data[key]


def conditions() -> dict[str, Any]:
    return {"load_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(), "at": time.strftime("%H:%M:%S")}


class Budget:
    """How many new embedded-model runs this invocation may still make."""

    def __init__(self, runs: int | None) -> None:
        self.left = runs

    def take(self) -> bool:
        if self.left is None:
            return True
        if self.left <= 0:
            return False
        self.left -= 1
        return True


# ---------------------------------------------------------------- startup

def cli_seconds(args: list[str], cwd: Path,
                env: dict[str, str] | None = None) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tongyi_agent", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=900)
    return time.perf_counter() - started, done


def children_cpu() -> float:
    """CPU seconds of finished child processes so far (user + system, all their threads)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def section_startup(results: Results) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for flag in ("--help", "--tools", "--training-stats"):
            def run(flag: str = flag) -> dict[str, Any]:
                times = []
                for _ in range(5):
                    seconds, done = cli_seconds([flag], Path(tmp))
                    if done.returncode not in (0, 2):
                        raise SystemExit(f"tongyi-cli {flag} failed: {done.stderr.strip()[-300:]}")
                    times.append(seconds)
                return {"median": statistics.median(times), "runs": times, **conditions()}
            results.measure(f"startup/{flag}", run)


# ---------------------------------------------------------------- search

def make_tree(root: Path, files: int, seed: int = 7) -> list[str]:
    """`files` markdown files of about 2.5 KB (20,000 of them are about 50 MB); returns the vocabulary."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(4, 10))) for _ in range(8000)]
    marker = root / ".complete"
    if marker.is_file() and marker.read_text() == str(files):
        return vocab
    for i in range(files):
        folder = root / f"area{i % 40:02d}" / f"topic{(i // 40) % 25:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        lines = [" ".join(rng.choice(vocab) for _ in range(rng.randint(6, 16))) for _ in range(rng.randint(18, 40))]
        (folder / f"note{i:05d}.md").write_text(f"# Note {i}\n\n" + "\n".join(lines) + "\n")
    marker.write_text(str(files))
    return vocab


PROBE = """
import json, sys, time
from pathlib import Path
started = time.perf_counter()
from tongyi_agent.tools.base import ToolContext
from tongyi_agent.tools.search_files import search_files
imported = time.perf_counter()
root, index_dir, query = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ToolContext(root=Path(root), index_dir=None if index_dir == "-" else Path(index_dir))
t = time.perf_counter()
result = search_files(ctx, query)
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "import": imported - started,
                  "hits": [[s.path, s.line] for s in result.sources]}))
"""


def probe(root: Path, index_dir: Path | None, query: str) -> dict[str, Any]:
    """One search in a new Python process: the search's own seconds, the import time and the process wall time."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE, str(root), str(index_dir or "-"), query],
                          capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"search probe failed: {done.stderr.strip()[-500:]}")
    data = json.loads(done.stdout)
    data["wall"] = wall
    return data


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def section_search(results: Results, work: Path) -> None:
    tree = work / "tree20k"
    vocab = make_tree(tree, TREE_FILES)
    rng = random.Random(11)
    queries = [" ".join(rng.sample(vocab, 2)) for _ in range(QUERIES)]
    index_dir = work / "search-index"

    def tree_bytes() -> int:
        return sum(p.stat().st_size for p in tree.rglob("*.md"))

    results.measure("search/tree", lambda: {"files": TREE_FILES, "bytes": tree_bytes()})
    for i, query in enumerate(queries):
        results.measure(f"search/scan/{i}", lambda query=query: {**probe(tree, None, query), **conditions()})

    def build() -> dict[str, Any]:
        for old in index_dir.glob("*"):
            old.unlink()
        return {**probe(tree, index_dir, queries[0]), **conditions()}
    results.measure("search/index-build", build)
    for i, query in enumerate(queries):
        results.measure(f"search/index/{i}", lambda query=query: {**probe(tree, index_dir, query), **conditions()})

    def touch_and_query() -> dict[str, Any]:
        for n in range(TOUCHED):
            file = tree / f"area{n % 40:02d}" / f"topic{(n // 40) % 25:02d}" / f"note{n:05d}.md"
            file.write_text(file.read_text() + f"touched line {n}\n")
        return {**probe(tree, index_dir, queries[1]), **conditions()}
    results.measure("search/index-after-touch", touch_and_query)

    for files in SMALL_TREES:
        def small(files: int = files) -> dict[str, Any]:
            small_root = work / f"tree{files}"
            small_vocab = make_tree(small_root, files, seed=files)
            small_queries = [" ".join(random.Random(files + k).sample(small_vocab, 2)) for k in range(5)]
            small_index = work / f"search-index-{files}"
            import tongyi_agent.tools.search_files as search_module
            from tongyi_agent.tools.base import ToolContext

            saved = search_module.SCAN_BELOW_BYTES
            search_module.SCAN_BELOW_BYTES = 0
            try:
                scan_ctx = ToolContext(root=small_root)
                index_ctx = ToolContext(root=small_root, index_dir=small_index)
                search_module.search_files(index_ctx, small_queries[0])  # build
                timing: dict[str, list[float]] = {"scan": [], "index": []}
                for query in small_queries:
                    for label, ctx in (("scan", scan_ctx), ("index", index_ctx)):
                        t = time.perf_counter()
                        search_module.search_files(ctx, query)
                        timing[label].append(time.perf_counter() - t)
            finally:
                search_module.SCAN_BELOW_BYTES = saved
            size = sum(p.stat().st_size for p in small_root.rglob("*.md"))
            return {"bytes": size, "scan": statistics.median(timing["scan"]),
                    "index": statistics.median(timing["index"]), **conditions()}
        results.measure(f"search/small/{files}", small)


# ---------------------------------------------------------------- cache (embedded, one process per question)

def section_cache(results: Results, work: Path, budget: Budget) -> None:
    cache_dir = work / "prompt-cache"
    for i, (question, expected) in enumerate(DEMO_QUESTIONS):
        for mode in ("off", "on"):
            key = f"cache/{mode}/{i}"
            if results.get(key) is not None:
                continue
            if mode == "on" and results.get("cache/cold") is None:
                if not budget.take():
                    return
                for old in cache_dir.glob("*"):
                    old.unlink()
                results.put("cache/cold", one_shot(question, expected, cache_dir, enabled=True))
            if not budget.take():
                return
            results.put(key, one_shot(question, expected, cache_dir, enabled=mode == "on"))


def one_shot(question: str, expected: str, cache_dir: Path, *, enabled: bool) -> dict[str, Any]:
    env = {**os.environ, "TONGYI_PROMPT_CACHE": "1" if enabled else "0", "TONGYI_PROMPT_CACHE_DIR": str(cache_dir)}
    with tempfile.TemporaryDirectory() as tmp:
        before = conditions()
        cpu = children_cpu()
        wall, done = cli_seconds(["--root", str(DEMO), "--json", "--verbose", question], Path(tmp), env)
        cpu = children_cpu() - cpu
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-300:], "wall": wall, **before}
    data = json.loads(done.stdout)
    return {"wall": wall, "cpu_seconds": cpu, "run_seconds": data["seconds"],
            "correct": expected.lower() in data["answer"].lower(),
            "model_calls": data["usage"]["model_calls"], "input_tokens": data["usage"]["input_tokens"],
            "cache_loaded": "prompt cache: loaded" in done.stderr, **before}


# ---------------------------------------------------------------- grammar (embedded, in-process)

GRAMMAR_WORLD_SEED = 13  # not a seed any test, prompt or other benchmark was tuned on
GRAMMAR_WORLD_QUESTIONS = 8


def _grammar_sets(tmp: Path) -> dict[str, list[tuple[str, Path, Callable[[Any], bool], str]]]:
    """name -> [(question, root, is the run right, the file that holds the answer)]: the file-lookup
    questions, and the first test questions of a research world."""
    sys.path.insert(0, str(Path(__file__).parent))
    from file_lookup import make_corpus  # type: ignore[import-not-found]
    from research_world import generate_world  # type: ignore[import-not-found]
    from tongyi_agent.learn.evaluation.rewards import task_reward

    lookup_root, world_root = tmp / "lookup", tmp / "world"
    lookup_root.mkdir()
    lookup = [(q.text, lookup_root, lambda r, q=q: q.expected.lower() in r.answer.lower(), q.file)
              for q in make_corpus(lookup_root)]
    tasks = [t for t in generate_world(GRAMMAR_WORLD_SEED, world_root) if t.split == "test"]
    world = [(t.question, Path(t.root), lambda r, t=t: (task_reward(r, t.answer, t.answer_regex) or 0.0) >= 1.0,
              t.sources[0].rsplit(":", 1)[0] if t.sources else "") for t in tasks[:GRAMMAR_WORLD_QUESTIONS]]
    return {"lookup": lookup, "world": world}


def section_grammar(results: Results, budget: Budget) -> None:
    from tongyi_agent.agent.dialects import get_dialect
    from tongyi_agent.agent.loop import Agent, AgentSpec
    from tongyi_agent.agent.steps import ModelStep
    from tongyi_agent.config import load_settings, user_cache_dir
    from tongyi_agent.llm.registry import build_model
    from tongyi_agent.tools import default_registry

    with tempfile.TemporaryDirectory() as tmp:
        sets = _grammar_sets(Path(tmp))
        # File-lookup results keep their old keys (grammar/MODE/i), so earlier runs still count.
        key = {"lookup": "grammar/{mode}/{i}", "world": "grammar-world/{mode}/{i}"}
        pending = [(name, i, mode) for name, qs in sets.items() for i in range(len(qs))
                   for mode in ("always", "on_demand") if results.get(key[name].format(mode=mode, i=i)) is None]
        if not pending:
            return
        settings = load_settings(Path(tmp), model="local")
        profile = settings.profile
        model = build_model(profile, settings.env, user_cache_dir())
        tools = default_registry(profile.tool_names())
        for name, i, mode in pending:
            if not budget.take():
                return
            text, root, is_right, file = sets[name][i]
            spec = AgentSpec(max_steps=settings.max_steps, context_tokens=profile.context_length,
                             max_output_tokens=min(profile.max_output_tokens, profile.context_length // 4),
                             grammar=mode)
            agent = Agent(model, tools, get_dialect("react"), root, spec)
            before = conditions()
            started, cpu = time.perf_counter(), time.process_time()
            result = agent.run_sync(text)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            names = set(tools.names())
            malformed = sum(1 for s in result.steps
                            if isinstance(s, ModelStep) and not s.forced and s.parsed.answer is None
                            and (s.parsed.error or not s.parsed.tool_calls
                                 or any(c.name not in names for c in s.parsed.tool_calls)))
            results.put(key[name].format(mode=mode, i=i), {
                "correct": is_right(result), "seconds": seconds, "cpu_seconds": cpu,
                "model_calls": result.model_calls, "malformed": malformed,
                "output_tokens": result.usage.output_tokens, "input_tokens": result.usage.input_tokens,
                "cited": bool(file) and any(file.endswith(s.path) or s.path.endswith(file) for s in result.sources),
                **before})


# ---------------------------------------------------------------- observation budget (embedded, in-process)

NPM_DOCS = Path("/usr/lib/node_modules/npm/docs/content")
# Answers checked by hand in npm's docs (using-npm/config.md, using-npm/scripts.md).
NPM_QUESTIONS = [
    ("What is the default value of npm's fetch-timeout setting?", "300000", "using-npm/config.md"),
    ("What is the default value of the maxsockets config in npm?", "15", "using-npm/config.md"),
    ("Which license does npm init use by default?", "ISC", "using-npm/config.md"),
    ("What is npm's default loglevel?", "notice", "using-npm/config.md"),
    ("Which environment variable is set to the lifecycle stage being executed in npm scripts?",
     "npm_lifecycle_event", "using-npm/scripts.md"),
    ("What is the default cache folder of npm on Posix systems?", "~/.npm", "using-npm/config.md"),
    ("What version does npm init give a new package by default?", "1.0.0", "using-npm/config.md"),
    ("What is the default value of fetch-retry-mintimeout in npm?", "10000", "using-npm/config.md"),
    ("What is the default npm registry URL?", "registry.npmjs.org", "using-npm/config.md"),
]
# name -> (search_files.MAX_HITS, search_files.MAX_SHOWN_CHARS, read_file.MAX_LINES, read_file.MAX_CHARS);
# "new" is this checkout's defaults. "old" is the defaults before issue 14 (20 hits per search).
BUDGETS: dict[str, tuple[int, int, int, int] | None] = {"old": (20, 300, 400, 16_000), "new": None}
BUDGET_LOOKUP_QUESTIONS = 6
# Real changelogs (benchmarks/real_docs): one question of each kind per package where there is one.
BUDGET_REAL_DOCS = ("h01", "h03", "h07", "h09", "h10", "h12", "f01", "f05", "f11", "c01", "x02", "n02")


def _budget_sets(lookup_root: Path) -> dict[str, tuple[Path, list[tuple[str, Callable[[str], bool], str]]]]:
    """name -> (root, [(question, is the answer right, the file that holds it)])."""
    sys.path.insert(0, str(Path(__file__).parent))
    import real_docs  # type: ignore[import-not-found]
    from file_lookup import make_corpus  # type: ignore[import-not-found]

    def contains(expected: str) -> Callable[[str], bool]:
        return lambda answer: expected.lower() in answer.lower()

    # The file-lookup files are a few lines each: their observations are small under either budget,
    # so six of them check that nothing breaks; the documentation questions are where it matters.
    lookup = [(q.text, contains(q.expected), q.file) for q in make_corpus(lookup_root)][:BUDGET_LOOKUP_QUESTIONS]
    sets: dict[str, tuple[Path, list[tuple[str, Callable[[str], bool], str]]]] = {}
    if NPM_DOCS.is_dir():
        sets["npm"] = (NPM_DOCS, [(text, contains(expected), file) for text, expected, file in NPM_QUESTIONS])
    by_id = {q.id: q for q in real_docs.load_questions()}
    chosen = [by_id[i] for i in BUDGET_REAL_DOCS]
    sets["real_docs"] = (real_docs.DATA / "docs", [
        (q.question, lambda answer, q=q: real_docs.is_correct(q, answer), q.where.split(":")[0]) for q in chosen])
    sets["lookup"] = (lookup_root, lookup)
    return sets


def section_budget(results: Results, budget: Budget) -> None:
    from tongyi_agent.agent.dialects import get_dialect
    from tongyi_agent.agent.loop import Agent, AgentSpec
    from tongyi_agent.config import load_settings, user_cache_dir
    from tongyi_agent.llm.registry import build_model
    from tongyi_agent.tools import default_registry
    from tongyi_agent.tools import read_file as read_module
    from tongyi_agent.tools import search_files as search_module

    current = (search_module.MAX_HITS, search_module.MAX_SHOWN_CHARS, read_module.MAX_LINES, read_module.MAX_CHARS)
    with tempfile.TemporaryDirectory() as tmp:
        lookup_root = Path(tmp)
        sets = _budget_sets(lookup_root)
        pending = [(name, i, arm) for name, (_, qs) in sets.items() for i in range(len(qs)) for arm in BUDGETS
                   if results.get(f"budget/{arm}/{name}/{i}") is None]
        if not pending:
            return
        settings = load_settings(lookup_root, model="local")
        profile = settings.profile
        model = build_model(profile, settings.env, user_cache_dir())
        tools = default_registry(profile.tool_names())
        spec = AgentSpec(max_steps=settings.max_steps, context_tokens=profile.context_length,
                         max_output_tokens=min(profile.max_output_tokens, profile.context_length // 4))
        try:
            for name, i, arm in pending:
                if not budget.take():
                    return
                hits, chars, lines, window = BUDGETS[arm] or current
                search_module.MAX_HITS, search_module.MAX_SHOWN_CHARS = hits, chars
                read_module.MAX_LINES, read_module.MAX_CHARS = lines, window
                root, questions = sets[name]
                text, is_right, file = questions[i]
                agent = Agent(model, tools, get_dialect("react"), root, spec)
                before = conditions()
                started, cpu = time.perf_counter(), time.process_time()
                result = agent.run_sync(text)
                results.put(f"budget/{arm}/{name}/{i}", {
                    "correct": is_right(result.answer), "seconds": time.perf_counter() - started,
                    "cpu_seconds": time.process_time() - cpu, "budget": [hits, chars, lines, window],
                    "model_calls": result.model_calls, "input_tokens": result.usage.input_tokens,
                    "output_tokens": result.usage.output_tokens,
                    "cited": any(s.path == file for s in result.sources), **before})
        finally:
            search_module.MAX_HITS, search_module.MAX_SHOWN_CHARS = current[:2]
            read_module.MAX_LINES, read_module.MAX_CHARS = current[2:]


# ---------------------------------------------------------------- report

def report(results: Results) -> None:
    d = results.data
    print("\nLatency benchmark (2 cores shared with other work: seconds are inflated, ratios are side by side)\n")
    loads = [v["load_1min"] for v in d.values() if isinstance(v, dict) and "load_1min" in v]
    if loads:
        print(f"load average (1 min) during measurements: median {statistics.median(loads):.1f}, "
              f"max {max(loads):.1f} on {os.cpu_count()} CPUs\n")
    if any(k.startswith("startup/") for k in d):
        print("start-up (median of 5, seconds)")
        for flag in ("--help", "--tools", "--training-stats"):
            if f"startup/{flag}" in d:
                print(f"  tongyi-cli {flag:<17} {d[f'startup/{flag}']['median']:.2f}")
        print()
    scan = [d[k] for k in sorted(d) if k.startswith("search/scan/")]
    index = [d[k] for k in sorted(d) if k.startswith("search/index/")]
    if scan and index and "search/index-build" in d:
        tree = d["search/tree"]
        print(f"search, {tree['files']:,} files, {tree['bytes'] / 1e6:.1f} MB, each query in a new process")
        build = d["search/index-build"]
        print(f"  index build (first query)     {build['seconds']:.2f} s")
        if "search/index-after-touch" in d:
            print(f"  after touching {TOUCHED} files       {d['search/index-after-touch']['seconds']:.2f} s")
        s_times = [r["seconds"] for r in scan]
        i_times = [r["seconds"] for r in index]
        print(f"  query p50 / p95, scan         {percentile(s_times, .5):.3f} / {percentile(s_times, .95):.3f} s")
        print(f"  query p50 / p95, index        {percentile(i_times, .5):.3f} / {percentile(i_times, .95):.3f} s")
        imports = percentile([r["import"] for r in index], .5)
        print(f"  process wall p50, scan/index  {percentile([r['wall'] for r in scan], .5):.2f} / "
              f"{percentile([r['wall'] for r in index], .5):.2f} s (imports {imports:.2f} s)")
        print(f"  ratio scan/index (p50)        {percentile(s_times, .5) / percentile(i_times, .5):.1f}x")
        overlap = [len({tuple(h) for h in a["hits"]} & {tuple(h) for h in b["hits"]}) / max(1, len(a["hits"]))
                   for a, b in zip(scan, index, strict=False)]
        print(f"  top-20 hits shared with scan  {statistics.mean(overlap):.0%} (mean over {len(overlap)} queries)")
        for files in SMALL_TREES:
            if f"search/small/{files}" in d:
                r = d[f"search/small/{files}"]
                print(f"  {files:>5} files {r['bytes'] / 1e6:5.2f} MB: scan {r['scan']:.3f} s, "
                      f"index {r['index']:.3f} s")
        print()
    cold = d.get("cache/cold")
    pairs = [(d.get(f"cache/off/{i}"), d.get(f"cache/on/{i}")) for i in range(len(DEMO_QUESTIONS))]
    pairs = [(a, b) for a, b in pairs if a and b and "error" not in a and "error" not in b]
    if pairs:
        print(f"one-shot questions on examples/demo, new process each, n={len(pairs)} per arm")
        for label, idx in (("off", 0), ("on", 1)):
            rows = [p[idx] for p in pairs]
            print(f"  cache {label:<3} wall median {statistics.median(r['wall'] for r in rows):5.1f} s, "
                  f"run median {statistics.median(r['run_seconds'] for r in rows):5.1f} s, "
                  f"correct {sum(r['correct'] for r in rows)}/{len(rows)}, "
                  f"loaded from cache {sum(r['cache_loaded'] for r in rows)}/{len(rows)}")
        off = statistics.median(p[0]["wall"] for p in pairs)
        on = statistics.median(p[1]["wall"] for p in pairs)
        print(f"  ratio on/off (wall median)    {on / off:.2f} ({(1 - on / off):.0%} less time)")
        off_cpu = statistics.median(p[0]["cpu_seconds"] for p in pairs)
        on_cpu = statistics.median(p[1]["cpu_seconds"] for p in pairs)
        print(f"  CPU seconds median off / on   {off_cpu:.1f} / {on_cpu:.1f}, ratio {on_cpu / off_cpu:.2f} "
              "(CPU time moves less with the load of other processes than wall time)")
        if cold and "wall" in cold:
            print(f"  first run that fills the cache {cold['wall']:.1f} s wall")
        print()
    for prefix, title in (("grammar", "file_lookup"), ("grammar-world", f"research world (seed {GRAMMAR_WORLD_SEED})")):
        by_mode = {mode: {k.rsplit("/", 1)[1]: d[k] for k in d if k.startswith(f"{prefix}/{mode}/")}
                   for mode in ("always", "on_demand")}
        both = sorted(set(by_mode["always"]) & set(by_mode["on_demand"]), key=int)
        n = len(both)
        if not n:
            continue
        rows = {mode: [by_mode[mode][i] for i in both] for mode in by_mode}
        print(f"{title}, grammar always vs on demand, n={n} questions each")
        for mode, label in (("always", "always"), ("on_demand", "on demand")):
            r = rows[mode]
            print(f"  {label:<10} accuracy {sum(x['correct'] for x in r) / n:4.0%}  "
                  f"cited {sum(x['cited'] for x in r) / n:4.0%}  malformed {sum(x['malformed'] for x in r):2d}  "
                  f"calls/q {statistics.mean(x['model_calls'] for x in r):.2f}  "
                  f"s/q {statistics.mean(x['seconds'] for x in r):5.1f}")
        a = statistics.mean(x["seconds"] for x in rows["always"])
        b = statistics.mean(x["seconds"] for x in rows["on_demand"])
        print(f"  ratio on-demand/always (s/q)  {b / a:.2f}")
        timed = [i for i in range(n) if "cpu_seconds" in rows["always"][i] and "cpu_seconds" in rows["on_demand"][i]]
        if timed:
            a_cpu = statistics.mean(rows["always"][i]["cpu_seconds"] for i in timed)
            b_cpu = statistics.mean(rows["on_demand"][i]["cpu_seconds"] for i in timed)
            a_out = statistics.mean(rows["always"][i]["output_tokens"] for i in timed)
            b_out = statistics.mean(rows["on_demand"][i]["output_tokens"] for i in timed)
            print(f"  CPU s/q always / on demand    {a_cpu:.1f} / {b_cpu:.1f}, ratio {b_cpu / a_cpu:.2f} "
                  f"(n={len(timed)}); output tokens/q {a_out:.0f} / {b_out:.0f}")
        print()
    for name in ("npm", "real_docs", "lookup"):
        arms = {arm: {k: d[k] for k in d if k.startswith(f"budget/{arm}/{name}/")} for arm in BUDGETS}
        both = sorted({k.rsplit("/", 1)[1] for k in arms["old"]} & {k.rsplit("/", 1)[1] for k in arms["new"]}, key=int)
        n = len(both)
        if not n:
            continue
        shown = {arm: tuple(rows[f"budget/{arm}/{name}/{both[0]}"].get("budget", ())) for arm, rows in arms.items()}
        print(f"observation budget on {name} questions, n={n} each (hits per search, chars per line, read_file "
              f"lines and chars: old {shown['old']}, new {shown['new']})")
        for arm, rows_by_key in arms.items():
            r = [rows_by_key[f"budget/{arm}/{name}/{i}"] for i in both]
            print(f"  {arm:<8} accuracy {sum(x['correct'] for x in r)}/{n}  cited {sum(x['cited'] for x in r)}/{n}  "
                  f"input tokens/q {statistics.mean(x['input_tokens'] for x in r):6.0f}  "
                  f"s/q {statistics.mean(x['seconds'] for x in r):5.1f} "
                  f"(median {statistics.median(x['seconds'] for x in r):4.1f})  "
                  f"CPU s/q {statistics.mean(x['cpu_seconds'] for x in r):5.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default="startup,search,cache,grammar,budget")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "tongyi-latency-bench",
                        help="results file, generated trees and caches (kept for resuming)")
    parser.add_argument("--max-runs", type=int, default=None, help="new embedded-model runs in this invocation")
    parser.add_argument("--report", action="store_true", help="only print the results so far")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results = Results(args.work / "results.json")
    budget = Budget(args.max_runs)
    if not args.report:
        sections = set(args.sections.split(","))
        if "startup" in sections:
            section_startup(results)
        if "search" in sections:
            section_search(results, args.work)
        if "cache" in sections:
            section_cache(results, args.work, budget)
        if "grammar" in sections:
            section_grammar(results, budget)
        if "budget" in sections:
            section_budget(results, budget)
        if budget.left == 0:
            print("stopped after --max-runs new embedded runs; run the same command again to go on", file=sys.stderr)
    report(results)


if __name__ == "__main__":
    main()
