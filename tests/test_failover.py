"""The failover object on its own: which credential is in use, and its retries of the primary
on an injected clock (no sleeps). Scenarios through the real clients: ``test_fallback.py``."""

from __future__ import annotations

import pytest
from conftest import Clock

from claude_oauth_auth import TokenRefreshError, _clock
from claude_oauth_auth.cascade._credential import Credential, SourceReports
from claude_oauth_auth.cascade._failover import Failover

SOURCES = ("auth_file", "api_key_env")
PRIMARY_SOURCE = object()  # what gives the primary's OAuth tokens: never called here


@pytest.fixture
def primary(monkeypatch: pytest.MonkeyPatch) -> Credential:
    """An OAuth primary from auth_file, with an API key below it in the cascade."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-failover-test")
    return Credential("oauth", "auth_file")


def failover(primary: Credential, clock: Clock | None) -> Failover:
    return Failover(
        primary,
        PRIMARY_SOURCE,
        sources=SOURCES,
        reports=SourceReports(("explicit", *SOURCES)),
        settings={},
        token_source_for=lambda credential: None,
        clock=clock,
    )


def test_a_temporary_failure_moves_to_the_key_and_tries_the_primary_after_1_2_4_s(
    primary: Credential, clock: Clock
) -> None:
    shared = failover(primary, clock)
    assert shared.active_credential is primary and shared.active_token_source is PRIMARY_SOURCE

    following = shared.fail_over(primary, "503", temporary=True)

    assert following is not None and following.kind == "api_key"
    assert shared.active_credential is following and shared.active_token_source is None
    assert shared.fallback is not None and shared.fallback.temporary
    for wait in (1.0, 2.0, 4.0):
        clock.advance(wait - 0.01)
        assert not shared.probe_due()
        clock.advance(0.01)
        assert shared.probe_due()
        assert shared.start_probe()
        assert not shared.start_probe()  # one caller at a time
        shared.finish_probe(TokenRefreshError("still 503"))
    clock.advance(8.0)
    assert shared.start_probe()
    shared.finish_probe(None)
    assert shared.fallback is None and shared.active_credential is primary


def test_retry_after_sets_the_first_retry(primary: Credential, clock: Clock) -> None:
    shared = failover(primary, clock)
    shared.fail_over(primary, "429", temporary=True, retry_after=30.0)
    clock.advance(29.9)
    assert not shared.probe_due()
    clock.advance(0.1)
    assert shared.probe_due()


def test_a_permanent_failure_is_never_retried(primary: Credential, clock: Clock) -> None:
    shared = failover(primary, clock)
    shared.fail_over(primary, "refused")
    clock.advance(3600.0)
    assert shared.fallback is not None and not shared.probe_due()


def test_without_a_clock_the_retries_read_the_package_clock(
    primary: Credential, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [100.0]
    monkeypatch.setattr(_clock, "monotonic", lambda: now[0])
    shared = failover(primary, None)
    shared.fail_over(primary, "503", temporary=True)
    assert not shared.probe_due()
    now[0] += 1.0
    assert shared.probe_due()
