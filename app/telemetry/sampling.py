"""The distro's rate-limited trace sampler, re-implemented to decide exactly as it does for less per message.

Why re-implement rather than configure: ``itemCount`` in Application
Insights and consistent sampling across services depend on exactly the
distro's algorithm (DJB2 score of the trace id against a rate-limited
percentage), while its implementation is costly per message (figures:
bench/RESULTS.md). `install` puts `DecidedSpans` (with `SameDecisionSampler`
and `SharedRatePercentage`) in place of the distro's sampler on the
middleware's tracer.

This module is the only one that reads the Azure Monitor exporter's
internals (and the OpenTelemetry SDK internals the distro's sampler uses).
Each name is listed in `app.private_surface`; `install` checks them and the
exporter's version first, and if anything moved it leaves the distro's own
sampler in place and logs one warning naming what is missing: the app starts
and samples as the distro does, at the distro's cost.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import random
import threading
import time
from binascii import hexlify
from typing import Any

from app.private_surface import (
    AZURE_MONITOR_EXPORTER,
    OPENTELEMETRY_API,
    OPENTELEMETRY_SDK,
    missing,
    missing_on,
    resolve,
    version_problem,
)
from app.telemetry.otel_context import CurrentContext

logger = logging.getLogger(__name__)

REQUIRED = tuple(
    entry
    for library in (AZURE_MONITOR_EXPORTER, OPENTELEMETRY_SDK, OPENTELEMETRY_API)
    for entry in library.names
    if entry.used_by == __name__
)
"""Every private name this module reads, as `app.private_surface` lists it."""
_DISTRO_SAMPLER = next(entry for entry in REQUIRED if entry.name == "RateLimitedSampler")


def install(tracer: Any, current: CurrentContext) -> DecidedSpans | None:
    """`DecidedSpans` in place of ``tracer``'s sampler and id generator, if that sampler is the distro's
    rate-limited one; None, with ``tracer`` unchanged, for any other sampler.

    If the exporter is not the tested release or a name this module reads
    has moved, the distro's sampler stays and one warning says what changed.
    """
    problems = [problem for problem in (version_problem(AZURE_MONITOR_EXPORTER), *map(missing, REQUIRED)) if problem]
    sampler = getattr(tracer, "sampler", None)
    if not problems:
        if type(sampler) is not resolve(_DISTRO_SAMPLER):
            return None
        problems = missing_on(_DISTRO_SAMPLER, sampler)
    if problems:
        logger.warning(
            "Sampling with the distro's own sampler: the re-implementation in %s (the same decisions, for less) "
            "relies on internals that changed: %s. Pin the tested release (pyproject.toml) or update %s "
            "and app/private_surface.py.",
            __name__,
            "; ".join(problems),
            __name__,
        )
        return None
    decided = DecidedSpans(SameDecisionSampler(sampler), tracer.id_generator, current)
    tracer.sampler = tracer.id_generator = decided
    return decided


# DJB2 over the 32 hex digits of a trace id, as the distro's sampler scores it, computed in C. The hash is
# h' = 33 h + c (mod 2**32, signed), so h = 5381 * 33**32 + sum(c_i * 33**(31 - i)) (mod 2**32). Digit i of value v_i
# has the code c_i = 48 + v_i + 39 * [v_i > 9] ("0" is 48, "a" is 97), so the sum is 48 * sum(33**k), plus the
# digits read as a base-33 number (hex digits are base-33 digits), plus 39 times the same with each letter read as 1
# and each decimal digit as 0. Two parses of 32 characters: no loop, and no lookup table, whose entries miss in the
# cache under load.
_MOD = 2**32
_INT32_MAX = 2**31 - 1
_DJB2_BASE = (5381 * pow(33, 32, _MOD) + 48 * sum(pow(33, k, _MOD) for k in range(32))) % _MOD
_LETTERS_AS_ONE = bytes.maketrans(b"0123456789abcdef", b"0000000000111111")


def djb2_sample_score(trace_id: int) -> float:
    """The distro's ``_get_DJB2_sample_score(format_trace_id(trace_id).lower())``, in 0..1, without its loop."""
    digits = hexlify(trace_id.to_bytes(16, "big"))
    value = (_DJB2_BASE + int(digits, 33) + 39 * int(digits.translate(_LETTERS_AS_ONE), 33)) & _MOD - 1
    if value > _INT32_MAX:  # negative as a signed 32-bit int: the absolute value (2**31 - 1 for -2**31)
        value = _MOD - value if value != 2**31 else _INT32_MAX
    return value / _INT32_MAX


# Fresh random trace ids (as the SDK's RandomIdGenerator draws them) with their scores, drawn and scored
# `_SCORED_BATCH` at a time: the draw and the score then run in a loop whose code stays in the cache, where once per
# message it was cold each time. Per process: a forked child starts without its parent's ids (the same ids in two
# processes would join unrelated traces).
_SCORED_BATCH = 64
_SCORED_TRACE_IDS: list[tuple[int, float]] = []
os.register_at_fork(after_in_child=_SCORED_TRACE_IDS.clear)


def _draw_scored_trace_ids() -> None:
    draw = random.getrandbits
    fresh = [draw(128) for _ in range(_SCORED_BATCH)]
    _SCORED_TRACE_IDS.extend((trace_id, djb2_sample_score(trace_id) * 100.0) for trace_id in fresh if trace_id)


def _unsampled_span_type() -> type:
    from opentelemetry.trace import NonRecordingSpan, SpanContext

    class UnsampledSpan(NonRecordingSpan):
        """The SDK's span for a dropped message, whose span context (and span id) is made when first asked for.

        Something asks only when the message's work continues the trace (a
        child span, an outgoing call's ``traceparent``); most messages never
        do. Made without a Python call (`DecidedSpans.dropped_span`): the
        instance gets ``_parts``, and ``_context`` stays the class's None
        until asked for.
        """

        _context = None
        _parts: tuple[int, Any, Any, Any]  # trace id, trace flags, trace state, id generator

        def get_span_context(self) -> SpanContext:
            if self._context is None:
                trace_id, trace_flags, trace_state, ids = self._parts
                self._context = SpanContext(
                    trace_id, ids.generate_span_id(), False, trace_flags=trace_flags, trace_state=trace_state
                )
            return self._context

    return UnsampledSpan


class DecidedSpans:
    """Sampling decided before a span exists, so a dropped message never enters the SDK's span machinery.

    The middleware asks `dropped_span` first: it picks the trace id as the
    SDK would (the parent's, else a fresh random one), asks the
    `SameDecisionSampler`, and for a drop returns the same non-recording
    span the SDK would have made (same trace id, a fresh span id, unsampled
    flags, the parent's trace state): children and outgoing calls continue
    the trace as unsampled, as before (the span context is made when first
    asked for: `_unsampled_span_type`). For a message to record it returns
    None and keeps the decision and trace id, which this object hands to the
    SDK's ``start_span`` as the tracer's sampler and id generator, so the
    recorded span is exactly the one decided on (one rate-limiter tick per
    message, as before). Why: under load, the SDK's span path was most of
    what telemetry cost a dropped message (figures: bench/RESULTS.md).
    """

    def __init__(self, sampler: SameDecisionSampler, ids: Any, current: CurrentContext) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
        from opentelemetry.sdk.trace.sampling import Decision
        from opentelemetry.trace import TraceFlags

        self._sampler, self._ids, self._trace, self._current = sampler, ids, trace, current
        self._DROP = Decision.DROP
        self._UnsampledSpan = _unsampled_span_type()
        # What the SDK gives a dropped span: unsampled, random trace id as the parent says.
        self._unsampled = {True: TraceFlags(TraceFlags.RANDOM_TRACE_ID), False: TraceFlags(TraceFlags.DEFAULT)}
        # A new trace's id: with the SDK's RandomIdGenerator (random.getrandbits(128), never 0, and random), one
        # of `_SCORED_TRACE_IDS`; another generator is asked for each id, and once whether its ids are random.
        self._scored_ids = type(ids) is RandomIdGenerator
        self._new_trace_flags = self._unsampled[self._scored_ids or ids.is_trace_id_random()]
        self._decision: Any = None
        self._trace_id: int | None = None

    def dropped_span(self, parent: Any) -> Any:
        """The non-recording span of a message to drop; None to let the tracer start the (recorded) span.

        ``parent`` None: the span continues the current context, as the tracer's ``start_span`` would.
        """
        if parent is None and self._current.get().get(self._current.span_key) is None:
            # A new trace, the common case: decided in the fewest Python calls (see `app.telemetry.otel_context.CurrentContext`).
            if self._scored_ids:
                while True:  # a loop, not one refill: another thread may take what this one drew
                    try:
                        trace_id, score = _SCORED_TRACE_IDS.pop()
                        break
                    except IndexError:
                        _draw_scored_trace_ids()
            else:
                trace_id, score = self._ids.generate_trace_id(), None
            result = self._sampler.sampled_root(trace_id, score=score)
            trace_flags, trace_state = self._new_trace_flags, None
        else:
            parent_context = self._trace.get_current_span(parent).get_span_context()
            if parent_context.is_valid:
                trace_id, random_id = parent_context.trace_id, parent_context.trace_flags.random_trace_id
            else:
                trace_id, random_id = self._ids.generate_trace_id(), self._ids.is_trace_id_random()
            result = self._sampler.should_sample(parent, trace_id, "")
            trace_flags, trace_state = self._unsampled[random_id], result.trace_state
            if result.decision is self._DROP:  # the one decision that does not record
                result = None
        if result is None:
            span = self._UnsampledSpan.__new__(self._UnsampledSpan)
            span._parts = (trace_id, trace_flags, trace_state, self._ids)
            return span
        self._decision, self._trace_id = result, trace_id
        return None

    # The tracer's sampler and id generator for the one span `dropped_span` left to it.

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None):
        decision, self._decision = self._decision, None
        return decision if decision is not None else self._sampler.should_sample(parent_context, trace_id, name)

    def get_description(self) -> str:
        return self._sampler.get_description()

    def generate_trace_id(self) -> int:
        trace_id, self._trace_id = self._trace_id, None
        return trace_id if trace_id is not None else self._ids.generate_trace_id()

    def generate_span_id(self) -> int:
        return self._ids.generate_span_id()

    def is_trace_id_random(self) -> bool:
        return self._ids.is_trace_id_random()


class SharedRatePercentage:
    """The distro's ``RateLimitedSamplingPercentage`` (same state, arithmetic and rounding) at less cost per span.

    It takes over the distro's state and its place in the distro's sampler,
    so our middleware and every other tracer still count into one rate, and
    saves in two ways:

    - The state is three numbers, not a state object allocated per span.
    - A span whose score is at or above every percentage the rate can reach
      within ``DEFER_NS`` of the last exact update is dropped whatever the
      exact figure, so its tick is queued (`percentage_unless_dropped`) and
      applied, in order and with its own timestamp, by the next exact update
      (which any span with a lower score, any other tracer's span, and the
      span after ``DEFER_MAX`` queued ticks make). The state after those updates is
      the one the distro computes, bit for bit; only the moment it is
      computed moves. The bound: from the exact state (count C, window W),
      no run of ticks within ``DEFER_NS`` makes the window exceed
      W + ``DEFER_NS`` or the count fall below max(1, C e^-(DEFER_NS/0.1 s)),
      so the percentage stays below 100 limit (W + DEFER_NS) / that count.
      Under load the rate is a small fraction of a per cent and the bound
      barely above it, so almost every message skips the update (A/B
      figures: bench/RESULTS.md). A tick is queued without the lock, so that
      most messages run no lock code.

    tests/app/telemetry/test_sampling.py holds its percentages and the
    decisions made with it to the distro's on the same clock, and checks that
    no tick is lost when threads share the rate.
    """

    DEFER_NS = 10_000_000
    DEFER_MAX = 64

    def __init__(self, distro_percentage: Any) -> None:
        from azure.monitor.opentelemetry.exporter.export.trace._utils import _round_down_to_nearest

        state = distro_percentage._state
        self._count, self._window_ns = state.effective_window_count, state.effective_window_nanoseconds
        self._last_ns = state.last_nano_time
        self._decay_per_ns = distro_percentage._inverse_adaptation_time_nanoseconds
        self._limit_per_ns = distro_percentage._target_spans_per_nanosecond_limit
        self._round = _round_down_to_nearest if distro_percentage._round_to_nearest else None
        self._lock = threading.Lock()
        self._queued: collections.deque[int] = collections.deque()
        # The bound and the time it was computed at, as one attribute: read without the lock, the two belong
        # together. Nothing is deferred before the first exact update.
        self._deferrable = (math.inf, self._last_ns)

    # The lock is taken with acquire and release, not `with`: its __exit__ call alone costs more than both.

    def get(self) -> float:
        """Tick for one span now and return the percentage it is sampled at (the distro's ``get``)."""
        now = time.time_ns()
        self._lock.acquire()
        try:
            return self._exact(now)
        finally:
            self._lock.release()

    def percentage_unless_dropped(self, score_percent: float) -> float | None:
        """`get`, or None with the tick queued if a span scored ``score_percent`` is dropped whatever the rate.

        A tick is queued without the lock (most messages, so no lock code runs for them): the deque's append is
        atomic and `_exact` drains it one ``popleft`` at a time, so a tick queued while an update runs is
        applied by that update or the next, never lost.
        """
        now = time.time_ns()
        bound, bound_from_ns = self._deferrable
        if score_percent >= bound and now - bound_from_ns <= self.DEFER_NS and len(self._queued) < self.DEFER_MAX:
            self._queued.append(now)
            return None
        self._lock.acquire()
        try:
            return self._exact(now)
        finally:
            self._lock.release()

    def _exact(self, now: int) -> float:
        """The queued ticks, then this one, then the percentage and the next bound (called under the lock)."""
        queued = self._queued
        queued.append(now)
        count, window, last = self._count, self._window_ns, self._last_ns
        decay_per_ns, exp, next_tick = self._decay_per_ns, math.exp, queued.popleft
        while queued:  # the distro's `_update_state`, tick by tick, with the same arithmetic
            tick = next_tick()
            if tick <= last:
                count += 1
            else:
                elapsed_ns = tick - last
                decay = exp(-elapsed_ns * decay_per_ns)
                count = count * decay + 1
                window = window * decay + elapsed_ns
                last = tick
        self._count, self._window_ns, self._last_ns = count, window, last
        floor = max(1.0, count * math.exp(-self.DEFER_NS * decay_per_ns))
        # A hair above the bound's exact value, for float rounding in either figure.
        bound = 100 * min((window + self.DEFER_NS) * self._limit_per_ns / floor, 1.0) * (1 + 1e-9)
        self._deferrable = (bound, last)
        percentage = 100 * min(window * self._limit_per_ns / count, 1.0)
        return self._round(percentage) if self._round is not None else percentage


class SameDecisionSampler:
    """The distro's rate-limited sampler, deciding exactly as it does, for less.

    It shares the distro sampler's rate state (so the process still keeps
    about ``traces_per_second``, counted over every span), honours a local
    parent's decision the same way, scores the trace id with the same DJB2
    (`djb2_sample_score`) and stamps the same sample rate (-> ``itemCount``).
    What it saves: the distro's per-character hash loop, a state object per
    span and, for a root span it is sure to drop, the rate update itself
    (both `SharedRatePercentage`), and building a fresh result for every
    dropped root span (a dropped span never reads its attributes).
    tests/app/telemetry/test_sampling.py holds it to the distro's decisions. Why not a sampler of our own: ``itemCount`` and consistent
    sampling across services depend on exactly this algorithm.
    """

    def __init__(self, distro_sampler: Any) -> None:
        from azure.monitor.opentelemetry.exporter._constants import _SAMPLE_RATE_KEY
        from azure.monitor.opentelemetry.exporter.export.trace._utils import parent_context_sampling
        from opentelemetry.sdk.trace.sampling import Decision, SamplingResult, _get_parent_trace_state

        shared = SharedRatePercentage(distro_sampler._sampling_percentage_generator)
        self._percentage = distro_sampler._sampling_percentage_generator = shared
        self._description = distro_sampler.get_description()
        self._parent_context_sampling = parent_context_sampling
        self._parent_trace_state = _get_parent_trace_state
        self._SamplingResult, self._Decision, self._rate_key = SamplingResult, Decision, _SAMPLE_RATE_KEY
        # A dropped root span reads nothing from its result: one serves them all.
        self._dropped_root = SamplingResult(Decision.DROP, None, None)

    def should_sample(
        self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None
    ) -> Any:
        if parent_context is None:
            return self.sampled_root(trace_id, attributes) or self._dropped_root
        parent_result = self._parent_context_sampling(parent_context, attributes)
        if parent_result is not None:
            return parent_result
        score = djb2_sample_score(trace_id) * 100.0
        percentage = self._percentage.get()
        return self._result(score < percentage, percentage, attributes, parent_context)

    def sampled_root(self, trace_id: int, attributes: Any = None, score: float | None = None) -> Any:
        """`should_sample` for a span without parent context when it records; None when it drops.

        ``score``: the trace id's ``djb2_sample_score * 100`` if already known (`_SCORED_TRACE_IDS`).
        """
        if score is None:
            score = djb2_sample_score(trace_id) * 100.0
        percentage = self._percentage.percentage_unless_dropped(score)
        if percentage is None or score >= percentage:
            return None
        return self._result(True, percentage, attributes, None)

    def _result(self, sampled: bool, percentage: float, attributes: Any, parent_context: Any) -> Any:
        """The distro's result for a decided span (a dropped root never gets here: it takes `_dropped_root`)."""
        new_attributes = {} if attributes is None else dict(attributes)
        if percentage != 100.0:
            new_attributes[self._rate_key] = percentage
        return self._SamplingResult(
            self._Decision.RECORD_AND_SAMPLE if sampled else self._Decision.DROP,
            new_attributes,
            self._parent_trace_state(parent_context),
        )

    def get_description(self) -> str:
        return self._description
