"""``keep-fresh --health-port``'s ``/metrics`` (issue 24, item 3): our instruments in Prometheus
text through OpenTelemetry's exporter, parsed with ``prometheus_client``'s own parser."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from fakeapi import FakeAnthropic
from helpers import auth_file_path, write_auth_file
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from test_keep_fresh import Sidecar, wait_for


def families(url: str) -> dict[str, Metric]:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain")
        text = answer.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def refreshes(url: str) -> float:
    family = families(url).get("claude_oauth_auth_refresh_duration_seconds")
    counts = [s.value for s in family.samples if s.name.endswith("_count")] if family else []
    return sum(counts)


def test_metrics_is_prometheus_text_with_our_instruments(
    oauth_env: FakeAnthropic, home: Path
) -> None:
    access, refresh = oauth_env.issue_tokens(expires_in=30)
    write_auth_file(auth_file_path(home), access, refresh, expires_in=30)
    sidecar = Sidecar("--ahead", "60", "--jitter", "1", "--health-port", "0")
    try:
        url = sidecar.health_url()
        wait_for(lambda: refreshes(url) == 1)
        found = families(url)
    finally:
        code, stderr = sidecar.stop()
    assert code == 0, stderr
    assert not any("note:" in line for line in sidecar.lines)

    duration = found["claude_oauth_auth_refresh_duration_seconds"]
    assert duration.type == "histogram"
    [count] = [s for s in duration.samples if s.name.endswith("_count")]
    assert count.value == 1
    assert count.labels["claude_oauth_auth_refresh_outcome"] == "success"
    assert count.labels["claude_oauth_auth_store_kind"] == "file"
    assert count.labels["http_response_status_code"] == "200"
    [total] = [s for s in duration.samples if s.name.endswith("_sum")]
    assert 0 < total.value < 10

    expiry = found["claude_oauth_auth_token_time_to_expiry_seconds"]
    assert expiry.type == "gauge"
    [left] = expiry.samples
    assert 3000 < left.value <= 3600  # the new token's (the fake grants an hour)

    waits = found["claude_oauth_auth_lock_wait_time_seconds"]
    assert [s.value for s in waits.samples if s.name.endswith("_count")] == [1]
    text = repr(found)
    assert access[-8:] not in text and refresh[-8:] not in text
