"""The unsampled duration metric, ``mcp.server.operation.duration``, aggregated in process and exported in batches.

Its count is the tool call count whatever the trace sampler keeps, by
method, tool and outcome (`DurationHistogram`).
"""

from __future__ import annotations

import bisect
import collections
import logging
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

from app.contract import ATTR_REGION
from app.telemetry.conventions import ATTR_ERROR_TYPE, ATTR_METHOD, ATTR_TOOL, METRIC_OPERATION_DURATION, SCOPE

logger = logging.getLogger(__name__)

# Bucket boundaries the MCP semantic conventions recommend for operation durations.
_DURATION_BUCKETS_S = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300]
_DURATION_DESCRIPTION = "Duration of MCP requests handled by the server"


class DurationHistogram:
    """The unsampled ``mcp.server.operation.duration`` histogram, aggregated here and exported at each collection.

    Why not the SDK's ``Histogram.record``: it cleans and hashes the point's
    attributes twice and builds a measurement through four layers, per
    message (bench/RESULTS.md has the A/B figures). This keeps, per attribute set, what the SDK's explicit-bucket
    aggregation keeps (count, sum, min, max, bucket counts, same bounds and
    bucket rule), folding measurements in batches (`add`), and hands it to
    the metric exporter as the SDK's own delta ``HistogramDataPoint`` s. The Azure
    Monitor exporter sends, per point, a ``customMetrics`` row with
    valueCount, valueSum, valueMin and valueMax, as before
    (tests/app/telemetry/test_histogram.py compares the points with the SDK's).

    Every point also carries the resource's ``cloud.region``, if it has one:
    the exporter sends resource attributes other than ``service.*`` nowhere, and
    the workbook splits by region.

    Export runs at each collection of the distro's metric reader (`on_collect`
    is an observable instrument's callback, on the reader's thread), so it
    follows the reader's interval and its final collection at shutdown.
    """

    FOLD_EVERY = 64

    def __init__(self, exporter: Any, resource: Any, boundaries: Sequence[float] = _DURATION_BUCKETS_S) -> None:
        from opentelemetry.sdk.metrics.export import AggregationTemporality
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self._exporter = exporter
        self._resource = resource
        region = resource.attributes.get(ATTR_REGION)
        self._fixed_attributes = {ATTR_REGION: region} if region else {}
        self._scope = InstrumentationScope(SCOPE)
        self._delta = AggregationTemporality.DELTA
        self._boundaries = tuple(boundaries)
        self._first_bound = self._boundaries[0] if self._boundaries else math.inf
        self._lock = threading.Lock()
        self._pending: collections.deque[tuple[float, str, str | None, str | None]] = collections.deque()
        # (method, tool, error type) -> [count, sum, min, max, bucket counts]
        self._points: dict[tuple[str, str | None, str | None], list[Any]] = {}
        self._since_ns = time.time_ns()

    def add(self, seconds: float, method: str, tool: str | None, error_type: str | None) -> None:
        """Queue one measurement; every `FOLD_EVERY`, fold the queue into the points.

        No lock per message (the deque's append is atomic): the lock and the
        aggregation run once per `FOLD_EVERY` messages, in a loop whose code
        stays in the cache, where per message their code was cold each time.
        """
        pending = self._pending
        pending.append((seconds, method, tool, error_type))
        if len(pending) >= self.FOLD_EVERY:
            self._lock.acquire()
            try:
                self._fold()
            finally:
                self._lock.release()

    def _fold(self) -> None:
        """The queued measurements into the points (called under the lock), one ``popleft`` at a time, so one
        queued meanwhile is folded now or next time, never lost."""
        pending, points, boundaries, first_bound = self._pending, self._points, self._boundaries, self._first_bound
        next_measurement = pending.popleft
        while pending:
            seconds, method, tool, error_type = next_measurement()
            key = (method, tool, error_type)
            point = points.get(key)
            if point is None:
                point = points[key] = [0, 0.0, seconds, seconds, [0] * (len(boundaries) + 1)]
            point[0] += 1
            point[1] += seconds
            if seconds < point[2]:
                point[2] = seconds
            elif seconds > point[3]:
                point[3] = seconds
            # Most messages take less than the first bound: no call for their bucket.
            point[4][0 if seconds <= first_bound else bisect.bisect_left(boundaries, seconds)] += 1

    def collect(self) -> Any:
        """The points since the last collection as ``MetricsData`` (None if there were none); starts a new interval."""
        from opentelemetry.sdk.metrics.export import (
            Histogram,
            HistogramDataPoint,
            Metric,
            MetricsData,
            ResourceMetrics,
            ScopeMetrics,
        )

        now_ns = time.time_ns()
        with self._lock:
            self._fold()
            points, self._points = self._points, {}
            since_ns, self._since_ns = self._since_ns, now_ns
        if not points:
            return None
        data_points = [
            HistogramDataPoint(
                attributes=_duration_attributes(self._fixed_attributes, method, tool, error_type),
                start_time_unix_nano=since_ns,
                time_unix_nano=now_ns,
                count=count,
                sum=total,
                bucket_counts=buckets,
                explicit_bounds=self._boundaries,
                min=low,
                max=high,
            )
            for (method, tool, error_type), (count, total, low, high, buckets) in points.items()
        ]
        metric = Metric(
            name=METRIC_OPERATION_DURATION,
            description=_DURATION_DESCRIPTION,
            unit="s",
            data=Histogram(data_points=data_points, aggregation_temporality=self._delta),
        )
        return MetricsData([ResourceMetrics(self._resource, [ScopeMetrics(self._scope, [metric], "")], "")])

    def on_collect(self, _options: Any) -> list[Any]:
        data = self.collect()
        if data is not None:
            try:
                self._exporter.export(data)
            except Exception:  # a failed export must not fail the reader's collection of everything else
                logger.exception("exporting %s failed", METRIC_OPERATION_DURATION)
        return []


def _duration_attributes(
    fixed: dict[str, str], method: str, tool: str | None, error_type: str | None
) -> dict[str, str]:
    attributes = {**fixed, ATTR_METHOD: method}
    if tool is not None:
        attributes[ATTR_TOOL] = tool
    if error_type is not None:
        attributes[ATTR_ERROR_TYPE] = error_type
    return attributes
