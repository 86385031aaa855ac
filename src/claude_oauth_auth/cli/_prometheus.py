"""``/metrics`` of ``keep-fresh --health-port``: our OpenTelemetry instruments in Prometheus text.

Through OpenTelemetry's maintained exporter (``opentelemetry-exporter-prometheus``'s
``PrometheusMetricReader``, on ``prometheus_client``), so the instruments are defined once,
in ``_otel``, and the text is ``prometheus_client``'s, not ours. Needs the ``health`` extra;
without it ``/metrics`` answers 501 with the command that installs it (``_install``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from .._install import install_hint

__all__ = ["Exposition", "prometheus_exposition"]

SERVICE_NAME = "claude-oauth-auth keep-fresh"


@dataclass(frozen=True)
class Exposition:
    """``render()`` gives the page and its content type; None with ``unavailable`` instead."""

    render: Callable[[], tuple[bytes, str]] | None
    unavailable: str = ""


def prometheus_exposition() -> Exposition:
    """Set up the global ``MeterProvider`` with a Prometheus reader, unless one is set already
    (``OTEL_PYTHON_METER_PROVIDER``, or ``opentelemetry-instrument``): its exporters win."""
    try:
        from opentelemetry import metrics
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.resources import Resource
        from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
    except ImportError:
        return Exposition(
            None,
            "/metrics needs the health extra (OpenTelemetry's SDK and Prometheus exporter): "
            + install_hint("health"),
        )
    metrics.get_meter_provider()  # loads one named by OTEL_PYTHON_METER_PROVIDER, if any
    reader = PrometheusMetricReader()
    named = {"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"} & set(os.environ)
    resource = Resource.create({} if named else {"service.name": SERVICE_NAME})
    provider = MeterProvider(metric_readers=[reader], resource=resource)
    metrics.set_meter_provider(provider)
    if metrics.get_meter_provider() is not provider:
        provider.shutdown()  # unregisters the reader from prometheus_client's registry
        return Exposition(
            None,
            "/metrics is off: an OpenTelemetry MeterProvider was configured before keep-fresh "
            "started; the metrics go to its exporters",
        )

    def render() -> tuple[bytes, str]:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST

    return Exposition(render)
