"""OAuthTokenManager against the loopback token endpoint: refresh, rotation, saving, failures."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import time
from pathlib import Path
from typing import Any

import anthropic
import pytest
from conftest import Clock
from fakeapi import FakeAnthropic, Fault
from helpers import read_json, write_auth_file, write_claude_code_file

from claude_oauth_auth import OAuthRefreshError, OAuthTokenManager, TokenRefreshError
from claude_oauth_auth.lifecycle._manager import default_token_file

MODEL = "claude-test-1"


def ask(manager: Any, server: FakeAnthropic) -> str:
    client = anthropic.Anthropic(credentials=manager, base_url=server.base_url, max_retries=0)
    message = client.messages.create(
        model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    block = message.content[0]
    assert block.type == "text"
    return block.text


@pytest.fixture
def token_path(home: Path) -> Path:
    return home / ".config" / "claude" / "auth.json"


def manager_for(path: Path, server: FakeAnthropic, **options: Any) -> OAuthTokenManager:
    return OAuthTokenManager(token_file=path, token_url=server.token_url, **options)


def test_expired_token_one_post_saved_0600_request_succeeds(
    server: FakeAnthropic, token_path: Path
) -> None:
    access, refresh = server.issue_tokens(expires_in=-10)
    write_auth_file(token_path, access, refresh, expires_in=-10)
    manager = manager_for(token_path, server)
    assert ask(manager, server)
    assert server.token_posts == 1 and server.invalid_grants == 0
    saved = read_json(token_path)
    assert saved["access_token"] == manager.access_token != access
    assert saved["refresh_token"] == manager.refresh_token != refresh
    assert saved["token_expiry"] > time.time() + 3000
    assert stat.S_IMODE(os.stat(token_path).st_mode) == 0o600
    assert server.token_requests[0] == {
        "grant_type": "refresh_token",
        "refresh_token": refresh,
        "client_id": manager.client_id,
    }
    assert server.api_requests[-1].auth_kind == "oauth"
    assert "oauth-2025-04-20" in server.api_requests[-1].betas


def test_token_with_120_seconds_left_is_refreshed_before_use(
    server: FakeAnthropic, token_path: Path
) -> None:
    access, refresh = server.issue_tokens(expires_in=120)
    write_auth_file(token_path, access, refresh, expires_in=120)
    manager = manager_for(token_path, server)
    token = manager.get_valid_token()
    assert token != access and server.token_posts == 1


def test_fresh_token_makes_no_post(server: FakeAnthropic, token_path: Path) -> None:
    access, refresh = server.issue_tokens()
    write_auth_file(token_path, access, refresh)
    manager = manager_for(token_path, server)
    for _ in range(5):
        ask(manager, server)
    assert server.token_posts == 0
    assert manager.is_token_valid() and not manager.needs_refresh()


def test_threshold_from_argument_and_environment(
    server: FakeAnthropic, token_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    access, refresh = server.issue_tokens(expires_in=600)
    write_auth_file(token_path, access, refresh, expires_in=600)
    assert manager_for(token_path, server).get_valid_token() == access
    monkeypatch.setenv("CLAUDE_TOKEN_REFRESH_THRESHOLD", "900")
    assert manager_for(token_path, server).get_valid_token() != access
    assert server.token_posts == 1
    monkeypatch.setenv("CLAUDE_TOKEN_REFRESH_THRESHOLD", "soon")
    with pytest.raises(ValueError, match="CLAUDE_TOKEN_REFRESH_THRESHOLD"):
        manager_for(token_path, server)


def test_old_refresh_token_kept_when_none_returned(server: FakeAnthropic, token_path: Path) -> None:
    server.rotate_refresh_tokens = False
    access, refresh = server.issue_tokens(expires_in=-1)
    write_auth_file(token_path, access, refresh, expires_in=-1)
    manager = manager_for(token_path, server)
    manager.get_valid_token()
    assert read_json(token_path)["refresh_token"] == refresh


def test_forced_refresh_and_public_refresh(server: FakeAnthropic, token_path: Path) -> None:
    access, refresh = server.issue_tokens()
    write_auth_file(token_path, access, refresh)
    manager = manager_for(token_path, server)
    new = manager.refresh()
    assert new != access and server.token_posts == 1
    assert read_json(token_path)["access_token"] == new


def test_revoked_access_token_recovered_by_the_sdk_forced_refresh(
    server: FakeAnthropic, token_path: Path
) -> None:
    access, refresh = server.issue_tokens()
    write_auth_file(token_path, access, refresh)
    manager = manager_for(token_path, server)
    server.revoke_access_token(access)
    client = anthropic.Anthropic(credentials=manager, base_url=server.base_url, max_retries=2)
    client.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert server.token_posts == 1


def test_claude_code_file_round_trip_keeps_unknown_keys(server: FakeAnthropic, home: Path) -> None:
    path = home / ".claude" / ".credentials.json"
    access, refresh = server.issue_tokens(expires_in=-5)
    write_claude_code_file(path, access, refresh, expires_in=-5, otherTopLevel=[1, 2])
    manager = manager_for(path, server)
    assert ask(manager, server)
    saved = read_json(path)
    inner = saved["claudeAiOauth"]
    assert inner["accessToken"] == manager.access_token
    assert inner["refreshToken"] == manager.refresh_token
    assert inner["expiresAt"] > (time.time() + 3000) * 1000  # milliseconds
    assert inner["subscriptionType"] == "max"
    assert inner["scopes"] == ["user:inference", "user:profile"]
    assert saved["mcpOAuth"] == {"server": {"token": "keep-me"}}
    assert saved["otherTopLevel"] == [1, 2]
    assert "access_token" not in saved


def test_default_token_file_prefers_ours_then_claude_code(home: Path) -> None:
    ours = home / ".config" / "claude" / "auth.json"
    assert default_token_file() == ours
    write_claude_code_file(home / ".claude" / ".credentials.json", "sk-ant-oat01-x" * 2, None)
    assert default_token_file() == home / ".claude" / ".credentials.json"
    write_auth_file(ours, "sk-ant-oat01-y" * 2, None)
    assert default_token_file() == ours


def test_disk_rotation_picked_up_without_a_post(
    server: FakeAnthropic, token_path: Path, clock: Clock
) -> None:
    access, refresh = server.issue_tokens()
    write_auth_file(token_path, access, refresh)
    manager = manager_for(token_path, server, clock=clock)
    assert manager.get_valid_token() == access
    new_access, new_refresh = server.issue_tokens()
    write_auth_file(token_path, new_access, new_refresh)  # as Claude Code would
    assert manager.get_valid_token() == access  # served from memory: no stat per request
    clock.advance(1.01)  # the store is looked at again at most once a second
    assert manager.get_valid_token() == new_access
    assert manager.refresh_token == new_refresh
    assert ask(manager, server)
    assert server.token_posts == 0


class Base64TokenManager(OAuthTokenManager):
    """Like the FAQ's EncryptedTokenManager, with base64 standing in for Fernet."""

    def __init__(self, path: Path, token_url: str) -> None:
        self.codec = base64
        super().__init__(token_file=path, token_url=token_url)

    def _load_tokens(self) -> None:
        assert self.token_file is not None
        with open(self.token_file, "rb") as handle:
            data = json.loads(self.codec.b64decode(handle.read()))
        self.access_token = data["access_token"]
        self.refresh_token = data["refresh_token"]
        self.token_expiry = data["token_expiry"]

    def _save_tokens(self) -> None:
        assert self.token_file is not None
        data = {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_expiry": self.token_expiry,
        }
        self.token_file.write_bytes(self.codec.b64encode(json.dumps(data).encode()))


def write_b64(path: Path, access: str, refresh: str, expires_in: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "access_token": access,
        "refresh_token": refresh,
        "token_expiry": time.time() + expires_in,
    }
    path.write_bytes(base64.b64encode(json.dumps(data).encode()))


def test_subclass_storage_hooks_are_used_for_refresh_and_reread(
    server: FakeAnthropic, home: Path
) -> None:
    path = home / "tokens.b64"
    access, refresh = server.issue_tokens(expires_in=-1)
    write_b64(path, access, refresh, -1)
    manager = Base64TokenManager(path, server.token_url)
    assert ask(manager, server)
    saved = json.loads(base64.b64decode(path.read_bytes()))
    assert saved["access_token"] == manager.access_token != access
    assert saved["refresh_token"] == manager.refresh_token != refresh
    # A second manager (another worker) that read the old tokens adopts the rotated ones from
    # storage under the lock instead of spending the old refresh token.
    write_b64(path, access, refresh, -1)
    stale = Base64TokenManager(path, server.token_url)
    write_b64(path, saved["access_token"], saved["refresh_token"], 3600)
    assert stale.get_valid_token() == saved["access_token"]
    assert server.token_posts == 1 and server.invalid_grants == 0


# ----- failures -------------------------------------------------------------------------------


def test_invalid_grant_is_permanent_and_an_authentication_error(
    server: FakeAnthropic, token_path: Path
) -> None:
    access, refresh = server.issue_tokens(expires_in=-1)
    server.revoke_refresh_token(refresh)
    write_auth_file(token_path, access, refresh, expires_in=-1)
    before = token_path.read_bytes()
    manager = manager_for(token_path, server)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        manager.get_valid_token()
    assert isinstance(caught.value, OAuthRefreshError)
    assert "invalid_grant" in str(caught.value)
    assert refresh not in str(caught.value)
    assert token_path.read_bytes() == before
    # OAuth is off for this manager: no more POSTs until storage changes.
    with pytest.raises(OAuthRefreshError):
        manager.get_valid_token()
    assert server.token_posts == 1
    assert manager.permanent_failure is not None
    # A new login on disk brings it back.
    new_access, new_refresh = server.issue_tokens()
    write_auth_file(token_path, new_access, new_refresh)
    assert manager.get_valid_token() == new_access


def test_sdk_does_not_retry_a_refused_refresh(server: FakeAnthropic, token_path: Path) -> None:
    access, refresh = server.issue_tokens(expires_in=-1)
    server.revoke_refresh_token(refresh)
    write_auth_file(token_path, access, refresh, expires_in=-1)
    client = anthropic.Anthropic(
        credentials=manager_for(token_path, server), base_url=server.base_url, max_retries=3
    )
    with pytest.raises(anthropic.AuthenticationError):
        client.messages.create(
            model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert server.token_posts == 1


TRANSIENT_FAULTS = {
    "500": Fault(500, {"error": "server_error"}),
    "503_retry_after": Fault(503, "busy", headers={"Retry-After": "7"}),
    "429": Fault(429, {"error": "rate_limited"}),
    "non_json": Fault(200, "<html>oops</html>"),
    "json_list": Fault(200, [1, 2]),
    "no_tokens_at_all": Fault(200, {"expires_in": 3600}),
    "closed_connection": Fault(200, b"", close=True),
    "302_redirect": Fault(302, "", headers={"Location": "https://elsewhere.example/token"}),
}


@pytest.mark.parametrize("case", sorted(TRANSIENT_FAULTS))
def test_transient_fault_with_a_still_valid_token_serves_it(
    case: str,
    server: FakeAnthropic,
    token_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from claude_oauth_auth.lifecycle import _backoff

    monkeypatch.setattr(_backoff, "BACKOFF_BASE_SECONDS", 30.0)  # one step, even on a slow box
    access, refresh = server.issue_tokens(expires_in=100)
    write_auth_file(token_path, access, refresh, expires_in=100)
    before = token_path.read_bytes()
    server.token_faults.append(TRANSIENT_FAULTS[case])
    manager = manager_for(token_path, server)
    with caplog.at_level(logging.WARNING, logger="claude_oauth_auth"):
        assert manager.get_valid_token() == access
        assert manager.get_valid_token() == access  # backing off: no second POST yet
    assert server.token_posts == 1
    assert token_path.read_bytes() == before
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "still valid" in warnings[0].getMessage()
    if case == "503_retry_after":
        assert "retrying in 7 s" in warnings[0].getMessage()
    assert manager.permanent_failure is None


@pytest.mark.parametrize("case", ["500", "non_json", "closed_connection"])
def test_transient_fault_with_an_expired_token_raises_backs_off_and_recovers(
    case: str, server: FakeAnthropic, token_path: Path, clock: Clock
) -> None:
    access, refresh = server.issue_tokens(expires_in=-1)
    write_auth_file(token_path, access, refresh, expires_in=-1)
    before = token_path.read_bytes()
    server.token_faults.append(TRANSIENT_FAULTS[case])
    manager = manager_for(token_path, server, clock=clock)
    with pytest.raises(TokenRefreshError):
        manager.get_valid_token()
    assert token_path.read_bytes() == before
    # Backing off: the next call fails at once, without a POST, saying when to retry.
    with pytest.raises(TokenRefreshError, match="backing off") as caught:
        manager.get_valid_token()
    assert caught.value.retry_after is not None and 0.5 <= caught.value.retry_after <= 1.0
    assert server.token_posts == 1
    clock.advance(1.01)
    assert manager.get_valid_token() != access  # the fault has passed: refresh works
    assert server.token_posts == 2 and server.invalid_grants == 0


def test_connection_refused_is_transient(server: FakeAnthropic, token_path: Path) -> None:
    access, refresh = server.issue_tokens(expires_in=-1)
    write_auth_file(token_path, access, refresh, expires_in=-1)
    manager = OAuthTokenManager(
        token_file=token_path, token_url="http://127.0.0.1:9/v1/oauth/token"
    )
    with pytest.raises(TokenRefreshError, match="could not reach"):
        manager.get_valid_token()


def test_timeout_is_transient(
    server: FakeAnthropic, token_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from claude_oauth_auth.lifecycle import _grant as _refresh

    monkeypatch.setattr(_refresh, "REFRESH_TIMEOUT_SECONDS", 0.3)
    access, refresh = server.issue_tokens(expires_in=-1)
    write_auth_file(token_path, access, refresh, expires_in=-1)
    server.token_faults.append(Fault(200, {}, delay=1.5))
    with pytest.raises(TokenRefreshError):
        manager_for(token_path, server).get_valid_token()


def test_plain_http_token_url_refused_except_loopback() -> None:
    with pytest.raises(ValueError, match="https"):
        OAuthTokenManager("a", "b", token_url="http://example.com/token")
    OAuthTokenManager("a", "b", token_url="http://localhost:1/token")
    OAuthTokenManager("a", "b", token_url="https://example.com/token")


def test_save_failure_keeps_tokens_in_memory_logs_one_error_and_retries(
    server: FakeAnthropic, token_path: Path, caplog: pytest.LogCaptureFixture, clock: Clock
) -> None:
    access, refresh = server.issue_tokens(expires_in=-1)
    write_auth_file(token_path, access, refresh, expires_in=-1)
    manager = manager_for(token_path, server, clock=clock)
    # Make the replace fail for real: a directory now stands where the file was.
    token_path.unlink()
    token_path.mkdir()
    with caplog.at_level(logging.INFO, logger="claude_oauth_auth"):
        assert ask(manager, server)
        new_refresh = manager.refresh_token
        assert new_refresh != refresh
        for _ in range(3):
            ask(manager, server)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert str(token_path) in errors[0].getMessage() and new_refresh not in errors[0].getMessage()
    token_path.rmdir()
    clock.advance(1.05)  # the save is retried at most once a second
    assert manager.get_valid_token() == manager.access_token
    assert read_json(token_path)["refresh_token"] == new_refresh
    assert server.token_posts == 1


def test_explicit_tokens_in_memory(server: FakeAnthropic) -> None:
    access, refresh = server.issue_tokens(expires_in=-1)
    manager = OAuthTokenManager(
        access_token=access,
        refresh_token=refresh,
        token_expiry=time.time() - 1,
        token_url=server.token_url,
    )
    assert manager.token_file is None
    assert ask(manager, server)
    assert manager.refresh_token != refresh and server.token_posts == 1


def test_missing_token_file_raises_a_clear_error(home: Path) -> None:
    from claude_oauth_auth import TokenFileError

    with pytest.raises(TokenFileError, match="does not exist") as caught:
        OAuthTokenManager()
    assert "claude-oauth-auth save" in str(caught.value)


def test_repr_masks_tokens(server: FakeAnthropic, token_path: Path) -> None:
    access, refresh = server.issue_tokens()
    write_auth_file(token_path, access, refresh)
    manager = manager_for(token_path, server)
    text = repr(manager) + repr(manager())
    assert access not in text and refresh not in text
    assert access[-4:] in text
