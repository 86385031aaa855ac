"""The refresh grant against a misbehaving token endpoint: what is kept, what is refused."""

from __future__ import annotations

import email.utils
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Clock
from fakeapi import FakeAnthropic, Fault
from helpers import read_json, skip_backoff, write_auth_file

from claude_oauth_auth import OAuthTokenManager, TokenRefreshError
from claude_oauth_auth._tokens import Secret
from claude_oauth_auth.lifecycle._grant import PartialAnswer, request_refresh, retry_after_seconds


@pytest.fixture
def token_path(home: Path) -> Path:
    return home / ".config" / "claude" / "auth.json"


def expired_login(server: FakeAnthropic, path: Path) -> tuple[str, str]:
    access, refresh = server.issue_tokens(expires_in=-5)
    write_auth_file(path, access, refresh, expires_in=-5)
    return access, refresh


def odd_answer(server: FakeAnthropic, spent: str, **fields: Any) -> tuple[str, str]:
    """Queue a 200 that rotates ``spent`` into a real new pair, with odd other fields."""
    access, refresh = server.issue_tokens()
    server.revoke_refresh_token(spent)  # as a real rotation does: the old one is spent
    body: dict[str, Any] = {"access_token": access, "refresh_token": refresh, **fields}
    server.token_faults.append(Fault(200, {k: v for k, v in body.items() if v is not None}))
    return access, refresh


ODD_EXPIRIES = {
    "missing": None,
    "negative": -60,
    "zero": 0,
    "absurd": 10**12,
    "a_word": "soon",
    "a_list": [3600],
    "nan_text": "NaN",
}


@pytest.mark.parametrize("case", sorted(ODD_EXPIRIES))
def test_a_rotation_with_an_odd_expires_in_is_saved_and_refreshed_at_next_use(
    case: str, server: FakeAnthropic, token_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, spent = expired_login(server, token_path)
    new_access, new_refresh = odd_answer(server, spent, expires_in=ODD_EXPIRIES[case])
    manager = OAuthTokenManager(token_file=token_path, token_url=server.token_url)
    with caplog.at_level(logging.WARNING, logger="claude_oauth_auth"):
        assert manager.get_valid_token() == new_access  # usable for this request
    saved = read_json(token_path)
    assert saved["refresh_token"] == new_refresh and saved["access_token"] == new_access
    assert saved["token_expiry"] <= time.time()  # unknown expiry: due, not valid forever
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "expires_in" in messages and new_refresh not in messages and new_access not in messages
    # The next use refreshes with the saved refresh token: the login is alive.
    assert manager.get_valid_token() not in (new_access, "")
    assert server.token_posts == 2 and server.invalid_grants == 0
    assert read_json(token_path)["token_expiry"] > time.time() + 3000


@pytest.mark.parametrize(
    "access_field", [None, "", "   ", 42, "sk-ant-oat01-line\r\nX-Injected: 1"], ids=repr
)
def test_a_rotation_without_a_usable_access_token_saves_the_new_refresh_token_first(
    access_field: Any, server: FakeAnthropic, token_path: Path, clock: Clock
) -> None:
    old_access, spent = expired_login(server, token_path)
    _, new_refresh = odd_answer(server, spent, expires_in=3600)
    server.token_faults[-1].body = {"refresh_token": new_refresh, "expires_in": 3600}
    if access_field is not None:
        server.token_faults[-1].body["access_token"] = access_field  # type: ignore[index]
    manager = OAuthTokenManager(token_file=token_path, token_url=server.token_url, clock=clock)
    with pytest.raises(TokenRefreshError, match="new refresh token it sent was saved") as caught:
        manager.get_valid_token()
    assert new_refresh not in str(caught.value)
    saved = read_json(token_path)
    assert saved["refresh_token"] == new_refresh and saved["access_token"] == old_access
    # After the backoff the saved refresh token works: nothing was lost.
    clock.advance(manager.retry_in + 0.01)
    assert manager.get_valid_token() != old_access
    assert server.token_posts == 2 and server.invalid_grants == 0


def test_a_malformed_refresh_token_in_a_200_keeps_the_current_one(
    server: FakeAnthropic, token_path: Path
) -> None:
    _, refresh = expired_login(server, token_path)
    server.rotate_refresh_tokens = False  # the endpoint keeps the refresh token valid
    access = server.issue_tokens()[0]
    server.token_faults.append(
        Fault(200, {"access_token": access, "refresh_token": 7, "expires_in": 3600})
    )
    manager = OAuthTokenManager(token_file=token_path, token_url=server.token_url)
    assert manager.get_valid_token() == access
    assert read_json(token_path)["refresh_token"] == refresh


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_an_error_naming_the_status_and_host_and_is_never_followed(
    status: int, server: FakeAnthropic, token_path: Path
) -> None:
    with FakeAnthropic() as elsewhere:
        _, refresh = expired_login(server, token_path)
        server.token_faults.append(Fault(status, "", headers={"Location": elsewhere.token_url}))
        manager = OAuthTokenManager(token_file=token_path, token_url=server.token_url)
        with pytest.raises(TokenRefreshError) as caught:
            manager.get_valid_token()
        message = str(caught.value)
        assert f"HTTP {status}" in message and "to host 127.0.0.1" in message
        assert refresh not in message
        assert elsewhere.token_posts == 0 and elsewhere.api_requests == []
        assert server.token_posts == 1
        # The refresh token was sent only to the configured URL, and still works there.
        skip_backoff(manager)
        assert manager.get_valid_token()
        assert server.invalid_grants == 0


def test_a_redirect_without_location_says_so(server: FakeAnthropic) -> None:
    server.token_faults.append(Fault(302, ""))
    with pytest.raises(TokenRefreshError, match="redirect without a Location"):
        request_refresh(server.token_url, Secret("sk-ant-ort01-x"), "client", user_agent="t")


def test_a_partial_answer_carries_what_must_be_saved(server: FakeAnthropic) -> None:
    server.token_faults.append(Fault(200, {"refresh_token": "sk-ant-ort01-next"}))
    with pytest.raises(PartialAnswer) as caught:
        request_refresh(server.token_url, Secret("sk-ant-ort01-x"), "client", user_agent="t")
    assert caught.value.tokens.refresh_token == "sk-ant-ort01-next"
    assert "sk-ant-ort01-next" not in repr(caught.value.tokens) + str(caught.value)


def test_retry_after_in_seconds_or_as_a_date_is_capped() -> None:
    now = time.time()
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("1e9") == 300.0  # capped at 5 minutes
    assert retry_after_seconds("-3") == 0.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    date = email.utils.formatdate(now + 42, usegmt=True)
    assert retry_after_seconds(date, now=now) == pytest.approx(42, abs=1)
    past = email.utils.formatdate(now - 42, usegmt=True)
    assert retry_after_seconds(past, now=now) == 0.0


def test_retry_after_as_a_date_schedules_the_next_attempt(
    server: FakeAnthropic, token_path: Path, clock: Clock
) -> None:
    expired_login(server, token_path)
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    server.token_faults.append(Fault(503, "busy", headers={"Retry-After": when}))
    manager = OAuthTokenManager(token_file=token_path, token_url=server.token_url, clock=clock)
    with pytest.raises(TokenRefreshError):
        manager.get_valid_token()
    assert 18 <= manager.retry_in <= 20
    clock.advance(15)
    with pytest.raises(TokenRefreshError, match="backing off"):
        manager.get_valid_token()
    assert server.token_posts == 1
    clock.advance(6)
    assert manager.get_valid_token() and server.token_posts == 2
