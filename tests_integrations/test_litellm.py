"""LiteLLM: a fresh credential for every call, OAuth as a bearer token, never as x-api-key."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import litellm
import pytest
from anthropic.lib.credentials import AccessToken
from conftest import MODEL, PROMPT, Login, assert_sent_api_key, assert_sent_oauth, refreshed_once
from fakeapi import FakeAnthropic, Fault
from helpers import auth_file_path, write_auth_file

from claude_oauth_auth import UnifiedAuthManager
from claude_oauth_auth.integrations import (
    LiteLLMAuth,
    _litellm,
    litellm_acompletion,
    litellm_completion,
    litellm_kwargs,
)

LITELLM_MODEL = f"anthropic/{MODEL}"


@pytest.fixture(autouse=True)
def _fresh_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's HOME is new: forget the process-wide LiteLLMAuth of the last test."""
    monkeypatch.setattr(_litellm, "_default", None)


def call(**extra: Any) -> str:
    reply = litellm.completion(
        **litellm_kwargs(model=LITELLM_MODEL, messages=PROMPT, max_tokens=5, **extra)
    )
    text: str = reply.choices[0].message.content
    assert text == "Hello from fake API"
    return text


def test_api_key(api_key: str, oauth_env: FakeAnthropic) -> None:
    assert litellm_kwargs()["api_key"] == api_key
    call()
    assert_sent_api_key(oauth_env, api_key)


def test_oauth(oauth: Login) -> None:
    call()
    assert_sent_oauth(oauth.server, oauth.access_token)


def test_token_expired_mid_session(short_oauth: Login) -> None:
    call()
    short_oauth.wait_until_expired()
    call()
    refreshed_once(short_oauth.server, short_oauth)
    assert_sent_oauth(short_oauth.server)


def test_caller_headers_and_betas_are_kept(oauth: Login) -> None:
    call(extra_headers={"anthropic-beta": "context-1m-2025-08-07", "x-trace": "abc"})
    with oauth.server.lock:
        record = oauth.server.api_requests[-1]
    assert record.headers["x-trace"] == "abc"
    assert {"context-1m-2025-08-07", "oauth-2025-04-20"} <= set(record.betas)
    assert_sent_oauth(oauth.server)


def test_completion_refreshes_and_resends_a_refused_token(oauth: Login) -> None:
    auth = LiteLLMAuth()
    auth.completion(model=LITELLM_MODEL, messages=PROMPT, max_tokens=5)
    oauth.server.revoke_access_token(oauth.access_token)
    reply = auth.completion(model=LITELLM_MODEL, messages=PROMPT, max_tokens=5)
    assert reply.choices[0].message.content == "Hello from fake API"
    refreshed_once(oauth.server, oauth)
    assert_sent_oauth(oauth.server)


def test_async_completion_after_expiry(short_oauth: Login) -> None:
    async def main() -> list[str]:
        first = await litellm_acompletion(model=LITELLM_MODEL, messages=PROMPT, max_tokens=5)
        short_oauth.wait_until_expired()
        replies = await asyncio.gather(
            *(
                litellm_acompletion(model=LITELLM_MODEL, messages=PROMPT, max_tokens=5)
                for _ in range(4)
            )
        )
        return [reply.choices[0].message.content for reply in (first, *replies)]

    assert asyncio.run(main()) == ["Hello from fake API"] * 5
    refreshed_once(short_oauth.server, short_oauth)
    assert_sent_oauth(short_oauth.server)


def test_falls_back_to_the_api_key_when_the_login_is_dead(
    short_oauth: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = short_oauth.server.add_api_key()
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    litellm_completion(model=LITELLM_MODEL, messages=PROMPT, max_tokens=5)
    short_oauth.server.revoke_refresh_token(short_oauth.refresh_token)
    short_oauth.wait_until_expired()
    reply = litellm_completion(model=LITELLM_MODEL, messages=PROMPT, max_tokens=5)
    assert reply.choices[0].message.content == "Hello from fake API"
    with short_oauth.server.lock:
        last = short_oauth.server.api_requests[-1]
    assert last.token == key and last.auth_kind == "api_key"
    assert "x-api-key" in last.headers


def test_shared_manager(oauth: Login) -> None:
    manager = UnifiedAuthManager()
    auth = LiteLLMAuth(manager)
    assert auth.auth_manager is manager
    assert litellm_kwargs(auth=auth)["api_key"] == oauth.access_token
    assert "sk-ant" not in repr(auth)


def test_claude_code_only_token_falls_back_to_the_api_key(
    oauth_env: FakeAnthropic, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    access, refresh = oauth_env.issue_tokens(claude_code_only=True)
    write_auth_file(auth_file_path(home), access, refresh)
    key = oauth_env.add_api_key()
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    reply = litellm_completion(model=LITELLM_MODEL, messages=PROMPT, max_tokens=5)
    assert reply.choices[0].message.content == "Hello from fake API"
    with oauth_env.lock:
        statuses = [(record.auth_kind, record.status) for record in oauth_env.api_requests]
    assert statuses == [("oauth", 400), ("api_key", 200)]


def test_any_sdk_provider(oauth_env: FakeAnthropic) -> None:
    access, _ = oauth_env.issue_tokens()
    calls: list[bool] = []

    def provider(*, force_refresh: bool = False) -> AccessToken:
        calls.append(force_refresh)
        return AccessToken(token=access, expires_at=0)

    auth = LiteLLMAuth(UnifiedAuthManager(credentials=provider))
    auth.completion(model=LITELLM_MODEL, messages=PROMPT, max_tokens=5)
    assert calls == [False]
    assert_sent_oauth(oauth_env, access)


def test_a_bearer_litellm_would_send_as_x_api_key_is_refused(
    oauth_env: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "gateway-token-1234")
    with pytest.raises(ValueError, match="x-api-key") as caught:
        litellm_kwargs()
    assert "gateway-token" not in str(caught.value)


def _last(server: FakeAnthropic) -> tuple[str, str | None]:
    with server.lock:
        record = server.api_requests[-1]
    return record.auth_kind, record.token


def test_an_outage_with_an_expired_token_falls_back_then_returns_to_oauth(
    short_oauth: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = short_oauth.server
    key = server.add_api_key()
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    litellm_completion(model=LITELLM_MODEL, messages=PROMPT, max_tokens=5)
    assert _last(server) == ("oauth", short_oauth.access_token)
    short_oauth.wait_until_expired()
    server.token_faults.append(Fault(503, {"error": "overloaded"}, headers={"Retry-After": "1"}))
    litellm_completion(model=LITELLM_MODEL, messages=PROMPT, max_tokens=5)
    assert _last(server) == ("api_key", key)  # the endpoint is down: the key, not an error
    time.sleep(1.1)  # the endpoint is back and the retry is due
    litellm_completion(model=LITELLM_MODEL, messages=PROMPT, max_tokens=5)
    kind, token = _last(server)
    assert kind == "oauth" and token != short_oauth.access_token
    assert server.token_posts == 2 and server.invalid_grants == 0


def test_a_dead_login_falls_back_to_an_oauth_token_below_it(
    short_oauth: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = short_oauth.server
    long_lived, _ = server.issue_tokens(expires_in=3600)
    monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", long_lived)
    litellm_completion(model=LITELLM_MODEL, messages=PROMPT, max_tokens=5)
    server.revoke_refresh_token(short_oauth.refresh_token)
    short_oauth.wait_until_expired()
    litellm_completion(model=LITELLM_MODEL, messages=PROMPT, max_tokens=5)
    assert _last(server) == ("oauth", long_lived)
    assert_sent_oauth(server)
