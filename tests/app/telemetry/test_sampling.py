"""The re-implemented sampler decides, stamps and rate-limits exactly as the distro's, for less."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import threading
import time

from azure.monitor.opentelemetry.exporter.export.trace._rate_limited_sampling import RateLimitedSampler
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.protocol import Exchange
from app.telemetry import McpInstrumentation, sampling
from tests.app.telemetry.recording import (
    CALLER_SPAN_ID,
    META,
    TRACE_ID,
    KeptMetrics,
    Recorder,
    threads_interleaving_at_almost_every_bytecode,
    tools_call,
)


def test_the_fast_djb2_score_is_the_distros():
    from azure.monitor.opentelemetry.exporter.export.trace._utils import _get_DJB2_sample_score
    from opentelemetry.trace import format_trace_id

    rng = random.Random(7)
    ids = [0, 1, 2**128 - 1, *(rng.getrandbits(128) for _ in range(20_000))]
    for trace_id in ids:
        assert sampling.djb2_sample_score(trace_id) == _get_DJB2_sample_score(format_trace_id(trace_id).lower())


def test_the_shared_rate_percentage_gives_the_distros_percentages_on_the_same_clock(monkeypatch):
    from azure.monitor.opentelemetry.exporter.export.trace._rate_limited_sampling import (
        RateLimitedSamplingPercentage,
    )

    rng = random.Random(11)
    start = time.time_ns()
    # Bursts (several spans on one clock tick), steady load and idle gaps, as a server sees them.
    steps = rng.choices([0, 1_000, 50_000, 100_000, 2_000_000, 3_000_000_000], weights=[10, 10, 40, 30, 5, 1], k=5_000)
    scores = [rng.choice([rng.uniform(0, 100), rng.uniform(0, 1)]) for _ in steps]
    for round_to_nearest in (True, False):
        ticks = list(itertools.accumulate(steps, initial=start))
        monkeypatch.setattr(time, "time_ns", iter(ticks).__next__)
        distro = RateLimitedSamplingPercentage(5.0, round_to_nearest)
        expected = [distro.get() for _ in steps]
        monkeypatch.setattr(time, "time_ns", iter(ticks).__next__)
        ours = sampling.SharedRatePercentage(RateLimitedSamplingPercentage(5.0, round_to_nearest))
        assert [ours.get() for _ in steps] == expected
        # With deferral: every percentage given is the distro's, and a deferred tick is one the distro drops.
        monkeypatch.setattr(time, "time_ns", iter(ticks).__next__)
        ours = sampling.SharedRatePercentage(RateLimitedSamplingPercentage(5.0, round_to_nearest))
        given = [ours.percentage_unless_dropped(score) for score in scores]
        assert [p for p in given if p is not None] == [p for p, g in zip(expected, given, strict=True) if g is not None]
        assert all(score >= p for score, p, g in zip(scores, expected, given, strict=True) if g is None)
        assert len(steps) / 4 < given.count(None) < len(steps) - 100  # high scores under load were deferred
    assert len(set(expected)) > 10  # the rate moved: the decay and both branches were exercised


def test_no_rate_tick_is_lost_when_threads_share_the_rate(monkeypatch):
    """Dropped spans queue their ticks without the lock while other threads update the rate exactly: every tick is
    applied once. On a stopped clock each tick adds exactly 1 to the rate's count, so the count is the tick count."""
    from azure.monitor.opentelemetry.exporter.export.trace._rate_limited_sampling import (
        RateLimitedSamplingPercentage,
    )

    monkeypatch.setattr(time, "time_ns", lambda: 1_000_000_000)
    monkeypatch.setattr(sampling.SharedRatePercentage, "DEFER_MAX", 5_000)  # long updates: more to race with
    per_thread, threads = 20_000, 4

    def ticks_applied_and_deferred() -> tuple[float, int]:
        ours = sampling.SharedRatePercentage(RateLimitedSamplingPercentage(5.0))
        deferred = []

        def tick_many(exact_every: int):
            given = [
                ours.get() if i % exact_every == 0 else ours.percentage_unless_dropped(99.0) for i in range(per_thread)
            ]
            deferred.append(given.count(None))

        workers = [threading.Thread(target=tick_many, args=(every,)) for every in (1, 7, 1_000, 100_000)[:threads]]
        with threads_interleaving_at_almost_every_bytecode():
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        ours.get()  # applies whatever is still queued, and its own tick
        return ours._count, sum(deferred)

    for _ in range(4):  # a lost tick needs a switch at one spot: several runs make it near certain to show
        applied, deferred = ticks_applied_and_deferred()
        assert applied == per_thread * threads + 1
        assert deferred > per_thread  # the lock-free path was taken, by several threads at once


def test_a_forked_process_draws_trace_ids_of_its_own():
    """The trace ids drawn ahead (with their scores) stay in the process that drew them."""
    sampling._draw_scored_trace_ids()
    assert all(score == sampling.djb2_sample_score(trace_id) * 100.0 for trace_id, score in sampling._SCORED_TRACE_IDS)
    pid = os.fork()
    if pid == 0:
        os._exit(1 if sampling._SCORED_TRACE_IDS else 0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sampling._SCORED_TRACE_IDS  # the parent keeps its own


def test_the_same_decision_sampler_decides_and_stamps_as_the_distros_sampler(monkeypatch):
    """Same clock, same trace ids: the same decision, sample rate (-> itemCount) and trace state, span for span."""
    from azure.monitor.opentelemetry.exporter.export.trace import _rate_limited_sampling
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    rng = random.Random(11)
    trace_ids = [rng.getrandbits(128) for _ in range(3000)]
    # Bursts and pauses, so the rate limiter moves through several sample rates, 100 % included.
    clock = list(
        itertools.accumulate(rng.choices((10_000, 100_000, 5_000_000, 900_000_000), weights=(60, 30, 8, 2), k=3000))
    )
    remote_parent = trace.set_span_in_context(
        NonRecordingSpan(SpanContext(trace_ids[0], 0x1234, is_remote=True, trace_flags=TraceFlags(1)))
    )

    def decisions(make_sampler):
        ticks = iter([0, *clock])
        monkeypatch.setattr(_rate_limited_sampling.time, "time_ns", lambda: next(ticks))
        sampler = make_sampler(_rate_limited_sampling.RateLimitedSampler(5.0))
        return [
            (result.decision, dict(result.attributes or {}) if result.decision.is_sampled() else None)
            for result in (
                sampler.should_sample(remote_parent if i % 7 == 0 else None, trace_id, "tools/call")
                for i, trace_id in enumerate(trace_ids)
            )
        ]

    distro = decisions(lambda sampler: sampler)
    deferred = []
    exact_or_deferred = sampling.SharedRatePercentage.percentage_unless_dropped

    def counted(self, score_percent):
        percentage = exact_or_deferred(self, score_percent)
        deferred.append(percentage is None)
        return percentage

    monkeypatch.setattr(sampling.SharedRatePercentage, "percentage_unless_dropped", counted)
    ours = decisions(sampling.SameDecisionSampler)
    assert ours == distro
    assert sum(deferred) > len(trace_ids) / 3  # most ticks under load took the deferred path, and changed nothing
    sampled = [attributes for decision, attributes in distro if decision.is_sampled()]
    assert 10 < len(sampled) < len(trace_ids)  # both outcomes exercised
    assert {a.get("_MS.sampleRate") for a in sampled} - {None}  # sample rates below 100 % were stamped


def test_decided_spans_record_what_the_distro_sampler_keeps_and_drop_the_rest_as_the_sdk_would(monkeypatch):
    """Sampling decided before a span exists (app.telemetry.sampling.DecidedSpans): a kept message's span is the SDK's, with the
    trace id it was scored on; a dropped one runs under an unsampled span of the right trace, never exported."""
    from azure.monitor.opentelemetry.exporter.export.trace._rate_limited_sampling import RateLimitedSampler

    from app.protocol import Reply

    # A clock 10 us on at every reading: the burst is fast whatever this machine's speed, so that the rate limiter
    # keeps some of it and drops some.
    monkeypatch.setattr(time, "time_ns", itertools.count(time.time_ns(), 10_000).__next__)
    provider = TracerProvider(sampler=RateLimitedSampler(20_000.0))
    exported = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    instrumentation = McpInstrumentation(
        provider, MeterProvider(metric_readers=[InMemoryMetricReader()]), LoggerProvider(), KeptMetrics()
    )
    current: list = []

    async def handler(exchange):
        span = trace.get_current_span()
        current.append((span.get_span_context(), span.is_recording()))
        exchange.method = "tools/call"
        return Reply(200, b"{}")

    rng = random.Random(5)

    def message(i: int) -> dict:
        """Odd messages continue a caller's trace (each its own), even ones start a trace of their own."""
        meta = {key: value for key, value in META.items() if key not in ("traceparent", "tracestate")}
        if i % 2:
            meta["traceparent"] = f"00-{rng.getrandbits(128):032x}-{CALLER_SPAN_ID}-01"
        return {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "whoami", "_meta": meta}}

    current_traceparents: dict[int, str] = {}

    async def drive():
        for i in range(3000):
            sent = message(i)
            if i % 2:
                current_traceparents[i] = sent["params"]["_meta"]["traceparent"].split("-")[1]
            await instrumentation.middleware(Exchange(headers={}, message=sent), handler)

    asyncio.run(drive())
    recorded = {span.context.span_id: span for span in exported.get_finished_spans()}
    assert 0 < len(recorded) < len(current)
    for i, (context, recording) in enumerate(current):
        if i % 2:
            assert f"{context.trace_id:032x}" == current_traceparents[i]
        if recording:
            kept = recorded[context.span_id]
            assert djb2_below(context.trace_id, kept.attributes.get("_MS.sampleRate", 100.0))
            assert (kept.parent is not None) == bool(i % 2)
        else:
            assert context.span_id not in recorded and not context.trace_flags.sampled


def djb2_below(trace_id: int, percentage: float) -> bool:
    return sampling.djb2_sample_score(trace_id) * 100.0 < percentage


# --- installing it: only on the tested exporter, else the distro's own sampler and one warning ----------------------


def _instrumentation_warnings(caplog) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("app.telemetry")
    ]


def test_with_the_tested_exporter_the_distros_sampler_gives_way_to_the_re_implementation(caplog):
    with caplog.at_level(logging.WARNING):
        recorder = Recorder(sampler=RateLimitedSampler(5.0))
    assert isinstance(recorder.instrumentation._tracer.sampler, sampling.DecidedSpans)
    assert _instrumentation_warnings(caplog) == []


def test_an_exporter_internal_that_moved_leaves_the_distros_sampler_one_warning_and_a_serving_app(monkeypatch, caplog):
    from azure.monitor.opentelemetry.exporter.export.trace import _utils

    monkeypatch.delattr(_utils, "_round_down_to_nearest")
    distro = RateLimitedSampler(1e9)  # keeps every span: the message below is recorded by the distro's sampler
    with caplog.at_level(logging.WARNING):
        recorder = Recorder(sampler=distro)
    assert recorder.instrumentation._tracer.sampler is distro
    (warning,) = _instrumentation_warnings(caplog)
    assert f"{_utils.__name__}._round_down_to_nearest: no such name" in warning
    (response,) = recorder.send(tools_call("whoami"))
    assert response.status_code == 200
    (span,) = recorder.finished()
    assert span.name == "tools/call whoami" and span.context.trace_id == int(TRACE_ID, 16)
    assert len(_instrumentation_warnings(caplog)) == 1  # said once, at start-up, not per message


def test_another_exporter_release_leaves_the_distros_sampler_and_one_warning_naming_it(monkeypatch, caplog):
    from importlib import metadata

    installed = metadata.version

    def version(distribution: str) -> str:
        return "1.0.0b99" if distribution == "azure-monitor-opentelemetry-exporter" else installed(distribution)

    monkeypatch.setattr(metadata, "version", version)
    distro = RateLimitedSampler(5.0)
    with caplog.at_level(logging.WARNING):
        recorder = Recorder(sampler=distro)
    assert recorder.instrumentation._tracer.sampler is distro
    (warning,) = _instrumentation_warnings(caplog)
    assert "azure-monitor-opentelemetry-exporter 1.0.0b99 is installed, the tested release is 1.0.0b58" in warning
