"""The current context read and set directly is the context the OpenTelemetry API reads and sets."""

from __future__ import annotations

import logging

import pytest
from opentelemetry import trace

from app.telemetry import otel_context


@pytest.mark.parametrize("runtime", ["contextvars", "another"])
def test_current_context_sets_and_restores_the_context_the_api_does(monkeypatch, runtime):
    """app.telemetry.otel_context.CurrentContext: the default runtime context's ContextVar read and set directly, any other runtime
    through the API, with the context the API's set_span_in_context builds."""
    from opentelemetry import context
    from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
    from opentelemetry.trace import NonRecordingSpan, SpanContext

    attached = []

    class AnotherRuntime(ContextVarsRuntimeContext):
        def attach(self, ctx):
            attached.append(ctx)
            return super().attach(ctx)

    if runtime == "another":
        monkeypatch.setattr(context, "_RUNTIME_CONTEXT", AnotherRuntime())
    current = otel_context.CurrentContext()

    def make_current(span):
        return current.set(current.Context({**current.get(), current.span_key: span}))  # as the middleware does

    outer, inner = (NonRecordingSpan(SpanContext(trace_id, 7, False)) for trace_id in (1, 2))
    other_key = context.create_key("other")
    other_token = context.attach(context.set_value(other_key, "kept"))
    try:
        outer_token = make_current(outer)
        assert trace.get_current_span() is outer and current.get().get(current.span_key) is outer
        assert context.get_value(other_key) == "kept"
        expected = trace.set_span_in_context(inner)
        inner_token = make_current(inner)
        assert context.get_current() == expected  # the rest of the context carried over, as the API carries it
        current.reset(inner_token)
        assert trace.get_current_span() is outer
        current.reset(outer_token)
        assert current.get().get(current.span_key) is None and context.get_value(other_key) == "kept"
    finally:
        context.detach(other_token)
    # Another runtime is reached through the API alone: both spans went through its attach.
    assert sum(current.span_key in ctx for ctx in attached) == (2 if runtime == "another" else 0)


def test_a_runtime_context_that_moved_is_reached_through_the_api_after_one_warning(monkeypatch, caplog):
    from opentelemetry import context

    monkeypatch.delattr(context, "_RUNTIME_CONTEXT")
    with caplog.at_level(logging.WARNING):
        current = otel_context.CurrentContext()
    monkeypatch.undo()
    assert (current.get, current.set, current.reset) == (context.get_current, context.attach, context.detach)
    (warning,) = [r.getMessage() for r in caplog.records if r.name == otel_context.__name__]
    assert "opentelemetry.context._RUNTIME_CONTEXT: no such name" in warning
