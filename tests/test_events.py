"""Structured events (issue 24, item 4): one record per refresh, adoption, write-back, refusal,
fallback and recovery on ``claude_oauth_auth.events``, with secret-free data, through the SDK."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Clock
from fakeapi import FakeAnthropic
from helpers import auth_file_path, write_auth_file
from redis_server import RedisServer
from test_fallback import OUTAGES, create, until_oauth
from test_fleet import seed

from claude_oauth_auth import ClaudeClient, OAuthRefreshError, OAuthTokenManager
from claude_oauth_auth.lifecycle._manager import check_store
from claude_oauth_auth.stores import RedisStore


class Events(logging.Handler):
    """What a program that alerts on events would attach."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def named(self, event: str) -> list[dict[str, Any]]:
        return [r.event_data for r in self.records if getattr(r, "event", None) == event]


@pytest.fixture
def events() -> Iterator[Events]:
    handler = Events()
    logger = logging.getLogger("claude_oauth_auth.events")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def no_secret(events: Events, *secrets: str) -> None:
    text = json.dumps([(r.getMessage(), r.event_data) for r in events.records], default=str)
    for secret in secrets:
        assert secret[:12] not in text and secret[-12:] not in text


def test_a_refresh_and_an_adoption_are_events(
    oauth_env: FakeAnthropic, home: Path, events: Events
) -> None:
    access, refresh = oauth_env.issue_tokens(expires_in=-5)
    path = write_auth_file(auth_file_path(home), access, refresh, expires_in=-5)
    other = OAuthTokenManager(token_file=path)  # holds the expired login too
    client = ClaudeClient(max_retries=0)
    assert create(client).content[0].text
    [refreshed] = events.named("refreshed")
    assert refreshed["store"] == str(path) and refreshed["expires_in"] > 0
    other.get_valid_token()  # finds the rotation in the file: adopts it, no POST
    assert oauth_env.token_posts == 1
    assert events.named("adopted") == [{"store": str(path)}]
    no_secret(events, access, refresh)
    # Nothing reaches the library's main logger twice, and no handler means no output.
    assert not logging.getLogger("claude_oauth_auth.events").propagate


def test_a_refused_refresh_is_an_event(
    oauth_env: FakeAnthropic, home: Path, events: Events
) -> None:
    access, refresh = oauth_env.issue_tokens(expires_in=-5)
    oauth_env.revoke_refresh_token(refresh)
    write_auth_file(auth_file_path(home), access, refresh, expires_in=-5)
    with pytest.raises(OAuthRefreshError):
        OAuthTokenManager().get_valid_token()
    [refused] = events.named("refused")
    assert refused["error"] == "invalid_grant" and refused["status"] == 400
    no_secret(events, access, refresh)


def test_falling_back_and_coming_back_are_events(
    oauth_env: FakeAnthropic,
    home: Path,
    events: Events,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    access, refresh = oauth_env.issue_tokens(expires_in=-5)
    write_auth_file(auth_file_path(home), access, refresh, expires_in=-5)
    key = oauth_env.add_api_key()
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    oauth_env.token_faults.append(OUTAGES["503"])
    client = ClaudeClient(max_retries=0, clock=clock)
    assert client.auth_method == "api_key"
    [fell_back] = events.named("fell_back")
    assert (fell_back["source"], fell_back["to"], fell_back["temporary"]) == (
        "auth_file",
        "api_key_env",
        True,
    )
    until_oauth(client, oauth_env, clock)
    assert events.named("recovered") == [{"source": "auth_file"}]
    no_secret(events, access, refresh, key)


def test_a_login_written_back_after_lost_data_is_an_event(
    redis_server: RedisServer, oauth_env: FakeAnthropic, events: Events
) -> None:
    tokens = seed(redis_server.url, oauth_env, expires_in=3600)
    store = RedisStore(redis_server.url)
    manager = OAuthTokenManager(store=store)
    redis_server.flushall()
    check_store(manager)
    assert events.named("written_back") == [{"store": store.location, "why": "lost data"}]
    no_secret(events, tokens.access_token, tokens.refresh_token or "")
