"""File-lookup benchmark on the embedded model.

Generates a folder of small service docs, notes and data files, asks questions whose answers sit on
one line of one file, and runs the agent with the ReAct dialect with and without the GBNF grammar,
side by side in one run. Prints accuracy (expected value in the answer), citation accuracy (the
right file among the Sources), mean model calls and seconds per question, and the ratios.

    python benchmarks/file_lookup.py              # all questions, profile `local`
    python benchmarks/file_lookup.py -n 6 --model local-small
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tongyi_agent.agent.dialects import get_dialect
from tongyi_agent.agent.loop import Agent, AgentSpec
from tongyi_agent.config import load_settings, user_cache_dir
from tongyi_agent.llm.base import ChatMessage, ChatModel, ChatRequest, ChatResponse
from tongyi_agent.llm.registry import build_model
from tongyi_agent.tools import default_registry

SERVICES = [
    ("billing", 8443, "Maria Okafor", "PostgreSQL 16"),
    ("search", 9200, "Tomasz Wrona", "OpenSearch 2.13"),
    ("auth", 7001, "Lena Fischer", "Redis 7.2"),
    ("ledger", 6543, "Kwame Mensah", "CockroachDB 24.1"),
    ("mailer", 2525, "Ana Souza", "RabbitMQ 3.13"),
    ("reports", 8088, "Jun Park", "ClickHouse 24.3"),
]


@dataclass
class Question:
    text: str
    expected: str
    file: str


def make_corpus(root: Path) -> list[Question]:
    questions: list[Question] = []
    (root / "services").mkdir(parents=True)
    for name, port, lead, store in SERVICES:
        path = f"services/{name}.md"
        (root / path).write_text(
            f"# {name.title()} service\n\nHandles {name} for the platform.\n\n## Operations\n\n"
            f"- Listens on port {port}.\n- Team lead: {lead}.\n- Data store: {store}.\n- Deployed with 3 replicas.\n")
        questions.append(Question(f"Which port does the {name} service listen on?", str(port), path))
        questions.append(Question(f"Who is the team lead of the {name} service?", lead.split()[-1], path))
    (root / "notes").mkdir()
    (root / "notes" / "retro.md").write_text(
        "# Retrospective\n\n- Invoice latency dropped from 420 ms to 180 ms after caching tax tables.\n"
        "- The new on-call rotation starts on 3 November.\n")
    questions.append(Question("What was the invoice latency after caching the tax tables?", "180", "notes/retro.md"))
    questions.append(Question("When does the new on-call rotation start?", "3 November", "notes/retro.md"))
    (root / "data").mkdir()
    (root / "data" / "budget.csv").write_text("team,quarter,budget_eur\npayments,Q3,125000\ndiscovery,Q3,98000\n")
    questions.append(Question("What is the Q3 budget of the discovery team in euros?", "98000", "data/budget.csv"))
    return questions


class WithoutGrammar:
    """The same backend with grammar support hidden: the model writes ReAct unconstrained."""

    supports_grammar = False

    def __init__(self, model: ChatModel) -> None:
        self.model = model
        self.name = model.name

    async def chat(self, messages: list[ChatMessage], request: ChatRequest | None = None) -> ChatResponse:
        if request is not None:
            request.grammar = None
        return await self.model.chat(messages, request)


@dataclass
class Score:
    correct: int = 0
    cited: int = 0
    calls: list[int] | None = None
    seconds: list[float] | None = None


def run(agent: Agent, questions: list[Question]) -> Score:
    score = Score(calls=[], seconds=[])
    for q in questions:
        started = time.monotonic()
        result = agent.run_sync(q.text)
        score.seconds.append(time.monotonic() - started)  # type: ignore[union-attr]
        score.calls.append(result.model_calls)  # type: ignore[union-attr]
        score.correct += q.expected.lower() in result.answer.lower()
        score.cited += any(s.path == q.file for s in result.sources)
    return score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=0, help="number of questions (default: all 15)")
    parser.add_argument("--model", default="local", help="embedded profile (default: local)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        questions = make_corpus(root)
        questions = questions[: args.n] if args.n else questions
        settings = load_settings(root, model=args.model)
        profile = settings.profile
        model = build_model(profile, settings.env, user_cache_dir())
        spec = AgentSpec(max_steps=settings.max_steps, context_tokens=profile.context_length,
                         max_output_tokens=min(profile.max_output_tokens, profile.context_length // 4))
        configs = {"react+grammar": model, "react, no grammar": WithoutGrammar(model)}
        scores = {}
        for label, backend in configs.items():
            agent = Agent(backend, default_registry(profile.tool_names()), get_dialect("react"), root, spec)
            scores[label] = run(agent, questions)

    n = len(questions)
    print(f"\nFile-lookup benchmark: {n} questions, model {profile.name} ({profile.model_id})\n")
    print(f"{'config':<20} {'accuracy':>9} {'cited':>7} {'calls/q':>8} {'s/q':>7}")
    for label, s in scores.items():
        print(f"{label:<20} {s.correct / n:>9.0%} {s.cited / n:>7.0%} {statistics.mean(s.calls):>8.2f} "
              f"{statistics.mean(s.seconds):>7.1f}")
    a, b = scores.values()
    print(f"\nratio grammar/no-grammar: accuracy {a.correct / max(b.correct, 1):.2f}, "
          f"seconds {statistics.mean(a.seconds) / statistics.mean(b.seconds):.2f}, "
          f"model calls {statistics.mean(a.calls) / statistics.mean(b.calls):.2f}")


if __name__ == "__main__":
    main()
