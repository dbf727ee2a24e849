"""An application instrumented with the OpenTelemetry Python SDK calls an LLM through Loupe's
gateway inside its own span, propagating the W3C trace context (`traceparent`). The gateway's
call span must become a child of the application span.

Prints one JSON line: the application span's ids and the ids the gateway answered with.

Environment:
  LOUPE_GATEWAY_URL     the gateway, e.g. http://127.0.0.1:4318
  LOUPE_OTLP_ENDPOINT   optional: also export the application span over OTLP/HTTP to this base URL
"""

import json
import os

import openai
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

GATEWAY = os.environ["LOUPE_GATEWAY_URL"].rstrip("/")

provider = TracerProvider(resource=Resource.create({"service.name": "py-rag-app"}))
memory = InMemorySpanExporter()
provider.add_span_processor(SimpleSpanProcessor(memory))
if os.environ.get("LOUPE_OTLP_ENDPOINT"):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    endpoint = os.environ["LOUPE_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("py-rag-app")

client = openai.OpenAI(base_url=GATEWAY + "/v1", api_key="sk-otel-caller-0001", max_retries=0)
with tracer.start_as_current_span("answer_question") as span:
    headers = {}
    propagate.inject(headers)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        extra_headers=headers,
    )
    raw.parse()
    context = span.get_span_context()

provider.force_flush()
provider.shutdown()
print(
    json.dumps(
        {
            "app_trace_id": format(context.trace_id, "032x"),
            "app_span_id": format(context.span_id, "016x"),
            "traceparent": headers.get("traceparent"),
            "gateway_trace_id": raw.headers.get("x-loupe-trace-id"),
            "gateway_span_id": raw.headers.get("x-loupe-span-id"),
            "exported": len(memory.get_finished_spans()),
        }
    )
)
