"""The duration histogram: the SDK histogram's points for the same measurements, none lost to a collection."""

from __future__ import annotations

import random
import threading

import pytest
from opentelemetry.sdk.metrics import Histogram as SdkHistogram
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from app import telemetry
from app.telemetry import histogram
from tests.app.telemetry.recording import KeptMetrics, data_points, threads_interleaving_at_almost_every_bytecode


def test_the_duration_histogram_exports_what_the_sdk_histogram_aggregates():
    """Same points as the SDK's explicit-bucket histogram (delta, the same bounds) for the same measurements: count,
    sum, min, max and bucket counts per attribute set, each interval holding only what came after the last; and
    every point carries the resource's region."""
    sdk_reader = InMemoryMetricReader(preferred_temporality={SdkHistogram: AggregationTemporality.DELTA})
    sdk_histogram = (
        MeterProvider(metric_readers=[sdk_reader])
        .get_meter("reference")
        .create_histogram("d", unit="s", explicit_bucket_boundaries_advisory=histogram._DURATION_BUCKETS_S)
    )
    exported = KeptMetrics()
    ours = histogram.DurationHistogram(exported, Resource.create({"cloud.region": "northeurope"}))
    rng = random.Random(7)
    keys = [("tools/call", "echo", None), ("tools/call", "nope", "-32602"), ("tools/list", None, None)]
    on_a_bound_or_past_the_last = (0.01, 0.05, 300.0, 999.0)

    def interval(n: int) -> tuple[dict, dict]:
        for _ in range(n):
            key = rng.choice(keys)
            seconds = rng.choice(on_a_bound_or_past_the_last) if rng.random() < 0.2 else rng.expovariate(40)
            ours.add(seconds, *key)
            sdk_histogram.record(seconds, histogram._duration_attributes({"cloud.region": "northeurope"}, *key))
        ours.on_collect(None)
        sdk_points = data_points([sdk_reader.get_metrics_data()], "d")
        our_points = exported.points(telemetry.METRIC_OPERATION_DURATION)
        exported.exported.clear()
        return {frozenset(p.attributes.items()): p for p in our_points}, {
            frozenset(p.attributes.items()): p for p in sdk_points
        }

    for n in (500, 40):
        got, expected = interval(n)
        assert got.keys() == expected.keys()
        for key, point in got.items():
            reference = expected[key]
            assert (point.count, point.min, point.max, list(point.bucket_counts)) == (
                reference.count, reference.min, reference.max, list(reference.bucket_counts)
            )  # fmt: skip
            assert point.sum == pytest.approx(reference.sum, rel=1e-12)
            assert tuple(point.explicit_bounds) == tuple(reference.explicit_bounds)
    ours.on_collect(None)
    assert exported.exported == []  # an interval without messages exports nothing


def test_no_measurement_is_lost_to_a_collection_running_meanwhile(monkeypatch):
    """Measurements are queued without a lock and folded in batches: a collection on the reader's thread, at any
    moment, takes each of them exactly once."""
    monkeypatch.setattr(histogram.DurationHistogram, "FOLD_EVERY", 2_000)  # long folds: more to race with
    exported = KeptMetrics()
    ours = histogram.DurationHistogram(exported, TracerProvider().resource)
    total, adding = 100_000, threading.Event()

    def add_all():
        adding.set()
        for _ in range(total):
            ours.add(0.001, "tools/call", "whoami", None)

    adder = threading.Thread(target=add_all)
    with threads_interleaving_at_almost_every_bytecode():
        adder.start()
        adding.wait()
        while adder.is_alive():
            ours.on_collect(None)
        adder.join()
    ours.on_collect(None)
    counts = [point.count for point in exported.points(telemetry.METRIC_OPERATION_DURATION)]
    assert sum(counts) == total
    assert len(counts) > 2  # collections did run while measurements were being added
