"""OpenTelemetry traces for Django, psycopg, Redis and Celery: off unless the standard OTEL_*
variables ask for them (OTEL_SDK_DISABLED=false and an exporter endpoint, or OTEL_TRACES_EXPORTER).

    OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 OTEL_SERVICE_NAME=cer-web

The SDK reads every other OTEL_* variable itself (sampling, resource attributes, headers).
Whether tracing is on is decided once, in settings (`config.settings.env.otel_traces_requested`).
"""

from __future__ import annotations

import logging

from django.conf import settings

logger = logging.getLogger(__name__)
_configured = False


def configure(*, force: bool = False) -> bool:
    """Install the tracer provider and the instrumentations once per process; False when off
    (settings.CER_TRACING, from `config.settings.env.otel_traces_requested`)."""
    global _configured
    if _configured or not (settings.CER_TRACING or force):
        return _configured
    from opentelemetry import trace
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    exporter_name = settings.CER_OTEL_TRACES_EXPORTER.strip().lower() or "otlp"
    exporter: SpanExporter
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # endpoint, headers and timeout from OTEL_EXPORTER_OTLP_*
    provider = TracerProvider(resource=Resource.create({"service.name": settings.CER_OTEL_SERVICE_NAME}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    DjangoInstrumentor().instrument()
    PsycopgInstrumentor().instrument(enable_commenter=False)
    RedisInstrumentor().instrument()
    CeleryInstrumentor().instrument()
    _configured = True
    logger.info("tracing on", extra={"otel_exporter": exporter_name})
    return True
