"""Export each finished run as an OpenTelemetry trace, following the GenAI semantic conventions.

`OtelSink` is a `SpanSink` (see `learn.recording`): the recorder calls it with the raw run, spans and
rewards after the store has written its own (redacted) copy. The trace is one root span
``invoke_agent tongyi-agent`` with a child per recorded span (``chat {model}`` / ``execute_tool
{tool}``) and one ``gen_ai.evaluation.result`` event per reward, so Phoenix, Langfuse, MLflow or any
OTLP/HTTP collector show the trajectory the way they show other agents.

OpenTelemetry is an optional extra (``pip install 'tongyi-agent[otel]'``): it is imported only when a
sink is built, so the core never needs it. The sink uses its own TracerProvider, never the global
one, so it neither picks up nor disturbs the tracing of a host application.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from tongyi_agent import __version__
from tongyi_agent.store.records import RewardRecord, RunRecord, SpanRecord
from tongyi_agent.store.redact import MIN_SECRET_LENGTH, redact

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

__all__ = ["AGENT_NAME", "EXTRA_MISSING", "MAX_ATTRIBUTE_BYTES", "OtelSink"]

AGENT_NAME = "tongyi-agent"
EXTRA_MISSING = "OpenTelemetry export needs the extra: pip install 'tongyi-agent[otel]'"

# Messages repeat the whole conversation in every chat span; collectors reject or drop huge spans
# (and OTLP requests have size limits), so every string attribute is capped.
MAX_ATTRIBUTE_BYTES = 16 * 1024
TRUNCATED_MARKER = "…[truncated]"

ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_TRACES_PATH = "/v1/traces"
_HEX_TRACE_ID = re.compile(r"[0-9a-f]{32}")
# ChatRequest options the recorder keeps in llm span attributes, by their GenAI attribute names.
_REQUEST_ATTRIBUTES = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "max_tokens": "gen_ai.request.max_tokens",
    "stop": "gen_ai.request.stop_sequences",
}

log = logging.getLogger(__name__)


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


def _truncate(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    # Cut on bytes, then drop a split multi-byte character, so the bound holds for any script.
    return data[:limit].decode("utf-8", "ignore") + TRUNCATED_MARKER


def _json(value: Any) -> str:
    # default=str: tool outputs are "JSON-serialisable" by contract, but one odd value must not lose a trace.
    return json.dumps(value, ensure_ascii=False, default=str)


def _parse_headers(raw: str) -> dict[str, str]:
    """``k1=v1,k2=v2`` with percent-encoded values, as OTEL_EXPORTER_OTLP_HEADERS specifies."""
    headers: dict[str, str] = {}
    for item in raw.split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            headers[unquote(key.strip()).lower()] = unquote(value.strip())
    return headers


def _error_type(error: str, default: str) -> str:
    # The recorder writes model failures as "ExceptionName: message"; error.type must stay low-cardinality.
    head, sep, _ = error.partition(":")
    return head.strip() if sep and head.strip().isidentifier() else default


def _parts(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One recorded message as GenAI message parts (text, tool_call, tool_call_response, reasoning)."""
    parts: list[dict[str, Any]] = []
    if message.get("reasoning"):
        parts.append({"type": "reasoning", "content": message["reasoning"]})
    content = message.get("content")
    if message.get("role") == "tool":
        parts.append({"type": "tool_call_response", "id": message.get("tool_call_id"), "response": content})
    elif content:
        parts.append({"type": "text", "content": content})
    for call in message.get("tool_calls") or []:
        parts.append({"type": "tool_call", "id": call.get("id"), "name": call.get("name"),
                      "arguments": call.get("arguments")})
    return parts


def _input_messages(messages: Any) -> list[dict[str, Any]] | None:
    if not isinstance(messages, list):
        return None
    return [{"role": m.get("role"), "parts": _parts(m)} for m in messages if isinstance(m, Mapping)]


def _output_messages(output: Any, finish_reason: str | None) -> list[dict[str, Any]] | None:
    if not isinstance(output, Mapping):
        return None
    reason = finish_reason or ("tool_call" if output.get("tool_calls") else "stop")
    return [{"role": "assistant", "parts": _parts(output), "finish_reason": reason}]


class OtelSink:
    """A `SpanSink` that exports each finished run as one OpenTelemetry trace.

    Pass ``exporter`` to export anywhere (tests use ``InMemorySpanExporter``); otherwise spans go to
    ``endpoint`` (the full ``.../v1/traces`` URL) over OTLP/HTTP with protobuf bodies. ``batch``
    defaults to a background BatchSpanProcessor for the network exporter, so a slow collector never
    delays an answer, and to a synchronous SimpleSpanProcessor for an injected one.
    """

    def __init__(self, *, exporter: SpanExporter | None = None, endpoint: str | None = None,
                 headers: Mapping[str, str] | None = None, secrets: Iterable[str] = (),
                 service_name: str = AGENT_NAME, batch: bool | None = None, timeout: float | None = None,
                 capture_content: bool = True, max_attribute_bytes: int = MAX_ATTRIBUTE_BYTES) -> None:
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        except ImportError:
            raise RuntimeError(EXTRA_MISSING) from None
        if exporter is None:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ImportError:
                raise RuntimeError(EXTRA_MISSING) from None
            exporter = OTLPSpanExporter(endpoint=endpoint, headers=dict(headers or {}), timeout=timeout)
            batch = True if batch is None else batch
        self.secrets = tuple(secrets)
        self.capture_content = capture_content
        self.max_attribute_bytes = max_attribute_bytes
        self._ids = _RunIdGenerator()
        self.provider: TracerProvider = TracerProvider(
            resource=Resource.create({"service.name": service_name, "service.version": __version__}),
            id_generator=self._ids.otel(),
        )
        self.provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
        self.tracer: Tracer = self.provider.get_tracer("tongyi_agent.trace.otel", __version__)
        # The trace id comes from the run being exported; one run at a time keeps that unambiguous.
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def from_env(cls, env: Mapping[str, str], secrets: Iterable[str] = ()) -> OtelSink | None:
        """A sink exporting over OTLP/HTTP when an OTLP endpoint variable is set; None otherwise.

        ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is used as given; ``OTEL_EXPORTER_OTLP_ENDPOINT`` is a base
        URL that gets ``/v1/traces`` appended (both as the OTLP exporter spec defines them). Headers
        (``OTEL_EXPORTER_OTLP_[TRACES_]HEADERS``, e.g. a Langfuse ``Authorization``) are read from ``env`` too
        and treated as secrets. ``OTEL_SDK_DISABLED=true`` turns the export off.
        """
        endpoint = (env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or "").strip()
        if not endpoint:
            base = (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "").strip()
            if not base:
                return None
            endpoint = base.rstrip("/") + _TRACES_PATH
        if (env.get("OTEL_SDK_DISABLED") or "").strip().lower() == "true":
            return None
        headers = _parse_headers(env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or env.get("OTEL_EXPORTER_OTLP_HEADERS")
                                 or "")
        # Collector credentials live in header values whose variable names do not look secret.
        header_secrets = [v for v in headers.values() if len(v) >= MIN_SECRET_LENGTH]
        return cls(endpoint=endpoint, headers=headers, secrets=[*secrets, *header_secrets],
                   service_name=(env.get("OTEL_SERVICE_NAME") or "").strip() or AGENT_NAME)

    # -- SpanSink -------------------------------------------------------------------------------

    def __call__(self, run: RunRecord, spans: list[SpanRecord], rewards: list[RewardRecord]) -> None:
        if self._closed:
            return
        try:
            with self._lock:
                self._export(run, spans, rewards)
        except Exception:
            # The run is already stored; a telemetry bug must not fail (or, for a failed run, mask the
            # model error of) the user's question.
            log.warning("OpenTelemetry export of run %s failed", run.id, exc_info=True)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Flush what is queued and stop the exporter; later runs are ignored."""
        if self._closed:
            return
        self._closed = True
        self.provider.force_flush()
        self.provider.shutdown()

    # -- building the trace ----------------------------------------------------------------------

    def _export(self, run: RunRecord, spans: list[SpanRecord], rewards: list[RewardRecord]) -> None:
        from opentelemetry import context, trace

        ordered = sorted(spans, key=lambda s: s.seq)
        start = run.started_at if run.started_at > 0 else (min((s.started_at for s in ordered), default=0.0)
                                                           or time.time() - run.seconds)
        # A parent must enclose its children; span clocks and the run clock are taken separately.
        end = max([start + run.seconds, *(s.started_at + s.duration for s in ordered if s.started_at > 0)])
        start_ns, end_ns = _ns(start), _ns(end)

        self._ids.next_trace_id = int(run.id, 16) if _HEX_TRACE_ID.fullmatch(run.id) else None
        try:
            root = self.tracer.start_span(f"invoke_agent {AGENT_NAME}", context=context.Context(),
                                          kind=trace.SpanKind.INTERNAL, start_time=start_ns)
        finally:
            self._ids.next_trace_id = None
        self._set_run_attributes(root, run)
        parent = trace.set_span_in_context(root)
        for span in ordered:
            self._child(span, run, parent, start_ns)
        for reward in rewards:
            self._reward_event(root, reward, start_ns, end_ns)
        if run.status == "failed":
            self._set_error(root, run.error or "run failed", "run_failed")
        root.end(end_time=end_ns)

    def _text(self, value: Any) -> str:
        """Redacted, JSON-encoded when structured, and bounded. Redaction comes first: a cut key could
        no longer be recognised by its shape."""
        cleaned = redact(value, self.secrets)
        text = cleaned if isinstance(cleaned, str) else _json(cleaned)
        return _truncate(text, self.max_attribute_bytes)

    def _set(self, span: Span, key: str, value: Any) -> None:
        if value is None or value == "":
            return
        if isinstance(value, bool | int | float):
            span.set_attribute(key, value)
        elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            span.set_attribute(key, [self._text(v) for v in value])
        else:
            span.set_attribute(key, self._text(value))

    def _set_run_attributes(self, root: Span, run: RunRecord) -> None:
        values: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": AGENT_NAME,
            "gen_ai.provider.name": run.backend,
            "gen_ai.request.model": run.model,
            "gen_ai.usage.input_tokens": run.input_tokens,
            "gen_ai.usage.output_tokens": run.output_tokens,
            "tongyi.run.id": run.id,
            "tongyi.run.status": run.status,
            "tongyi.run.stop_reason": run.stop_reason,
            "tongyi.run.dialect": run.dialect,
            "tongyi.run.prompt_version": run.prompt_version,
            "tongyi.run.training_mode": run.training_mode,
            "tongyi.run.ab_arm": run.ab_arm,
            "tongyi.run.model_calls": run.model_calls,
            "tongyi.run.tool_calls": run.tool_calls,
            "tongyi.run.tools_used": list(run.tools_used),
        }
        if self.capture_content:
            values["tongyi.run.question"] = run.question
            values["tongyi.run.answer"] = run.answer
            # Viewers show an agent span's input/output from the GenAI message attributes.
            values["gen_ai.input.messages"] = [{"role": "user", "parts": [{"type": "text", "content": run.question}]}]
            if run.answer:
                values["gen_ai.output.messages"] = [{"role": "assistant", "finish_reason": "stop",
                                                     "parts": [{"type": "text", "content": run.answer}]}]
        for key, value in values.items():
            self._set(root, key, value)

    def _child(self, record: SpanRecord, run: RunRecord, parent: Any, run_start_ns: int) -> None:
        start_ns = _ns(record.started_at) if record.started_at > 0 else run_start_ns
        end_ns = start_ns + _ns(max(record.duration, 0.0))
        attrs = record.attributes or {}
        values: dict[str, Any]
        if record.kind == "llm":
            name = f"chat {record.name}" if record.name else "chat"
            finish = attrs.get("finish_reason")
            values = {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": run.backend,
                "gen_ai.request.model": record.name,
                "gen_ai.response.model": attrs.get("response_model"),
                "gen_ai.response.finish_reasons": [finish] if isinstance(finish, str) and finish else None,
                "gen_ai.usage.input_tokens": record.input_tokens,
                "gen_ai.usage.output_tokens": record.output_tokens,
                **{otel: attrs.get(key) for key, otel in _REQUEST_ATTRIBUTES.items()},
            }
            if self.capture_content:
                values["gen_ai.input.messages"] = _input_messages(record.input)
                values["gen_ai.output.messages"] = _output_messages(record.output, finish)
            kind_error = "model_error"
        else:
            name = f"execute_tool {record.name}"
            values = {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": record.name,
                "gen_ai.tool.type": "function",
                "gen_ai.tool.call.id": attrs.get("tool_call_id"),
            }
            if self.capture_content:
                # Without arguments and result, trace viewers show tool calls empty.
                values["gen_ai.tool.call.arguments"] = record.input
                values["gen_ai.tool.call.result"] = record.output
            kind_error = "tool_error"
        values["tongyi.span.seq"] = record.seq

        from opentelemetry import trace

        span = self.tracer.start_span(name, context=parent, start_time=start_ns,
                                      kind=trace.SpanKind.CLIENT if record.kind == "llm" else trace.SpanKind.INTERNAL)
        for key, value in values.items():
            self._set(span, key, value)
        if record.error:
            self._set_error(span, record.error, _error_type(record.error, kind_error))
        span.end(end_time=end_ns)

    def _set_error(self, span: Span, message: str, error_type: str) -> None:
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR, self._text(message)))
        span.set_attribute("error.type", error_type)

    def _reward_event(self, root: Span, reward: RewardRecord, start_ns: int, end_ns: int) -> None:
        attributes: dict[str, Any] = {"gen_ai.evaluation.name": self._text(reward.name),
                                      "tongyi.evaluation.source": reward.source}
        if reward.value is None:
            # A reward that could not be computed (e.g. a custom function raised) is still worth seeing.
            attributes["error.type"] = "missing_value"
        else:
            attributes["gen_ai.evaluation.score.value"] = float(reward.value)
        if reward.detail:
            attributes["gen_ai.evaluation.explanation"] = self._text(reward.detail)
        # Rewards are computed just after the run ends; placing them inside the root span keeps
        # timeline views from drawing them outside the run.
        stamp = min(max(_ns(reward.created_at), start_ns), end_ns) if reward.created_at > 0 else end_ns
        root.add_event("gen_ai.evaluation.result", attributes=attributes, timestamp=stamp)


class _RunIdGenerator:
    """Lets a run's 128-bit hex id become its trace id, so a run in the store is found in a viewer by id."""

    def __init__(self) -> None:
        self.next_trace_id: int | None = None

    def otel(self) -> Any:
        from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator

        owner = self
        fallback = RandomIdGenerator()

        class Generator(IdGenerator):
            def generate_span_id(self) -> int:
                return fallback.generate_span_id()

            def generate_trace_id(self) -> int:
                wanted = owner.next_trace_id
                # An all-zero trace id is invalid in OpenTelemetry.
                return wanted if wanted else fallback.generate_trace_id()

        return Generator()
