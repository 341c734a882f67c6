"""The learning-curve benchmark's machinery over a fake OpenAI-compatible server: train runs through the
product's recorded path, snapshots per N, the four conditions, the answer cache (resume, never the same
prompt twice), --max-answers chunks and the report. The real run on the embedded model is the benchmark."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.fakes.openai_server import FakeOpenAIServer
from tests.trusting import trust

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("learning_curve_benchmark", BENCHMARKS / "learning_curve.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["learning_curve_benchmark"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


lc = _load()


def _reply(request: dict[str, Any]) -> dict[str, Any]:
    """Searches the question's capitalised words once, then answers with the first hit's text."""
    messages = request["messages"]
    if messages[-1]["role"] == "tool":
        hit = re.search(r"^\S+:\d+: (.*)$", messages[-1]["content"], re.M)
        return {"content": hit.group(1) if hit else "not found"}
    words = re.findall(r"\b[A-Z][a-z]+\b", messages[-1]["content"])[1:] or ["project"]
    return {"tool_calls": [{"name": "search_files", "arguments": {"query": " ".join(words)}}]}


def _options(cache: Path, **changes: Any) -> Any:
    options, _ = lc.parse(["--quick", "--cache", str(cache), "--model", "fake"])
    for key, value in changes.items():
        setattr(options, key, value)
    return options


def _setup(cache: Path, server: FakeOpenAIServer) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "models.ini").write_text(
        f"[fake]\nprovider = openai\nbase_url = {server.base_url}\nmodel_id = fake-model\nmax_retries = 0\n"
        "dialect = native\n")
    trust(cache)  # its models.ini points at the fake server: an endpoint only a trusted folder may set
    server.add(*[_reply] * 400)


def test_quick_run_records_evaluates_caches_and_resumes(tmp_path: Path, openai_server: FakeOpenAIServer) -> None:
    cache = tmp_path / "cache"
    _setup(cache, openai_server)
    first = lc.run(_options(cache, max_answers=5))
    assert first["stopped"] and first["new"] == 5

    done = lc.run(_options(cache))
    assert not done["stopped"]
    seed = done["seeds"][11]
    assert (cache / "seed11" / "store-0.sqlite").is_file() and (cache / "seed11" / "store-4.sqlite").is_file()
    assert set(done["cells"]) == {(11, n, c) for n in (0, 4) for c in lc.CONDITIONS}
    assert all(len(answers) == 6 for answers in done["cells"].values())
    test_ids = {t["id"] for t in seed.test}
    train_ids = {t["id"] for t in seed.train}
    assert not test_ids & train_ids and len(seed.validation) == 3
    # At N = 0 memory and demos change nothing: the same prompts, answered once.
    none0 = [a.fingerprint for a in done["cells"][(11, 0, "none")]]
    assert [a.fingerprint for a in done["cells"][(11, 0, "memory")]] == none0
    assert [a.fingerprint for a in done["cells"][(11, 0, "both")]] == none0
    lines = [json.loads(line) for line in (cache / "answers.jsonl").read_text().splitlines()]
    assert len({line["fingerprint"] for line in lines}) == len(lines)  # never the same question and prompt twice

    again = lc.run(_options(cache))
    assert again["new"] == 0 and again["reused"] > 0
    text = "\n".join(lc.report(again, _options(cache)))
    for part in ("All kinds", "Kind lookup", "Kind which_file", "memory", "demos", "both", "0 new answers"):
        assert part in text
    png = tmp_path / "curve.png"
    note = lc.plot(again, _options(cache), png)
    assert png.is_file() or "matplotlib is not installed" in note


def test_seeds_that_tests_were_tuned_on_are_refused() -> None:
    with pytest.raises(SystemExit):
        lc.parse(["--seeds", "1,11"])


def test_the_cache_keeps_one_answer_per_task_for_a_question_two_worlds_share(tmp_path: Path) -> None:
    path = tmp_path / "answers.jsonl"
    answers = lc.Answers(path, None)
    answers.put(lc.Answer("f" * 8, "rw11/lookup/curlew/lead", True, 2, 100, 1.0, "Vera Thorsby"))
    answers.put(lc.Answer("f" * 8, "rw12/lookup/curlew/lead", False, 2, 100, 1.0, "Noor Moreau"))
    with path.open("a", encoding="utf-8") as handle:  # the older form of a second world's answer
        handle.write(json.dumps({"fingerprint": "e" * 8 + ":rw12/x", "task_id": "rw12/x", "correct": True,
                                 "model_calls": 1, "tokens": 1, "seconds": 1.0, "answer": "a"}) + "\n")
    again = lc.Answers(path, None)
    assert again.get("f" * 8, "rw11/lookup/curlew/lead").answer == "Vera Thorsby"
    assert again.get("f" * 8, "rw12/lookup/curlew/lead").answer == "Noor Moreau"
    assert again.get("e" * 8, "rw12/x").answer == "a"
    assert again.get("f" * 8, "rw13/lookup/curlew/lead") is None
    assert again.reused == 3
