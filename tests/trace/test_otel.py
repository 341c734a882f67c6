"""OtelSink: a finished run exported as an OpenTelemetry GenAI trace (in memory and over real OTLP/HTTP)."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from tests.store.factories import DAY0, make_rewards, make_run, make_spans
from tongyi_agent.store import RewardRecord, SpanRecord
from tongyi_agent.trace.otel import EXTRA_MISSING, TRUNCATED_MARKER, OtelSink

FAKE_KEY = "sk-or-v1-0123456789abcdef0123456789abcdef"
ENV_SECRET = "hunter2-correct-horse-battery"


def timed_spans(tool_error: str | None = None) -> list[SpanRecord]:
    """The factory's 3-span trajectory, with real clocks: 0.1-0.4 s, 0.5-0.6 s, 0.7-0.9 s after DAY0."""
    spans = make_spans(tool_error=tool_error)
    for span, (offset, duration) in zip(spans, [(0.1, 0.3), (0.5, 0.1), (0.7, 0.2)], strict=True):
        span.started_at, span.duration = DAY0 + offset, duration
    spans[0].attributes.update({"response_model": "test-model-2025", "finish_reason": "tool_calls",
                                "temperature": 0.85, "max_tokens": 512})
    return spans


@pytest.fixture
def exported() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def sink(exported: InMemorySpanExporter) -> Iterator[OtelSink]:
    sink = OtelSink(exporter=exported, secrets=[ENV_SECRET])
    yield sink
    sink.shutdown()


def export_one(sink: OtelSink, exported: InMemorySpanExporter, **run_fields: Any) -> dict[str, ReadableSpan]:
    run = make_run(seconds=1.0, input_tokens=60, output_tokens=13, prompt_version="v3", training_mode="prompt",
                   **run_fields)
    sink(run, run_fields.get("spans_override") or timed_spans(), make_rewards(0.75))
    return {s.name: s for s in exported.get_finished_spans()}


def all_attribute_text(spans: Any) -> str:
    """Every attribute, event attribute and status description of every span, as one string."""
    chunks: list[str] = []
    for span in spans:
        chunks += [str(v) for v in span.attributes.values()]
        chunks += [str(v) for e in span.events for v in e.attributes.values()]
        chunks.append(span.status.description or "")
    return "\n".join(chunks)


def test_a_run_becomes_a_root_span_with_one_child_per_recorded_span_in_order(
        sink: OtelSink, exported: InMemorySpanExporter) -> None:
    sink(make_run(seconds=1.0), list(reversed(timed_spans())), [])  # seq, not list order, decides

    spans = exported.get_finished_spans()
    root = next(s for s in spans if s.parent is None)
    children = sorted((s for s in spans if s.parent is not None), key=lambda s: s.start_time)
    assert root.name == "invoke_agent tongyi-agent"
    assert [s.name for s in children] == ["chat test-model", "execute_tool read_file", "chat test-model"]
    assert [s.attributes["tongyi.span.seq"] for s in children] == [0, 1, 2]
    assert {s.parent.span_id for s in children} == {root.context.span_id}
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    assert len(spans) == 4


def test_span_times_come_from_the_records(sink: OtelSink, exported: InMemorySpanExporter) -> None:
    sink(make_run(seconds=1.0), timed_spans(), [])

    by_seq = {s.attributes.get("tongyi.span.seq", -1): s for s in exported.get_finished_spans()}
    root = by_seq[-1]
    assert root.start_time == int(DAY0 * 1e9)
    assert root.end_time == int((DAY0 + 1.0) * 1e9)
    tool_start = int((DAY0 + 0.5) * 1e9)
    assert (by_seq[1].start_time, by_seq[1].end_time) == (tool_start, tool_start + 100_000_000)
    for seq in (0, 1, 2):
        assert root.start_time <= by_seq[seq].start_time <= by_seq[seq].end_time <= root.end_time


def test_the_root_encloses_a_span_that_outlasts_the_run_clock(sink: OtelSink, exported: InMemorySpanExporter) -> None:
    spans = timed_spans()
    spans[2].duration = 2.0  # ends at DAY0 + 2.7, after the run's own end at DAY0 + 1.0
    sink(make_run(seconds=1.0), spans, [])

    root = next(s for s in exported.get_finished_spans() if s.parent is None)
    assert root.end_time == int((DAY0 + 0.7) * 1e9) + 2_000_000_000


def test_root_attributes_describe_the_run(sink: OtelSink, exported: InMemorySpanExporter) -> None:
    run = make_run(seconds=1.0, input_tokens=60, output_tokens=13, prompt_version="v3", training_mode="prompt",
                   stop_reason="answer")
    sink(run, timed_spans(), [])

    root = next(s for s in exported.get_finished_spans() if s.parent is None)
    attrs = root.attributes
    assert attrs["gen_ai.operation.name"] == "invoke_agent"
    assert attrs["gen_ai.agent.name"] == "tongyi-agent"
    assert attrs["gen_ai.provider.name"] == "scripted"
    assert attrs["gen_ai.request.model"] == "test-model"
    assert attrs["gen_ai.usage.input_tokens"] == 60
    assert attrs["gen_ai.usage.output_tokens"] == 13
    assert attrs["tongyi.run.id"] == run.id
    assert attrs["tongyi.run.question"] == "What does core.py do?"
    assert attrs["tongyi.run.answer"] == "It adds numbers [src/core.py:1]."
    assert attrs["tongyi.run.status"] == "success"
    assert attrs["tongyi.run.prompt_version"] == "v3"
    assert attrs["tongyi.run.training_mode"] == "prompt"
    assert attrs["tongyi.run.stop_reason"] == "answer"
    assert json.loads(attrs["gen_ai.input.messages"])[0]["parts"][0]["content"] == "What does core.py do?"
    assert root.status.status_code == StatusCode.UNSET
    assert root.resource.attributes["service.name"] == "tongyi-agent"
    # The run id is the trace id, so a stored run is found in a trace viewer by its id.
    assert format(root.context.trace_id, "032x") == run.id


def test_chat_span_attributes_follow_the_genai_conventions(sink: OtelSink, exported: InMemorySpanExporter) -> None:
    sink(make_run(), timed_spans(), [])

    first, last = sorted((s for s in exported.get_finished_spans() if s.name == "chat test-model"),
                         key=lambda s: s.start_time)
    attrs = first.attributes
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "scripted"
    assert attrs["gen_ai.request.model"] == "test-model"
    assert attrs["gen_ai.response.model"] == "test-model-2025"
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert attrs["gen_ai.request.temperature"] == 0.85
    assert attrs["gen_ai.request.max_tokens"] == 512
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (20, 5)
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "You are a research assistant."}]},
        {"role": "user", "parts": [{"type": "text", "content": "What does core.py do?"}]},
    ]
    assert json.loads(attrs["gen_ai.output.messages"]) == [{
        "role": "assistant", "finish_reason": "tool_calls",
        "parts": [{"type": "tool_call", "id": "call_1", "name": "read_file", "arguments": {"path": "src/core.py"}}],
    }]

    later = last.attributes
    assert "gen_ai.response.model" not in later  # not recorded for that call: left out, not empty
    assert (later["gen_ai.usage.input_tokens"], later["gen_ai.usage.output_tokens"]) == (40, 8)
    tool_message = json.loads(later["gen_ai.input.messages"])[3]
    assert tool_message == {"role": "tool", "parts": [
        {"type": "tool_call_response", "id": "call_1", "response": "def add(a, b): return a + b"}]}
    assert json.loads(later["gen_ai.output.messages"])[0]["parts"] == [{"type": "text", "content": "It adds numbers."}]


def test_tool_span_attributes_carry_call_id_arguments_and_result(sink: OtelSink,
                                                                 exported: InMemorySpanExporter) -> None:
    sink(make_run(), timed_spans(), [])

    (tool,) = [s for s in exported.get_finished_spans() if s.name == "execute_tool read_file"]
    attrs = tool.attributes
    assert attrs["gen_ai.operation.name"] == "execute_tool"
    assert attrs["gen_ai.tool.name"] == "read_file"
    assert attrs["gen_ai.tool.call.id"] == "call_1"
    assert json.loads(attrs["gen_ai.tool.call.arguments"]) == {"path": "src/core.py"}
    assert attrs["gen_ai.tool.call.result"] == "def add(a, b): return a + b"
    assert tool.status.status_code == StatusCode.UNSET


def test_structured_tool_results_are_json_and_a_missing_call_id_is_left_out(
        sink: OtelSink, exported: InMemorySpanExporter) -> None:
    span = SpanRecord(0, "tool", "list_files", {"path": "."}, {"files": ["a.py", "b.py"]}, DAY0 + 0.1, 0.1)
    sink(make_run(), [span], [])

    (tool,) = [s for s in exported.get_finished_spans() if s.parent is not None]
    assert json.loads(tool.attributes["gen_ai.tool.call.result"]) == {"files": ["a.py", "b.py"]}
    assert "gen_ai.tool.call.id" not in tool.attributes


def test_errors_set_status_error_with_the_message(sink: OtelSink, exported: InMemorySpanExporter) -> None:
    spans = timed_spans(tool_error="file not found: src/core.py")
    spans.append(SpanRecord(3, "llm", "test-model", [{"role": "user", "content": "q"}], None, DAY0 + 0.95, 0.01,
                            error="ModelError: HTTP 503 from backend"))
    sink(make_run(status="failed", error="ModelError: HTTP 503 from backend"), spans, [])

    by_seq = {s.attributes.get("tongyi.span.seq", -1): s for s in exported.get_finished_spans()}
    assert by_seq[1].status.status_code == StatusCode.ERROR
    assert by_seq[1].status.description == "file not found: src/core.py"
    assert by_seq[1].attributes["error.type"] == "tool_error"
    assert by_seq[3].status.status_code == StatusCode.ERROR
    assert by_seq[3].attributes["error.type"] == "ModelError"
    assert "gen_ai.output.messages" not in by_seq[3].attributes
    assert by_seq[0].status.status_code == StatusCode.UNSET
    assert by_seq[-1].status.status_code == StatusCode.ERROR
    assert by_seq[-1].status.description == "ModelError: HTTP 503 from backend"


def test_rewards_become_evaluation_events_on_the_root(sink: OtelSink, exported: InMemorySpanExporter) -> None:
    rewards = [RewardRecord("task_success", 1.0, "task", None, DAY0 + 1.5),
               RewardRecord("tool_efficiency", 0.5, "builtin", "1 of 2 calls failed", DAY0 + 1.5),
               RewardRecord("my_reward", None, "custom", "ValueError: boom", DAY0 + 1.5)]
    sink(make_run(seconds=1.0), timed_spans(), rewards)

    root = next(s for s in exported.get_finished_spans() if s.parent is None)
    events = [e for e in root.events if e.name == "gen_ai.evaluation.result"]
    assert [e.attributes["gen_ai.evaluation.name"] for e in events] == ["task_success", "tool_efficiency", "my_reward"]
    assert [e.attributes.get("gen_ai.evaluation.score.value") for e in events] == [1.0, 0.5, None]
    assert events[1].attributes["gen_ai.evaluation.explanation"] == "1 of 2 calls failed"
    assert events[2].attributes["error.type"] == "missing_value"
    assert "error.type" not in events[0].attributes
    assert all(root.start_time <= e.timestamp <= root.end_time for e in events)
    assert all(not s.events for s in exported.get_finished_spans() if s.parent is not None)


def test_secrets_never_reach_an_exported_attribute(sink: OtelSink, exported: InMemorySpanExporter) -> None:
    spans = timed_spans()
    spans[0].input[1]["content"] = f"Use my key {FAKE_KEY} and the password {ENV_SECRET}"
    spans[1].input = {"path": "src/core.py", "api_key": "plain-value-under-a-secret-name"}
    spans[1].output = f"OPENROUTER_API_KEY={FAKE_KEY}\nDB={ENV_SECRET}"
    spans[2].error = f"auth failed for {ENV_SECRET}"
    rewards = [RewardRecord("custom", None, "custom", f"raised with {FAKE_KEY}", DAY0)]
    sink(make_run(question=f"why does {ENV_SECRET} fail?", answer=f"Because {FAKE_KEY}"), spans, rewards)

    text = all_attribute_text(exported.get_finished_spans())
    assert "[REDACTED]" in text
    assert "sk-or-" not in text
    assert ENV_SECRET not in text
    assert "plain-value-under-a-secret-name" not in text
    assert spans[0].input[1]["content"].startswith("Use my key sk-or-")  # the caller's records stay untouched


def test_long_values_are_truncated_with_a_marker_after_redaction(exported: InMemorySpanExporter) -> None:
    sink = OtelSink(exporter=exported, max_attribute_bytes=100)
    spans = timed_spans()
    # The key straddles the cut: truncating first would leave a prefix no pattern recognises.
    spans[1].output = "x" * 89 + " " + FAKE_KEY + " " + "y" * 5000
    sink(make_run(), spans, [])
    sink.shutdown()

    (tool,) = [s for s in exported.get_finished_spans() if s.name.startswith("execute_tool")]
    result = tool.attributes["gen_ai.tool.call.result"]
    assert result.endswith(TRUNCATED_MARKER)
    assert len(result.encode()) <= 100 + len(TRUNCATED_MARKER.encode())
    assert "sk-or" not in result


def test_content_capture_can_be_turned_off(exported: InMemorySpanExporter) -> None:
    sink = OtelSink(exporter=exported, capture_content=False)
    sink(make_run(), timed_spans(), [])
    sink.shutdown()

    names = {key for s in exported.get_finished_spans() for key in s.attributes}
    assert "gen_ai.usage.input_tokens" in names
    assert not names & {"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.tool.call.arguments",
                        "gen_ai.tool.call.result", "tongyi.run.question"}


def test_an_export_failure_is_logged_not_raised(exported: InMemorySpanExporter,
                                               caplog: pytest.LogCaptureFixture) -> None:
    sink = OtelSink(exporter=exported)
    bad = SpanRecord(0, "llm", "m", started_at="not a time")  # type: ignore[arg-type]
    sink(make_run(), [bad], [])
    assert "OpenTelemetry export of run" in caplog.text
    sink.shutdown()


def test_runs_after_shutdown_are_ignored(sink: OtelSink, exported: InMemorySpanExporter) -> None:
    sink.shutdown()
    sink(make_run(), timed_spans(), [])
    assert exported.get_finished_spans() == ()


def test_the_global_tracer_provider_is_left_alone(sink: OtelSink) -> None:
    from opentelemetry import trace

    assert trace.get_tracer_provider() is not sink.provider


# -- from_env ------------------------------------------------------------------------------------


def test_from_env_returns_none_without_an_endpoint() -> None:
    assert OtelSink.from_env({}, []) is None
    assert OtelSink.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, []) is None


def test_from_env_respects_otel_sdk_disabled() -> None:
    assert OtelSink.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_SDK_DISABLED": "true"}) is None


def test_from_env_without_the_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes the import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    with pytest.raises(RuntimeError) as raised:
        OtelSink.from_env({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9/v1/traces"}, [])
    assert str(raised.value) == EXTRA_MISSING
    assert "pip install 'tongyi-agent[otel]'" in str(raised.value)
    assert "\n" not in str(raised.value)


class _Collector(BaseHTTPRequestHandler):
    """Just enough of an OTLP/HTTP collector: records each POST and answers an empty protobuf response."""

    received: list[tuple[str, dict[str, str], bytes]]
    arrived: threading.Event

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.arrived.set()

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, type[_Collector]]]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # a proxy in the environment must not intercept
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    handler = type("Handler", (_Collector,), {"received": [], "arrived": threading.Event()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_run_arrives_at_a_real_otlp_http_collector(collector: tuple[str, type[_Collector]]) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    base, handler = collector
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": base + "/", "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Basic%20cGs6c2s="}
    sink = OtelSink.from_env(env, [ENV_SECRET])
    assert sink is not None
    run = make_run(input_tokens=60, output_tokens=13)
    sink(run, timed_spans(), make_rewards(0.75))
    sink.shutdown()  # flushes the batch processor

    assert handler.arrived.wait(timeout=10), "no OTLP request reached the collector"
    path, headers, body = handler.received[0]
    assert path == "/v1/traces"
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["authorization"] == "Basic cGs6c2s="
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    (resource_spans,) = request.resource_spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "tongyi-agent"
    spans = [s for scope in resource_spans.scope_spans for s in scope.spans]
    assert sorted(s.name for s in spans) == ["chat test-model", "chat test-model", "execute_tool read_file",
                                             "invoke_agent tongyi-agent"]
    root = next(s for s in spans if s.name == "invoke_agent tongyi-agent")
    root_attrs = {a.key: a.value for a in root.attributes}
    assert root_attrs["gen_ai.usage.input_tokens"].int_value == 60
    assert root.trace_id.hex() == run.id
    first_chat = min((s for s in spans if s.name == "chat test-model"), key=lambda s: s.start_time_unix_nano)
    assert {a.key: a.value for a in first_chat.attributes}["gen_ai.usage.output_tokens"].int_value == 5
    assert [e.name for e in root.events] == ["gen_ai.evaluation.result"]
