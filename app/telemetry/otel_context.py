"""The current OpenTelemetry context, read and set without the API's Python layers (`CurrentContext`).

The one module that reads OpenTelemetry's runtime-context internals (the
``_RUNTIME_CONTEXT`` and its ``ContextVar``, listed in
`app.private_surface`). Should they change shape, it says so once and goes
through the API instead: slower, the same behaviour.
"""

from __future__ import annotations

import logging

from app.private_surface import OPENTELEMETRY_API, missing, missing_on

logger = logging.getLogger(__name__)

_RUNTIME_CONTEXT, _CONTEXTVARS_RUNTIME = (entry for entry in OPENTELEMETRY_API.names if entry.used_by == __name__)


class CurrentContext:
    """The current OpenTelemetry context, read and set in C calls.

    The API reaches the runtime context's ``ContextVar`` through six Python
    calls per message, and under load each Python call on the per-message
    path costs several times its cost in a loop (its code is cold again at
    every message: `app.telemetry.middleware.McpInstrumentation`). With the
    default runtime context (contextvars; ``OTEL_PYTHON_CONTEXT`` unset)
    `get`, `set` and `reset` are that variable's own methods; with any other
    they are the API's ``get_current``, ``attach`` and ``detach``. The API's
    ``set_span_in_context(span)`` is ``Context({**get(), span_key: span})``.
    ``reset`` of the variable raises for a token from another context, where
    the API's ``detach`` logs: callers log it (the middleware does).
    tests/app/telemetry/test_otel_context.py holds the middleware's use of
    both to the API.
    """

    def __init__(self) -> None:
        from opentelemetry import context
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
        from opentelemetry.trace import INVALID_SPAN, set_span_in_context

        runtime = getattr(context, "_RUNTIME_CONTEXT", None)
        if runtime is None:
            problems = [missing(_RUNTIME_CONTEXT) or f"{_RUNTIME_CONTEXT.path} is None"]
        elif type(runtime) is ContextVarsRuntimeContext:
            problems = missing_on(_CONTEXTVARS_RUNTIME, runtime)
        else:  # another runtime (OTEL_PYTHON_CONTEXT): the API is the way to it
            problems = []
        if type(runtime) is ContextVarsRuntimeContext and not problems:
            variable = runtime._current_context
            self.get, self.set, self.reset = variable.get, variable.set, variable.reset
        else:
            if problems:
                logger.warning(
                    "OpenTelemetry's runtime context changed shape, so the current context is read and set through "
                    "the API (slower, same behaviour): %s",
                    "; ".join(problems),
                )
            self.get, self.set, self.reset = context.get_current, context.attach, context.detach
        # The key the API keeps the current span under: the one key of a context holding only a span.
        (self.span_key,) = set_span_in_context(INVALID_SPAN, context.Context())
        self.Context = context.Context
