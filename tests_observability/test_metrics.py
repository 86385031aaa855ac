"""Metrics and traces through OpenTelemetry (issue 24, item 2), against the loopback API, read
with the SDK's in-memory reader and span exporter."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Collected, finished_spans
from fakeapi import FakeAnthropic, Fault
from helpers import auth_file_path, write_auth_file
from opentelemetry.trace import SpanKind, StatusCode

from claude_oauth_auth import ClaudeClient, OAuthRefreshError, OAuthTokenManager
from claude_oauth_auth.lifecycle._manager import check_store
from claude_oauth_auth.stores import FileStore

MODEL = "claude-test-1"
PROMPT: Any = [{"role": "user", "content": "hi"}]
UNAVAILABLE = Fault(503, {"error": {"type": "overloaded_error", "message": "later"}})


def expired_login(server: FakeAnthropic, home: Path) -> tuple[Path, str, str]:
    access, refresh = server.issue_tokens(expires_in=-5)
    return write_auth_file(auth_file_path(home), access, refresh, expires_in=-5), access, refresh


def without_secrets(value: Any, *secrets: str) -> None:
    text = json.dumps(value, default=str)
    for secret in secrets:
        assert secret[-8:] not in text


def test_a_refresh_is_timed_counted_and_traced(
    oauth_env: FakeAnthropic, home: Path, recorded: Collected
) -> None:
    path, access, refresh = expired_login(oauth_env, home)
    oauth_env.refresh_latency = 0.3
    manager = OAuthTokenManager(token_file=path)
    new_access = manager.get_valid_token()

    [point] = recorded.named("claude_oauth_auth.refresh.duration")
    assert point.unit == "s"
    assert point.count == 1
    assert point.total is not None and 0.3 <= point.total < 5
    assert point.attributes == {
        "claude_oauth_auth.store.kind": "file",
        "claude_oauth_auth.refresh.outcome": "success",
        "http.response.status_code": 200,
    }
    [span] = finished_spans()
    assert span.name == "claude_oauth_auth.refresh"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes is not None
    assert span.attributes["claude_oauth_auth.refresh.outcome"] == "success"
    assert span.attributes["server.address"] == "127.0.0.1"
    assert span.end_time is not None and span.start_time is not None
    assert (span.end_time - span.start_time) / 1e9 >= 0.3
    without_secrets(dict(span.attributes), access, refresh, new_access)
    without_secrets([p.attributes for p in recorded.points], access, refresh, new_access)


def test_a_refused_refresh_says_so_without_the_token(
    oauth_env: FakeAnthropic, home: Path, recorded: Collected
) -> None:
    path, access, refresh = expired_login(oauth_env, home)
    oauth_env.revoke_refresh_token(refresh)
    manager = OAuthTokenManager(token_file=path)
    with pytest.raises(OAuthRefreshError):
        manager.get_valid_token()

    [point] = recorded.named("claude_oauth_auth.refresh.duration")
    assert point.count == 1
    assert point.attributes["claude_oauth_auth.refresh.outcome"] == "refused"
    assert point.attributes["error.type"] == "invalid_grant"
    assert point.attributes["http.response.status_code"] == 400
    [span] = finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "invalid_grant"
    assert span.events == ()  # no exception text in the trace
    without_secrets(dict(span.attributes or {}), access, refresh)


def test_a_failed_refresh_is_an_outcome_of_its_own(
    oauth_env: FakeAnthropic, home: Path, recorded: Collected
) -> None:
    path, _, _ = expired_login(oauth_env, home)
    oauth_env.token_faults.append(UNAVAILABLE)
    manager = OAuthTokenManager(token_file=path)
    with pytest.raises(Exception, match="503"):
        manager.get_valid_token()
    [point] = recorded.named("claude_oauth_auth.refresh.duration")
    assert point.attributes["claude_oauth_auth.refresh.outcome"] == "failed"
    assert point.attributes["error.type"] == "TokenRefreshError"


def test_a_lock_wait_is_recorded(oauth_env: FakeAnthropic, home: Path, recorded: Collected) -> None:
    path, _, _ = expired_login(oauth_env, home)
    manager = OAuthTokenManager(token_file=path)
    taken, held_for = threading.Event(), 0.4

    def hold_the_lock() -> None:
        with FileStore(path).lock():  # another worker refreshing, say
            taken.set()
            time.sleep(held_for)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    taken.wait(5)
    manager.get_valid_token()
    holder.join()

    [point] = recorded.named("claude_oauth_auth.lock.wait_time")
    assert point.unit == "s"
    assert point.count == 1
    assert point.total is not None and held_for * 0.8 <= point.total < 5
    assert point.attributes == {"claude_oauth_auth.store.kind": "file"}


def test_a_fallback_and_the_recovery_are_counted(
    oauth_env: FakeAnthropic,
    home: Path,
    recorded: Collected,
    clock: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expired_login(oauth_env, home)
    monkeypatch.setenv("ANTHROPIC_API_KEY", oauth_env.add_api_key())
    oauth_env.token_faults.append(Fault(503, UNAVAILABLE.body, headers={"Retry-After": "1"}))
    client = ClaudeClient(max_retries=0, clock=clock)
    assert client.auth_method == "api_key"

    [fallback] = recorded.named("claude_oauth_auth.cascade.fallbacks")
    assert fallback.unit == "{fallback}"
    assert fallback.value == 1
    assert fallback.attributes == {
        "claude_oauth_auth.source": "auth_file",
        "claude_oauth_auth.fallback.source": "api_key_env",
        "claude_oauth_auth.fallback.temporary": True,
    }
    clock.advance(2)
    client.messages.create(model=MODEL, max_tokens=5, messages=PROMPT)  # tries OAuth again
    [recovery] = recorded.named("claude_oauth_auth.cascade.recoveries")
    assert recovery.value == 1
    assert recovery.attributes == {"claude_oauth_auth.source": "auth_file"}


def test_the_held_token_s_time_to_expiry_is_a_gauge(
    oauth_env: FakeAnthropic, home: Path, recorded: Collected
) -> None:
    access, refresh = oauth_env.issue_tokens(expires_in=1800)
    path = write_auth_file(auth_file_path(home), access, refresh, expires_in=1800)
    manager = OAuthTokenManager(token_file=path)
    points = recorded.named("claude_oauth_auth.token.time_to_expiry")
    [point] = [p for p in points if p.attributes == {"claude_oauth_auth.store.kind": "file"}]
    assert point.unit == "s"
    assert point.value is not None and 1790 < point.value <= 1800
    del manager


def test_quota_utilisation_per_window_is_a_gauge(
    oauth_env: FakeAnthropic, home: Path, recorded: Collected
) -> None:
    access, refresh = oauth_env.issue_tokens(expires_in=3600)
    write_auth_file(auth_file_path(home), access, refresh, expires_in=3600)
    client = ClaudeClient(max_retries=0)
    client.messages.create(model=MODEL, max_tokens=5, messages=PROMPT)
    points = recorded.named("claude_oauth_auth.quota.utilization")
    by_window = {
        p.attributes["claude_oauth_auth.quota.window"]: p.value
        for p in points
        if p.attributes["claude_oauth_auth.source"] == "auth_file"
    }
    assert by_window == {"5h": 0.62, "7d": 0.18}
    assert {p.unit for p in points} == {"1"}


def test_an_unreadable_store_is_a_store_error(
    oauth_env: FakeAnthropic, home: Path, recorded: Collected
) -> None:
    access, refresh = oauth_env.issue_tokens(expires_in=3600)
    path = write_auth_file(auth_file_path(home), access, refresh, expires_in=3600)
    manager = OAuthTokenManager(token_file=path)
    path.write_text("{ not json")
    check_store(manager)  # keeps the tokens in memory, and counts the failed read
    [point] = recorded.named("claude_oauth_auth.store.errors")
    assert point.unit == "{error}"
    assert point.value == 1
    assert point.attributes == {
        "claude_oauth_auth.store.kind": "file",
        "claude_oauth_auth.store.operation": "read",
        "error.type": "TokenFileError",
    }


def test_importing_the_package_imports_no_opentelemetry() -> None:
    code = (
        "import sys, claude_oauth_auth\n"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'anthropic'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
