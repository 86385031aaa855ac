"""Fixtures for the OpenTelemetry tests: tests/conftest.py's, plus in-memory readers.

These tests need the SDK and the Prometheus exporter (``pip install -e
'.[keyring,otel,health]'``) and run in their own venv (``.ci/run`` makes
``.venv-observability``), so that the core install and [dev] stay free of them. The global
providers are set once, here, before any manager is built: OpenTelemetry allows one per
process. The metric reader uses delta temporality, so each collection holds only what
happened since the previous one (``metrics`` collects once before each test).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

TESTS = Path(__file__).resolve().parent.parent / "tests"
_spec = importlib.util.spec_from_file_location("_shared_conftest", TESTS / "conftest.py")
assert _spec is not None and _spec.loader is not None
_shared = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_shared)

home = _shared.home
server = _shared.server
oauth_env = _shared.oauth_env
clock = _shared.clock
Clock = _shared.Clock

DELTA = AggregationTemporality.DELTA
READER = InMemoryMetricReader(preferred_temporality={Counter: DELTA, Histogram: DELTA})
SPANS = InMemorySpanExporter()
metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))
_tracer_provider = TracerProvider()
_tracer_provider.add_span_processor(SimpleSpanProcessor(SPANS))
trace.set_tracer_provider(_tracer_provider)


@dataclass(frozen=True)
class Point:
    """One data point of one of our instruments, as the SDK reader collected it."""

    name: str
    unit: str
    attributes: dict[str, Any]
    value: float | None  # a counter's sum or a gauge's value
    count: int | None  # a histogram's count
    total: float | None  # a histogram's sum


class Collected:
    """What our instruments recorded since the previous collection."""

    def __init__(self) -> None:
        self.points: list[Point] = []

    def collect(self) -> list[Point]:
        data = READER.get_metrics_data()
        points: list[Point] = []
        for resource in data.resource_metrics if data is not None else []:
            for scope in resource.scope_metrics:
                if scope.scope.name != "claude_oauth_auth":
                    continue
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        count = getattr(point, "count", None)
                        points.append(
                            Point(
                                metric.name,
                                metric.unit or "",
                                dict(point.attributes or {}),
                                getattr(point, "value", None),
                                count,
                                getattr(point, "sum", None) if count is not None else None,
                            )
                        )
        self.points = points
        return points

    def named(self, name: str) -> list[Point]:
        """The points of ``name`` (collecting now), skipping histograms' empty delta points."""
        return [
            point
            for point in self.collect()
            if point.name == name and (point.count is None or point.count > 0)
        ]


@pytest.fixture
def recorded() -> Iterator[Collected]:
    """Our instruments' points from this test only; the spans too (``finished_spans``)."""
    collected = Collected()
    collected.collect()  # drop what earlier tests left
    SPANS.clear()
    yield collected


def finished_spans() -> list[ReadableSpan]:
    return [span for span in SPANS.get_finished_spans() if span.name.startswith("claude_oauth")]
