"""Fallback walks the cascade: what a client does when its OAuth credential stops working.

Scenarios through the real SDK client and the loopback server: a dead login, a token the API
refuses, and an expired token whose endpoint is failing (5xx, 429, a timeout, a reset, an
HTML page) move requests to the next usable source below it, with one WARNING; after a
temporary failure, OAuth comes back once a refresh succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic
import pytest
from conftest import Clock
from fakeapi import OAUTH_BETA, FakeAnthropic, Fault, RecordedRequest
from helpers import auth_file_path, claude_code_path, write_auth_file, write_claude_code_file

from claude_oauth_auth import AsyncClaudeClient, ClaudeClient, TokenRefreshError, UnifiedAuthManager

MODEL = "claude-test-1"
MESSAGES: Any = [{"role": "user", "content": "hi"}]
LOGGER = "claude_oauth_auth"
UNAVAILABLE = {"error": {"type": "overloaded_error", "message": "try later"}}


def create(client: Any) -> Any:
    return client.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES)


def records(server: FakeAnthropic) -> list[RecordedRequest]:
    with server.lock:
        return list(server.api_requests)


def kinds(server: FakeAnthropic) -> list[tuple[str, int]]:
    return [(record.auth_kind, record.status) for record in records(server)]


def logged(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith(LOGGER)
        and record.name != f"{LOGGER}.events"  # the structured twins (test_events)
        and record.levelno == level
    ]


@pytest.fixture
def api_key(oauth_env: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> str:
    key = oauth_env.add_api_key()
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    return key


@pytest.fixture
def expired(oauth_env: FakeAnthropic, home: Path) -> tuple[str, str]:
    """An expired access token in auth.json, with a refresh token the endpoint accepts."""
    access, refresh = oauth_env.issue_tokens(expires_in=-5)
    write_auth_file(auth_file_path(home), access, refresh, expires_in=-5)
    return access, refresh


@pytest.fixture
def dead(oauth_env: FakeAnthropic, home: Path) -> None:
    """An expired token in auth.json whose refresh token the endpoint refuses."""
    access, refresh = oauth_env.issue_tokens(expires_in=-5)
    oauth_env.revoke_refresh_token(refresh)
    write_auth_file(auth_file_path(home), access, refresh, expires_in=-5)


@pytest.fixture
def short_refresh_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The token endpoint's timeout, 30 s as shipped, shortened so a hang costs 0.5 s."""
    monkeypatch.setattr("claude_oauth_auth.lifecycle._grant.REFRESH_TIMEOUT_SECONDS", 0.5)


# Each temporary failure of the token endpoint, as the loopback server plays it.
OUTAGES = {
    "503": Fault(503, UNAVAILABLE, headers={"Retry-After": "1"}),
    "429": Fault(429, {"error": "slow_down"}, headers={"Retry-After": "1"}),
    "timeout": Fault(200, {"access_token": "late"}, delay=2.0),
    "reset": Fault(500, close=True),
    "html": Fault(502, "<html><body>Bad gateway</body></html>", {"Content-Type": "text/html"}),
    "html-200": Fault(200, "<html><body>Sign in</body></html>", {"Content-Type": "text/html"}),
}


def until_oauth(client: Any, server: FakeAnthropic, clock: Clock, limit: float = 15.0) -> int:
    """Send a request every 0.1 s of the client's clock until one goes out over OAuth; how
    many used a key first."""
    deadline = time.monotonic() + limit
    with_key = 0
    while time.monotonic() < deadline:
        before = len(records(server))
        create(client)
        if records(server)[before].auth_kind == "oauth":
            return with_key
        with_key += 1
        clock.advance(0.1)
    raise AssertionError("the client never came back to OAuth")


async def async_until_oauth(
    client: Any, server: FakeAnthropic, clock: Clock, limit: float = 15.0
) -> int:
    deadline = time.monotonic() + limit
    with_key = 0
    while time.monotonic() < deadline:
        before = len(records(server))
        await create(client)
        if records(server)[before].auth_kind == "oauth":
            return with_key
        with_key += 1
        clock.advance(0.1)
        await asyncio.sleep(0)
    raise AssertionError("the client never came back to OAuth")


# ----- an expired token and a failing endpoint: the key meanwhile, then OAuth again -----------


@pytest.mark.parametrize("outage", list(OUTAGES))
def test_outage_uses_the_key_then_comes_back_to_oauth(
    outage: str,
    expired: tuple[str, str],
    api_key: str,
    oauth_env: FakeAnthropic,
    short_refresh_timeout: None,
    caplog: pytest.LogCaptureFixture,
    clock: Clock,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    oauth_env.token_faults.append(OUTAGES[outage])
    # The token is due: the first refresh fails here.
    client = ClaudeClient(max_retries=0, clock=clock)
    assert (client.auth_method, client.auth_source) == ("api_key", "api_key_env")
    for _ in range(3):
        assert create(client).content[0].text == "Hello from fake API"
    assert oauth_env.token_posts == 1  # requests in the outage do not each try a refresh
    until_oauth(client, oauth_env, clock)
    create(client.with_options(timeout=20))
    assert oauth_env.token_posts == 2  # the failed refresh, then the one that worked
    assert (client.auth_method, client.auth_source) == ("oauth", "auth_file")
    seen = kinds(oauth_env)
    assert seen[:3] == [("api_key", 200)] * 3 and seen[-2:] == [("oauth", 200)] * 2
    assert all(status == 200 for _, status in seen)
    warnings = logged(caplog, logging.WARNING)
    assert len(warnings) == 1, warnings
    assert "auth_file" in warnings[0] and "api_key_env" in warnings[0]
    assert "until a refresh succeeds" in warnings[0]
    back = [line for line in logged(caplog, logging.INFO) if "works again" in line]
    assert len(back) == 1 and "auth_file" in back[0] and "api_key_env" in back[0]


@pytest.mark.parametrize("outage", ["503", "reset", "html"])
def test_outage_at_request_time_async(
    outage: str,
    expired: tuple[str, str],
    api_key: str,
    oauth_env: FakeAnthropic,
    caplog: pytest.LogCaptureFixture,
    clock: Clock,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    oauth_env.token_faults.append(OUTAGES[outage])

    async def main() -> int:
        # In a loop: no refresh yet.
        async with AsyncClaudeClient(max_retries=0, clock=clock) as client:
            await create(client)  # refreshes, fails, uses the key
            await asyncio.gather(*(create(client) for _ in range(7)))
            assert client.auth_method == "api_key"
            with_key = await async_until_oauth(client, oauth_env, clock)
            await create(client)
            assert client.auth_source == "auth_file"
            return with_key

    asyncio.run(main())
    seen = kinds(oauth_env)
    assert seen[:8] == [("api_key", 200)] * 8 and seen[-2:] == [("oauth", 200)] * 2
    assert oauth_env.token_posts == 2
    assert len(logged(caplog, logging.WARNING)) == 1
    assert sum("works again" in line for line in logged(caplog, logging.INFO)) == 1


def test_token_expiring_while_the_endpoint_fails(
    api_key: str,
    oauth_env: FakeAnthropic,
    home: Path,
    caplog: pytest.LogCaptureFixture,
    clock: Clock,
) -> None:
    """A client that started on a valid token meets the outage on a later request."""
    caplog.set_level(logging.WARNING, logger=LOGGER)
    access, refresh = oauth_env.issue_tokens()
    write_auth_file(auth_file_path(home), access, refresh)
    client = ClaudeClient(max_retries=0, clock=clock)
    create(client)
    oauth_env.token_faults.append(OUTAGES["503"])
    access, refresh = oauth_env.issue_tokens(expires_in=-5)  # another program wrote it
    write_auth_file(auth_file_path(home), access, refresh, expires_in=-5)
    clock.advance(1.05)  # clients look at the file again at most once a second
    create(client)
    until_oauth(client, oauth_env, clock)
    assert kinds(oauth_env)[:2] == [("oauth", 200), ("api_key", 200)]
    assert oauth_env.token_posts == 2
    assert len(logged(caplog, logging.WARNING)) == 1


def test_refused_token_and_failing_endpoint_use_the_key(
    api_key: str,
    oauth_env: FakeAnthropic,
    home: Path,
    caplog: pytest.LogCaptureFixture,
    clock: Clock,
) -> None:
    """A 401 on a revoked token, and the refresh that should replace it gets a 503."""
    caplog.set_level(logging.WARNING, logger=LOGGER)
    access, refresh = oauth_env.issue_tokens()
    write_auth_file(auth_file_path(home), access, refresh)
    client = ClaudeClient(max_retries=0, clock=clock)
    oauth_env.revoke_access_token(access)
    oauth_env.token_faults.append(OUTAGES["503"])
    assert create(client).content[0].text == "Hello from fake API"
    assert kinds(oauth_env) == [("oauth", 401), ("api_key", 200)]
    until_oauth(client, oauth_env, clock)
    assert oauth_env.token_posts == 2
    assert len(logged(caplog, logging.WARNING)) == 1


def test_a_long_outage_tries_oauth_once_per_backoff_step(
    expired: tuple[str, str],
    api_key: str,
    oauth_env: FakeAnthropic,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """16 threads keep sending through a 3-step outage: one token POST per step, not per
    request; one WARNING for the whole outage."""
    caplog.set_level(logging.WARNING, logger=LOGGER)
    oauth_env.token_faults += [Fault(503, UNAVAILABLE, headers={"Retry-After": "0.5"})] * 3
    client = ClaudeClient(max_retries=0)
    deadline = time.monotonic() + 20

    def keep_sending(_: int) -> int:
        sent = 0
        while client.auth_method != "oauth" and time.monotonic() < deadline:
            create(client)
            sent += 1
        return sent

    with ThreadPoolExecutor(max_workers=16) as pool:
        sent = sum(pool.map(keep_sending, range(16)))
    assert sent > 50
    assert oauth_env.token_posts == 4  # at start, two failed tries, one that worked
    assert client.auth_method == "oauth"
    assert len(logged(caplog, logging.WARNING)) == 1


# ----- a dead login stays on the fallback ----------------------------------------------------


def test_a_dead_login_stays_on_the_key(
    dead: None,
    api_key: str,
    oauth_env: FakeAnthropic,
    caplog: pytest.LogCaptureFixture,
    clock: Clock,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    client = ClaudeClient(max_retries=0, clock=clock)
    create(client)
    clock.advance(1.2)  # past the first retry a temporary failure would get
    create(client)
    assert kinds(oauth_env) == [("api_key", 200)] * 2
    assert (oauth_env.token_posts, oauth_env.invalid_grants) == (1, 1)
    warnings = logged(caplog, logging.WARNING)
    assert len(warnings) == 1 and "refused the refresh token" in warnings[0]
    assert "until a refresh succeeds" not in warnings[0]


def test_outage_then_refused_refresh_stays_on_the_key(
    expired: tuple[str, str],
    api_key: str,
    oauth_env: FakeAnthropic,
    caplog: pytest.LogCaptureFixture,
    clock: Clock,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    oauth_env.token_faults.append(OUTAGES["503"])
    client = ClaudeClient(max_retries=0, clock=clock)
    oauth_env.revoke_refresh_token(expired[1])  # while the endpoint was down, the login died
    clock.advance(1.05)
    create(client)  # this one tries OAuth, which is now refused
    clock.advance(1.2)
    create(client)
    assert kinds(oauth_env) == [("api_key", 200)] * 2
    assert (oauth_env.token_posts, oauth_env.invalid_grants) == (2, 1)
    warnings = logged(caplog, logging.WARNING)
    assert len(warnings) == 2 and "failed for good" in warnings[1]


# ----- the next source below, of any kind ----------------------------------------------------


@pytest.mark.parametrize("asynchronous", [False, True])
def test_dead_auth_file_falls_back_to_claude_code_oauth_token(
    asynchronous: bool,
    dead: None,
    oauth_env: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """OAuth below OAuth: a long-lived CLAUDE_CODE_OAUTH_TOKEN under a dead auth.json."""
    caplog.set_level(logging.WARNING, logger=LOGGER)
    long_lived, _ = oauth_env.issue_tokens(expires_in=365 * 86400)
    monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", long_lived)
    key = oauth_env.add_api_key()
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)  # further down: not used

    if asynchronous:

        async def main() -> tuple[str, str]:
            async with AsyncClaudeClient(max_retries=0) as client:
                await asyncio.gather(*(create(client) for _ in range(3)))
                return client.auth_method, client.auth_source

        method, source = asyncio.run(main())
    else:
        client = ClaudeClient(max_retries=0)
        for _ in range(3):
            create(client)
        method, source = client.auth_method, client.auth_source
    assert (method, source) == ("oauth", "claude_code_env")
    seen = records(oauth_env)
    assert [(r.auth_kind, r.status, r.token) for r in seen] == [("oauth", 200, long_lived)] * 3
    assert all(r.betas == [OAUTH_BETA] for r in seen)
    warnings = logged(caplog, logging.WARNING)
    assert len(warnings) == 1
    assert "auth_file" in warnings[0] and "claude_code_env" in warnings[0]
    assert "OAuth token" in warnings[0]


def test_claude_code_only_refusal_moves_to_the_next_oauth_source(
    oauth_env: FakeAnthropic,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    access, refresh = oauth_env.issue_tokens(claude_code_only=True)
    write_auth_file(auth_file_path(home), access, refresh)
    long_lived, _ = oauth_env.issue_tokens(expires_in=86400)
    monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", long_lived)
    client = ClaudeClient(max_retries=0)
    assert create(client).content[0].text == "Hello from fake API"
    assert [(r.status, r.token) for r in records(oauth_env)] == [(400, access), (200, long_lived)]
    assert client.auth_source == "claude_code_env"
    assert len(logged(caplog, logging.WARNING)) == 1


def test_walks_past_a_second_dead_login_and_an_invalid_variable(
    dead: None,
    oauth_env: FakeAnthropic,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """auth.json dead → Claude Code's file dead too → (ANTHROPIC_AUTH_TOKEN empty: skipped)
    → ANTHROPIC_API_KEY. One WARNING per switch, each naming both ends."""
    caplog.set_level(logging.WARNING, logger=LOGGER)
    access, refresh = oauth_env.issue_tokens(expires_in=-5)
    oauth_env.revoke_refresh_token(refresh)
    write_claude_code_file(claude_code_path(home), access, refresh, expires_in=-5)
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "")
    key = oauth_env.add_api_key()
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    client = ClaudeClient(max_retries=0)
    create(client)
    assert kinds(oauth_env) == [("api_key", 200)]
    assert client.auth_source == "api_key_env"
    assert (oauth_env.token_posts, oauth_env.invalid_grants) == (2, 2)
    warnings = logged(caplog, logging.WARNING)
    switches = [line for line in warnings if "; falling back to the" in line]
    assert len(switches) == 2, warnings
    assert "auth_file" in switches[0] and "claude_code " in switches[0] + " "
    assert "claude_code" in switches[1] and "api_key_env" in switches[1]


def test_the_same_file_twice_is_not_a_fallback(
    dead: None, oauth_env: FakeAnthropic, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CLAUDE_AUTH_FILE naming the dead auth.json: the cascade does not try it again."""
    monkeypatch.setenv("CLAUDE_AUTH_FILE", str(auth_file_path(home)))
    with pytest.raises(anthropic.AuthenticationError):
        ClaudeClient(max_retries=0)
    assert oauth_env.token_posts == 1


# ----- nothing to fall back to ---------------------------------------------------------------


def test_outage_without_a_fallback_is_a_clear_error(
    expired: tuple[str, str],
    oauth_env: FakeAnthropic,
    caplog: pytest.LogCaptureFixture,
    clock: Clock,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    oauth_env.token_faults.append(OUTAGES["503"])  # spent by the refresh at construction
    client = ClaudeClient(max_retries=0, clock=clock)
    assert client.auth_method == "oauth"
    with pytest.raises(TokenRefreshError) as caught:  # backing off: no POST
        create(client)
    assert isinstance(caught.value, anthropic.APIError)  # ours, not wrapped by the SDK
    assert not isinstance(caught.value, anthropic.APIConnectionError)
    error = caught.value
    assert "answered HTTP 503" in str(error) and oauth_env.token_url in str(error)
    assert records(oauth_env) == []
    clock.advance(1.05)
    create(client)  # the endpoint is back
    assert kinds(oauth_env) == [("oauth", 200)]


def test_dead_login_without_a_fallback_is_an_authentication_error(
    dead: None, oauth_env: FakeAnthropic
) -> None:
    with pytest.raises(anthropic.AuthenticationError) as caught:
        ClaudeClient()
    message = str(caught.value)
    assert "refused the refresh token" in message and "ANTHROPIC_API_KEY" in message


# ----- the manager on its own ------------------------------------------------------------------


def test_manager_reports_the_fallback(
    expired: tuple[str, str], api_key: str, oauth_env: FakeAnthropic
) -> None:
    oauth_env.token_faults.append(OUTAGES["503"])
    auth = UnifiedAuthManager()
    assert auth.fallback is not None and auth.fallback.temporary
    assert (auth.credential.source, auth.source) == ("auth_file", "api_key_env")
    assert "503" in (auth.fallback_reason or "")
    states = {report.name: report.state for report in auth.reports}
    assert (states["auth_file"], states["api_key_env"]) == ("available", "used")
    assert api_key not in repr(auth) and api_key not in str(auth.reports)


def test_one_probe_at_a_time(
    expired: tuple[str, str], api_key: str, oauth_env: FakeAnthropic, clock: Clock
) -> None:
    """32 threads arrive together when OAuth may be tried again: one refresh POST."""
    oauth_env.token_faults.append(OUTAGES["503"])
    client = ClaudeClient(max_retries=0, clock=clock)
    oauth_env.refresh_latency = 0.3
    clock.advance(1.05)
    barrier = threading.Barrier(32)

    def one(_: int) -> str:
        barrier.wait()
        return str(create(client).content[0].text)

    with ThreadPoolExecutor(max_workers=32) as pool:
        assert set(pool.map(one, range(32))) == {"Hello from fake API"}
    assert oauth_env.token_posts == 2
    assert client.auth_method == "oauth"
    assert sum(kind == "api_key" for kind, _ in kinds(oauth_env)) >= 1


def test_unreachable_store_with_an_expired_token_uses_the_key(
    redis_server: Any,
    api_key: str,
    oauth_env: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    clock: Clock,
) -> None:
    """Tokens in Redis (CLAUDE_TOKEN_STORE); Redis goes away and the token expires."""
    from claude_oauth_auth.stores import TokenSet
    from claude_oauth_auth.stores._redis import RedisStore

    caplog.set_level(logging.WARNING, logger=LOGGER)
    monkeypatch.setenv("CLAUDE_TOKEN_REFRESH_THRESHOLD", "0")
    access, refresh = oauth_env.issue_tokens(expires_in=1.5)
    tokens = TokenSet(access, refresh, time.time() + 1.5)
    RedisStore(redis_server.url).save(tokens, expected_version=None)
    monkeypatch.setenv("CLAUDE_TOKEN_STORE", redis_server.url)
    client = ClaudeClient(max_retries=0, clock=clock)
    create(client)
    redis_server.stop()
    clock.advance(1.6)
    create(client)
    assert kinds(oauth_env) == [("oauth", 200), ("api_key", 200)]
    assert oauth_env.token_posts == 0  # a refresh token is not spent when it cannot be saved
    switches = [line for line in logged(caplog, logging.WARNING) if "falling back" in line]
    assert len(switches) == 1 and "token_store_env" in switches[0]
    assert "api_key_env" in switches[0]


def test_token_command_prints_the_oauth_fallback(
    dead: None, oauth_env: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`claude-oauth-auth token` gives what a client would send: the OAuth source below."""
    import json
    import os
    import subprocess
    import sys

    long_lived, _ = oauth_env.issue_tokens(expires_in=86400)
    monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", long_lived)
    monkeypatch.setenv("ANTHROPIC_API_KEY", oauth_env.add_api_key())
    result = subprocess.run(
        [sys.executable, "-m", "claude_oauth_auth", "token", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["source"], document["kind"]) == ("claude_code_env", "oauth")
    assert document["token"] == long_lived
    assert oauth_env.token_posts == 1


def write_sdk_profile(home: Path, server: FakeAnthropic, name: str, expires_in: float) -> str:
    """A ``user_oauth`` profile as ``ant auth login`` writes it; returns its access token."""
    from helpers import write_json

    access, refresh = server.issue_tokens(expires_in=expires_in)
    folder = home / ".config" / "anthropic"
    authentication = {"type": "user_oauth", "client_id": "11111111-2222-3333-4444-555555555555"}
    config = {"version": "1.0", "authentication": authentication, "base_url": server.base_url}
    write_json(folder / "configs" / f"{name}.json", config, mode=0o644)
    credentials = {
        "version": "1.0",
        "type": "oauth_token",
        "access_token": access,
        "refresh_token": refresh,
        "expires_at": int(time.time() + expires_in),
    }
    write_json(folder / "credentials" / f"{name}.json", credentials)
    return access


@pytest.mark.parametrize("asynchronous", [False, True])
def test_dead_auth_file_falls_back_to_an_sdk_profile(
    asynchronous: bool,
    dead: None,
    oauth_env: FakeAnthropic,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The SDK's own OAuth (an `ant auth login` profile, expired) below a dead auth.json."""
    caplog.set_level(logging.WARNING, logger=LOGGER)
    write_sdk_profile(home, oauth_env, "work", expires_in=-5)
    monkeypatch.setenv("ANTHROPIC_PROFILE", "work")

    if asynchronous:

        async def main() -> str:
            async with AsyncClaudeClient(max_retries=0) as client:
                await create(client)
                await create(client)
                return client.auth_source

        source = asyncio.run(main())
    else:
        client = ClaudeClient(max_retries=0)
        create(client)
        create(client)
        source = client.auth_source
    assert source == "anthropic_profile"
    seen = records(oauth_env)
    assert [(r.auth_kind, r.status) for r in seen] == [("oauth", 200)] * 2
    assert all(OAUTH_BETA in r.betas for r in seen)
    # One refused refresh of auth.json, one refresh of the profile (then served from memory).
    assert (oauth_env.token_posts, oauth_env.invalid_grants) == (2, 1)
    switches = [line for line in logged(caplog, logging.WARNING) if "falling back" in line]
    assert len(switches) == 1
    assert "auth_file" in switches[0] and "anthropic_profile" in switches[0]
