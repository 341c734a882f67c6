"""Real-documents benchmark: hand-written questions over changelogs the model cannot have memorised.

The documents in benchmarks/real_docs/docs/ are release notes shipped inside Python package sdists
(see benchmarks/real_docs/NOTICE.md for each file's package, version and licence); most entries the
questions ask about were written in 2025, after the embedded model was trained. The questions
(benchmarks/real_docs/questions.json) cover header look-ups (which version, when), facts inside a
section, counting within a section, two-file chains and questions whose right answer is "not found".
Each question's "where" field names the lines its answer was checked against by hand.

Three configurations run side by side in one report:

- ``closed``: the model alone, no tools (shows the set is not memorised);
- ``baseline``: the agent as it was before section-aware results and the grounding check, i.e. the
  package source at commit 968d8f8 (exported with ``git archive`` and run in a child process);
- ``issue``: the agent with section-aware results and the grounding check (CLI defaults), i.e. the
  package source of this checkout's HEAD commit, exported the same way (so editing the working tree
  during a long run does not change what the remaining chunks run).

Every answered question is cached as one JSON file, so an interrupted run resumes where it
stopped. Model work runs in child processes of at most ``--chunk`` questions each, so that a lock
(``--lock-file``, taken with flock(1) around each chunk) can be shared with other users of the
embedded model between chunks.

    python benchmarks/real_docs.py --quick                     # 6 questions, all configs
    python benchmarks/real_docs.py --lock-file /tmp/model.lock # all questions
    python benchmarks/real_docs.py --report-only               # print what the cache holds
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "real_docs"
REPO = HERE.parent
BASELINE_COMMIT = "968d8f8"
CONFIGS = ("closed", "baseline", "issue")
QUICK_IDS = ("h01", "h08", "f05", "c01", "x01", "n01")
CLOSED_BOOK_PROMPT = "Answer the question briefly and precisely. If you do not know, say so."
NOT_FOUND = re.compile(
    r"\bnot (?:be )?(?:found|listed|mentioned|present|available|given|stated|specified|included|in the files)\b"
    r"|\bno (?:information|mention|record|entry|such|cve)\b|\bdoes not (?:mention|say|contain|list|specify|name)\b"
    r"|\bdo(?:es)? not know\b|\bunknown\b|\bcannot (?:find|determine)\b|\bcould not find\b|\bthere is no\b", re.I)


@dataclass(frozen=True)
class Question:
    id: str
    kind: str
    question: str
    expect: tuple[str, ...]
    reject: tuple[str, ...]
    where: str

    def key(self) -> str:
        return hashlib.sha256(self.question.encode()).hexdigest()[:12]


def load_questions() -> list[Question]:
    raw = json.loads((DATA / "questions.json").read_text())
    return [Question(q["id"], q["kind"], q["question"], tuple(q["expect"]), tuple(q.get("reject", ())), q["where"])
            for q in raw]


def _pattern(spec: str) -> re.Pattern[str]:
    """`v:1.2` a version or id token (not part of a longer one), `n:4` a standalone number, `nf:` a
    "not found" answer, anything else a case-insensitive regular expression."""
    kind, _, value = spec.partition(":")
    if kind in ("v", "n") and value:
        token = value if kind == "v" and "\\" in value else re.escape(value)
        return re.compile(rf"(?<![\w.]){token}(?!\w|\.\d)", re.I)
    if kind == "nf" and not value:
        return NOT_FOUND
    return re.compile(spec, re.I)


_ANY_VERSION = re.compile(r"(?<![\w.])v?(\d+(?:\.\d+)+)(?![\w]|\.\d)")


def is_correct(question: Question, answer: str) -> bool:
    """An expected pattern occurs and no rejected one does (a "both X and Y" answer is not right).
    Where the answer is a version, naming other versions besides (not from the question, nor from
    the answer's own line: "1.15 for Python >= 3.8") is a hedge, not an answer: "2.32.4, 2.32.3,
    2.32.2 and 2.31.0" is wrong."""
    if not any(_pattern(e).search(answer) for e in question.expect):
        return False
    if all(e.startswith("v:") and "." in e for e in question.expect):
        named = {m.group(1) for m in _ANY_VERSION.finditer(answer)}
        given = {m.group(1) for m in _ANY_VERSION.finditer(question.question + "\n" + _where_lines(question))}
        if len(named - given) > 1:
            return False
    return not any(_pattern(r).search(answer) for r in question.reject)


def _where_lines(question: Question) -> str:
    """The text of the document lines a question's `where` names (`path:31`, `path:13-16`, `path:54,56`)."""
    texts: list[str] = []
    for path, spec in re.findall(r"([\w./-]+\.\w+):([\d,-]+)", question.where):
        lines = _doc_lines(path)
        for part in filter(None, spec.split(",")):
            first, _, last = part.partition("-")
            texts += lines[int(first) - 1:int(last or first)]
    return "\n".join(texts)


@functools.cache
def _doc_lines(path: str) -> list[str]:
    return (DATA / "docs" / path).read_text(encoding="utf-8").splitlines()


# ---------------------------------------------------------------- worker (loads the model)

def _worker(config: str, ids: list[str], cache: Path, model_name: str, commit: str) -> None:
    """Answer `ids` with `config` and cache each answer; runs in a child process."""
    from tongyi_agent.agent.steps import ModelStep, NoteStep, ToolStep
    from tongyi_agent.config import load_settings, user_cache_dir

    questions = {q.id: q for q in load_questions()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "docs"
        shutil.copytree(DATA / "docs", root)  # the agent's run_python must not touch the shipped files
        settings = load_settings(root, model=model_name)
        if config == "closed":
            from tongyi_agent.llm.base import ChatMessage, ChatRequest
            from tongyi_agent.llm.registry import build_model

            model = build_model(settings.profile, settings.env, user_cache_dir())
        else:
            from tongyi_agent.agent.factory import build_agent

            agent = build_agent(settings)
        for qid in ids:
            q = questions[qid]
            started = time.monotonic()
            if config == "closed":
                messages = [ChatMessage("system", CLOSED_BOOK_PROMPT), ChatMessage("user", q.question)]
                response = asyncio.run(model.chat(messages, ChatRequest(max_tokens=256)))
                record = {"answer": response.content.strip(), "model_calls": 1, "tool_calls": [],
                          "tool_outputs": [], "grounded_in_loop": None, "stop_reason": "answer"}
            else:
                result = agent.run_sync(q.question)
                tools = [s for s in result.steps if isinstance(s, ToolStep)]
                record = {"answer": result.answer, "model_calls": result.model_calls,
                          "tool_calls": [{"name": s.call.name, "arguments": s.call.arguments} for s in tools],
                          "tool_outputs": [s.result.output for s in tools if not s.skipped],
                          "grounded_in_loop": getattr(result, "grounded", None), "stop_reason": result.stop_reason,
                          # What the model said and the loop told it, step by step, for reading failures.
                          "trace": [f"model: {s.parsed.answer if s.parsed.answer is not None else s.response.content}"
                                    if isinstance(s, ModelStep) else f"note: {s.text}"
                                    for s in result.steps if isinstance(s, ModelStep | NoteStep)]}
            record.update(id=qid, config=config, key=q.key(), commit=commit,
                          seconds=round(time.monotonic() - started, 2))
            _cache_file(cache, config, q).write_text(json.dumps(record, indent=1))
            print(f"[{config}] {qid} {record['seconds']:.0f}s: {record['answer'][:100]!r}", flush=True)


def _cache_file(cache: Path, config: str, question: Question) -> Path:
    folder = cache / config
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{question.id}-{question.key()}.json"


def _cached(cache: Path, config: str, question: Question) -> dict | None:
    path = _cache_file(cache, config, question)
    return json.loads(path.read_text()) if path.exists() else None


def _exported_src(cache: Path, commit: str) -> tuple[Path, str]:
    """The package source at `commit`, exported once into the cache, and the commit's short hash."""
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", commit], check=True,
                         capture_output=True, text=True).stdout.strip()
    target = cache / f"src-{sha}"
    if not (target / "src" / "tongyi_agent").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", sha, "src"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / "src", sha


def _run_chunks(config: str, todo: list[Question], args: argparse.Namespace) -> None:
    src, sha = _exported_src(args.cache, BASELINE_COMMIT if config == "baseline" else "HEAD")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))}
    for start in range(0, len(todo), args.chunk):
        ids = [q.id for q in todo[start:start + args.chunk]]
        command = [sys.executable, __file__, "--worker", config, "--ids", ",".join(ids),
                   "--cache", str(args.cache), "--model", args.model, "--commit", sha]
        if args.lock_file:
            command = ["flock", args.lock_file, *command]
        done = subprocess.run(command, env=env, cwd=REPO)
        if done.returncode:
            sys.exit(f"{config} chunk {ids} failed with exit code {done.returncode}; rerun to resume")


# ---------------------------------------------------------------- report

def _grounded(question: Question, record: dict, check_answer) -> bool:
    """The loop's own verdict where it made one, else the same check applied afterwards (closed book,
    and the baseline, which had no check)."""
    if record.get("grounded_in_loop") is not None:
        return record["grounded_in_loop"]
    return check_answer(record["answer"], record["tool_outputs"], question.question).grounded


def _marked(answer: str, grounded: bool) -> bool:
    """A wrong answer a reader can recognise: flagged as unverified, or saying it found nothing."""
    return not grounded or bool(NOT_FOUND.search(answer))


def report(questions: list[Question], cache: Path, configs: tuple[str, ...]) -> None:
    from tongyi_agent.agent.grounding import check_answer

    n = len(questions)
    print(f"\nReal-documents benchmark: {n} questions "
          f"({', '.join(f'{k} {sum(q.kind == k for q in questions)}' for k in _kinds(questions))})\n")
    print(f"{'config':<10} {'answered':>8} {'correct':>8} {'grounded':>9} {'wrong marked':>13} "
          f"{'calls/q':>8} {'s/q':>6}")
    per_kind: dict[str, dict[str, str]] = {}
    for config in configs:
        rows = [(q, _cached(cache, config, q)) for q in questions]
        rows = [(q, r) for q, r in rows if r is not None]
        if not rows:
            print(f"{config:<10} {'0':>8}   (nothing cached yet)")
            continue
        correct = [is_correct(q, r["answer"]) for q, r in rows]
        grounded = [_grounded(q, r, check_answer) for q, r in rows]
        wrong = [(r, g) for (q, r), c, g in zip(rows, correct, grounded, strict=True) if not c]
        marked = sum(_marked(r["answer"], g) for r, g in wrong)
        print(f"{config:<10} {len(rows):>8} {sum(correct) / len(rows):>8.0%} {sum(grounded) / len(rows):>9.0%} "
              f"{(f'{marked}/{len(wrong)}' if wrong else '-'):>13} "
              f"{statistics.mean(r['model_calls'] for _, r in rows):>8.2f} "
              f"{statistics.mean(r['seconds'] for _, r in rows):>6.1f}")
        for kind in _kinds(questions):
            picked = [c for (q, _), c in zip(rows, correct, strict=True) if q.kind == kind]
            per_kind.setdefault(kind, {})[config] = f"{sum(picked)}/{len(picked)}" if picked else "-"
    print("\ncorrect by kind: " + "; ".join(
        f"{kind} " + ", ".join(f"{c} {v}" for c, v in by.items()) for kind, by in per_kind.items()))
    print("grounded: the answer's key facts all occur in the run's tool results (agent/grounding.py; the "
          "loop's verdict for 'issue', the same check applied afterwards for the others); wrong marked: "
          "wrong answers flagged unverified or saying 'not found'.")


def _kinds(questions: list[Question]) -> list[str]:
    return list(dict.fromkeys(q.kind for q in questions))


def details(questions: list[Question], cache: Path, configs: tuple[str, ...]) -> None:
    for q in questions:
        print(f"\n{q.id} [{q.kind}] {q.question}  (expect {q.expect}; {q.where})")
        for config in configs:
            record = _cached(cache, config, q)
            if record:
                mark = "ok " if is_correct(q, record["answer"]) else "BAD"
                print(f"  {config:<9}{mark} {' '.join(record['answer'].split())[:160]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"only questions {', '.join(QUICK_IDS)}")
    parser.add_argument("--ids", default="", help="comma-separated question ids (default: all)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of " + ", ".join(CONFIGS))
    parser.add_argument("--model", default="local", help="embedded profile (default: local)")
    parser.add_argument("--chunk", type=int, default=10, help="questions per child process / lock hold (default 10)")
    parser.add_argument("--lock-file", default="", help="flock(1) this file around each chunk of model work")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "tongyi-real-docs-cache",
                        help="folder of cached answers (default: %(default)s)")
    parser.add_argument("--fresh", action="store_true", help="drop cached answers of the chosen configs first")
    parser.add_argument("--report-only", action="store_true", help="print the report from the cache, run nothing")
    parser.add_argument("--details", action="store_true", help="also print every answer, marked right or wrong")
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
    parser.add_argument("--commit", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        _worker(args.worker, args.ids.split(","), args.cache, args.model, args.commit)
        return
    questions = load_questions()
    wanted = set(QUICK_IDS if args.quick else filter(None, args.ids.split(",")))
    if wanted:
        unknown = wanted - {q.id for q in questions}
        if unknown:
            sys.exit(f"unknown question ids: {', '.join(sorted(unknown))}")
        questions = [q for q in questions if q.id in wanted]
    configs = tuple(c.strip() for c in args.configs.split(",") if c.strip())
    if not configs or set(configs) - set(CONFIGS):
        sys.exit(f"--configs takes a comma-separated subset of {', '.join(CONFIGS)}")
    if args.fresh:
        for config in configs:
            shutil.rmtree(args.cache / config, ignore_errors=True)
    if not args.report_only:
        for config in configs:
            todo = [q for q in questions if _cached(args.cache, config, q) is None]
            if todo:
                _run_chunks(config, todo, args)
    if args.details:
        details(questions, args.cache, configs)
    report(questions, args.cache, configs)


if __name__ == "__main__":
    main()
