"""A dead login is declared once per token file, not once per process.

The endpoint refuses a refresh token with ``invalid_grant``: the process that sent it records
the verdict (a digest, the endpoint's words) in ``<token file>.oauth.state`` under the lock.
Every other process that takes the lock on that file raises the same ``OAuthRefreshError``
without sending the dead token again, and a new login saved to the file is used at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import pytest
from fakeapi import FakeAnthropic, Fault
from helpers import auth_file_path, fork_processes, read_json, write_auth_file

from claude_oauth_auth import ClaudeClient, OAuthRefreshError, OAuthTokenManager

REFUSED = "the token endpoint refused the refresh token (invalid_grant: Refresh token not found"


def run_processes(mode: str, path: Path, count: int) -> list[dict[str, Any]]:
    """``count`` processes, each past its setup (a manager on ``path``, or a ``ClaudeClient``),
    released at once to send one request; what each one got."""

    def setup() -> Callable[[], dict[str, Any]]:
        client: Any
        if mode == "manager":
            manager = OAuthTokenManager(token_file=path)
            client = anthropic.Anthropic(
                credentials=manager, base_url=os.environ["ANTHROPIC_BASE_URL"], max_retries=0
            )
        else:
            client = ClaudeClient(max_retries=0)

        def send() -> dict[str, Any]:
            try:
                message = client.messages.create(
                    model="claude-test-1",
                    max_tokens=5,
                    messages=[{"role": "user", "content": "hi"}],
                )
            except Exception as error:
                return {
                    "error": type(error).__name__,
                    "status": getattr(error, "endpoint_status", None),
                    "message": str(error),
                }
            return {"text": message.content[0].text, "auth": getattr(client, "auth_method", None)}

        return send

    return fork_processes(setup, count)


@pytest.fixture
def dead_file(oauth_env: FakeAnthropic, home: Path) -> Path:
    """auth.json with an expired access token and a refresh token the endpoint revoked."""
    access, refresh = oauth_env.issue_tokens(expires_in=-5)
    oauth_env.revoke_refresh_token(refresh)
    return write_auth_file(auth_file_path(home), access, refresh, expires_in=-5)


def refused(outcome: dict[str, Any]) -> bool:
    return (
        outcome.get("error") == "OAuthRefreshError"
        and outcome.get("status") == 400
        and REFUSED in outcome.get("message", "")
    )


def test_six_processes_on_a_dead_login_send_it_once(
    oauth_env: FakeAnthropic, dead_file: Path
) -> None:
    outcomes = run_processes("manager", dead_file, 6)
    assert (oauth_env.token_posts, oauth_env.invalid_grants) == (1, 1)
    assert all(refused(outcome) for outcome in outcomes), outcomes
    state_text = dead_file.with_name("auth.json.oauth.state").read_text()
    assert read_json(dead_file)["refresh_token"] not in state_text  # a digest, not the token
    assert [entry["status"] for entry in json.loads(state_text)["refused"]] == [400]


def test_six_clients_on_a_dead_login_fall_back_to_the_key_after_one_post(
    oauth_env: FakeAnthropic, dead_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", oauth_env.add_api_key())
    outcomes = run_processes("client", dead_file, 6)
    assert outcomes == [{"text": "Hello from fake API", "auth": "api_key"}] * 6
    assert (oauth_env.token_posts, oauth_env.invalid_grants) == (1, 1)


def test_a_new_login_saved_after_the_refusal_is_used(
    oauth_env: FakeAnthropic, dead_file: Path
) -> None:
    assert all(refused(outcome) for outcome in run_processes("manager", dead_file, 3))
    late = OAuthTokenManager(token_file=dead_file)  # learns the verdict from the state file
    with pytest.raises(OAuthRefreshError, match="invalid_grant") as caught:
        late.get_valid_token()
    assert caught.value.endpoint_status == 400
    assert late.permanent_failure is not None
    assert oauth_env.token_posts == 1

    access, refresh = oauth_env.issue_tokens(expires_in=-5)  # a new login, already expired
    write_auth_file(dead_file, access, refresh, expires_in=-5)
    token = late.get_valid_token()  # spends the new refresh token: no stale verdict
    assert token != access and late.permanent_failure is None
    assert (oauth_env.token_posts, oauth_env.invalid_grants) == (2, 1)
    # The processes started now adopt the refreshed login without a POST of their own.
    outcomes = run_processes("manager", dead_file, 3)
    assert [outcome.get("text") for outcome in outcomes] == ["Hello from fake API"] * 3
    assert (oauth_env.token_posts, oauth_env.invalid_grants) == (2, 1)


def test_the_verdict_does_not_outlive_a_client_id_fix(
    oauth_env: FakeAnthropic, dead_file: Path
) -> None:
    """The verdict names the token, the endpoint and the client: sent with another client id,
    the token is tried again (this endpoint refuses it too)."""
    with pytest.raises(OAuthRefreshError):
        OAuthTokenManager(token_file=dead_file).get_valid_token()
    with pytest.raises(OAuthRefreshError):
        OAuthTokenManager(token_file=dead_file).get_valid_token()
    assert oauth_env.token_posts == 1
    with pytest.raises(OAuthRefreshError):
        OAuthTokenManager(token_file=dead_file, client_id="another-client").get_valid_token()
    assert (oauth_env.token_posts, oauth_env.invalid_grants) == (2, 2)


def test_a_refusal_other_than_invalid_grant_is_not_shared(
    oauth_env: FakeAnthropic, home: Path
) -> None:
    """``invalid_client`` says the request was wrong, not that the token is dead: the next
    process tries again (and here the token works)."""
    access, refresh = oauth_env.issue_tokens(expires_in=-5)
    path = write_auth_file(auth_file_path(home), access, refresh, expires_in=-5)
    oauth_env.token_faults.append(Fault(401, {"error": "invalid_client"}))
    with pytest.raises(OAuthRefreshError, match="invalid_client"):
        OAuthTokenManager(token_file=path).get_valid_token()
    assert OAuthTokenManager(token_file=path).get_valid_token() != access
    assert (oauth_env.token_posts, oauth_env.invalid_grants) == (2, 0)


def test_a_garbled_verdict_in_the_state_file_is_ignored(
    oauth_env: FakeAnthropic, home: Path
) -> None:
    access, refresh = oauth_env.issue_tokens(expires_in=-5)
    path = write_auth_file(auth_file_path(home), access, refresh, expires_in=-5)
    garbled = [1, "x", {"key": 5, "reason": "r"}, {"key": "k", "reason": ""}, {"key": "k"}]
    path.with_name("auth.json.oauth.state").write_text(json.dumps({"refused": garbled}))
    assert OAuthTokenManager(token_file=path).get_valid_token() != access
    assert (oauth_env.token_posts, oauth_env.invalid_grants) == (1, 0)


def test_status_reports_a_refused_refresh_token_and_the_cascade_skips_it(
    dead_file: Path, oauth_env: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline, ``status`` says what the last refresh learned instead of "will be refreshed",
    and a client built afterwards goes to the next source without a POST."""
    from claude_oauth_auth import ClaudeClient, get_auth_status

    before = {s["name"]: s for s in get_auth_status()["sources"]}
    assert "will be refreshed" in before["auth_file"]["detail"]
    with pytest.raises(OAuthRefreshError):
        OAuthTokenManager(token_file=dead_file).get_valid_token()
    status = get_auth_status()
    entry = next(s for s in status["sources"] if s["name"] == "auth_file")
    assert entry["state"] == "invalid"
    assert REFUSED in entry["detail"] and entry["detail"].endswith("; log in again")
    assert "will be refreshed" not in entry["detail"]
    assert refresh_text(dead_file) not in json.dumps(status)
    key = oauth_env.add_api_key()
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    client = ClaudeClient(max_retries=0)
    assert (client.auth_source, oauth_env.token_posts) == ("api_key_env", 1)


def refresh_text(path: Path) -> str:
    token = read_json(path)["refresh_token"]
    assert isinstance(token, str)
    return token
