"""Token check: what our provider costs per request when the token is fresh.

``manager(force_refresh=False)`` is what the SDK calls before every request (we return
``expires_at=0``). A fresh token is served from memory: one clock read and a comparison,
returning a cached ``AccessToken``; the store is looked at only when its poll interval has
passed (once a second for a file), so the median is the memory path. Measured in batches (the
timer's own cost is negligible per batch); reported as the median over batches of the per-call
time, in microseconds, beside the SDK's own ``StaticToken`` and as a ratio to it.

For scale: ``get_valid_token()`` (what ``ClaudeClient``'s auth flow calls) and a bare
``os.stat`` (what each request cost before the storage seam).

``--metrics`` measures it with metrics and traces on: an OpenTelemetry SDK ``MeterProvider``
(with a reader) and ``TracerProvider`` set before the manager is built, so our instruments
are live; it needs the SDK (``pip install -e '.[otel,health]'``). The result says
``"metrics": true`` and that the instruments were made.

Usage: python benchmarks/token_check.py [--batches 300] [--batch-size 1000] [--metrics]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import _harness


def per_call_seconds(call: Callable[[], Any], batch_size: int) -> float:
    """Mean time per call over one batch of ``batch_size`` calls."""
    loop = range(batch_size)
    start = time.perf_counter()
    for _ in loop:
        call()
    return (time.perf_counter() - start) / batch_size


def metrics_on() -> None:
    """Global OpenTelemetry SDK providers, as a program exporting our metrics would set."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    trace.set_tracer_provider(TracerProvider())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--metrics", action="store_true", help="with an OpenTelemetry SDK set up")
    options = parser.parse_args()
    if options.metrics:
        metrics_on()

    from anthropic.lib.credentials import StaticToken

    from claude_oauth_auth import OAuthTokenManager

    with _harness.isolated_home() as home:
        token_file = home / ".config" / "claude" / "auth.json"
        access = "sk-ant-oat01-" + "a" * 90
        refresh = "sk-ant-ort01-" + "b" * 90
        _harness.write_our_token_file(token_file, access, refresh, expires_in=7200)
        manager = OAuthTokenManager(
            token_file=token_file, token_url="https://platform.claude.com/v1/oauth/token"
        )
        static = StaticToken(access)

        def provider_call() -> Any:
            return manager(force_refresh=False)

        candidates: dict[str, Callable[[], Any]] = {
            "manager(force_refresh=False)": provider_call,
            "manager.get_valid_token()": manager.get_valid_token,
            "sdk StaticToken()": static,
            "os.stat(token_file)": lambda: os.stat(token_file),
        }
        assert provider_call().token == access
        from claude_oauth_auth import _telemetry

        instruments = _telemetry.active() is not None
        for call in candidates.values():  # warm up
            per_call_seconds(call, options.batch_size)
        samples: dict[str, list[float]] = {name: [] for name in candidates}
        for _ in range(options.batches):  # interleaved: load hits every candidate alike
            for name, call in candidates.items():
                samples[name].append(per_call_seconds(call, options.batch_size))

    results = {name: _harness.describe(values, 1e6, 2) for name, values in samples.items()}
    _harness.emit(
        {
            "benchmark": "token_check",
            "unit": "microseconds per call",
            "batches": options.batches,
            "batch_size": options.batch_size,
            "results": results,
            "provider_call_median_us": results["manager(force_refresh=False)"]["median"],
            "ratio_to_static_token": round(
                results["manager(force_refresh=False)"]["median"]
                / results["sdk StaticToken()"]["median"],
                2,
            ),
            "target_us": 2.0,
            "metrics": options.metrics,
            "instruments": instruments,
            "machine": _harness.machine(),
        }
    )


if __name__ == "__main__":
    main()
