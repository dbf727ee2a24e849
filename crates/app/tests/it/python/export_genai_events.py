"""Exports one chat span with the OpenTelemetry Python SDK, and its GenAI events as OTLP log
records (emitted while the span is open, so they reach the server before the span), plus one
ordinary log record, which the server drops. Prints the trace id.

Usage: export_genai_events.py http|grpc ENDPOINT
(ENDPOINT is the server's base URL; /v1/traces and /v1/logs are added for http.)
"""

import sys

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor


def main() -> None:
    protocol, endpoint = sys.argv[1], sys.argv[2]
    if protocol == "http":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")
        log_exporter = OTLPLogExporter(endpoint=f"{endpoint}/v1/logs")
    else:
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        span_exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True)
        log_exporter = OTLPLogExporter(endpoint=endpoint, insecure=True)
    resource = Resource.create({"service.name": "python-genai-events"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    tracer = tracer_provider.get_tracer("loupe.tests")
    logger = logger_provider.get_logger("loupe.tests")

    with tracer.start_as_current_span("chat gpt-4o-mini") as span:
        span.set_attribute("gen_ai.operation.name", "chat")
        span.set_attribute("gen_ai.system", "openai")
        span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
        # The older form: the event name in the `event.name` attribute.
        logger.emit(
            attributes={"event.name": "gen_ai.system.message", "gen_ai.system": "openai"},
            body={"content": "Answer in one word."},
        )
        logger.emit(
            attributes={"event.name": "gen_ai.user.message", "gen_ai.system": "openai"},
            body={"content": "What is the capital of France?"},
        )
        # The newer form: LogRecord.event_name.
        logger.emit(
            event_name="gen_ai.choice",
            attributes={"gen_ai.system": "openai"},
            body={
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Paris."},
            },
        )
        logger.emit(body="an ordinary application log line", severity_text="INFO")
        trace_id = format(span.get_span_context().trace_id, "032x")
    tracer_provider.shutdown()
    logger_provider.shutdown()
    print(trace_id)


if __name__ == "__main__":
    main()
