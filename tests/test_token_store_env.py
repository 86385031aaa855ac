"""CLAUDE_TOKEN_STORE: a store named by URL, as the cascade step ``token_store_env``.

It comes right after CLAUDE_AUTH_FILE and before our auth.json. The CLI's ``save --store`` and
``logout --store`` take the same URLs. Status output never shows a secret, not even a Redis
password inside the URL.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from fakeapi import FakeAnthropic
from helpers import auth_file_path, read_json, write_auth_file
from helpers import run_cli as run
from redis_server import free_port
from secret_service import SecretServiceSession

from claude_oauth_auth import ClaudeClient, get_auth_status
from claude_oauth_auth.stores import KeyringStore, TokenSet

VARIABLE = "CLAUDE_TOKEN_STORE"
SCRIPT = Path(sys.executable).with_name("claude-oauth-auth")
MODEL = "claude-test-1"
MESSAGES = [{"role": "user", "content": "hi"}]
PASSWORD = "hunter2-redis-" + "p" * 24


@pytest.fixture(autouse=True)
def no_store_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    # helpers.ISOLATED_VARIABLES does not list CLAUDE_TOKEN_STORE (yet): never inherit it.
    monkeypatch.delenv(VARIABLE, raising=False)


def file_url(path: Path) -> str:
    return "file://" + str(path)


def source(status: dict[str, Any], name: str = "token_store_env") -> dict[str, Any]:
    (entry,) = [entry for entry in status["sources"] if entry["name"] == name]
    return entry


def assert_no_secret(text: str, secrets: Iterable[str]) -> None:
    """No 8-character piece of any secret (a masked token shows only its last 4)."""
    for secret in secrets:
        for start in range(len(secret) - 8):
            assert secret[start : start + 8] not in text, f"a piece of a secret leaked: {text}"


def ask(client: ClaudeClient) -> None:
    client.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES)  # type: ignore[arg-type]


# ----- where the step stands in the cascade ---------------------------------------------------


def test_a_file_url_is_used_beats_auth_json_and_shows_its_location(
    oauth_env: FakeAnthropic, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = oauth_env
    ours = server.issue_tokens()
    write_auth_file(auth_file_path(home), *ours)
    access, refresh = server.issue_tokens()
    path = write_auth_file(tmp_path / "elsewhere" / "tokens.json", access, refresh)
    monkeypatch.setenv(VARIABLE, file_url(path))
    client = ClaudeClient(max_retries=0)
    assert (client.auth_source, client.auth_method) == ("token_store_env", "oauth")
    ask(client)
    assert [(r.status, r.token) for r in server.api_requests] == [(200, access)]
    assert server.token_posts == 0
    status = get_auth_status()
    assert (status["source"], status["auth_method"]) == ("token_store_env", "oauth")
    entry = source(status)
    assert (entry["state"], entry["path"]) == ("used", str(path))
    assert str(path) in entry["detail"] and f"...{access[-4:]}" in entry["detail"]
    assert source(status, "auth_file")["state"] == "available"
    assert_no_secret(json.dumps(status), [access, refresh, *ours])


def test_claude_auth_file_beats_the_store_url(
    oauth_env: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = oauth_env
    named = server.issue_tokens()
    monkeypatch.setenv("CLAUDE_AUTH_FILE", str(write_auth_file(tmp_path / "named.json", *named)))
    store_path = write_auth_file(tmp_path / "store.json", *server.issue_tokens())
    monkeypatch.setenv(VARIABLE, file_url(store_path))
    client = ClaudeClient(max_retries=0)
    assert client.auth_source == "auth_file_env"
    ask(client)
    assert server.api_requests[-1].token == named[0]
    status = get_auth_status()
    assert status["source"] == "auth_file_env"
    assert (source(status)["state"], source(status)["path"]) == ("available", str(store_path))


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("ftp://x", ["ftp://x", "is not a store URL this library knows", "file:///PATH"]),
        ("ftp://someone:hunter2@x/y", ["ftp://***@x/y", "is not a store URL"]),
        ("file://relative/auth.json", ["a file store URL is file:///absolute/path"]),
        ("   ", ["is set but empty"]),
        ("file:///nonexistent/claude/tokens.json", ["/nonexistent/claude/tokens.json", "no login"]),
    ],
    ids=["ftp", "ftp-with-password", "relative-file", "blank", "missing-file"],
)
def test_a_bad_url_is_an_invalid_step_and_the_cascade_goes_on(
    value: str,
    words: list[str],
    oauth_env: FakeAnthropic,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    access, refresh = oauth_env.issue_tokens()
    write_auth_file(auth_file_path(home), access, refresh)
    monkeypatch.setenv(VARIABLE, value)
    status = get_auth_status()
    entry = source(status)
    assert entry["state"] == "invalid"
    assert entry["detail"].startswith(VARIABLE), entry["detail"]
    for word in words:
        assert word in entry["detail"], (word, entry["detail"])
    assert "hunter2" not in json.dumps(status)
    assert status["source"] == "auth_file"
    assert "token_store_env" in status["summary"]  # "1 source(s) broken: token_store_env"
    assert status["recommendation"].startswith("Fix or remove token_store_env: ")
    client = ClaudeClient(max_retries=0)
    assert client.auth_source == "auth_file"
    reports = {report.name: report.state for report in client.auth_manager.reports}
    assert reports["token_store_env"] == "invalid"
    ask(client)
    assert oauth_env.api_requests[-1].token == access


@pytest.mark.parametrize(
    "value", ["redis://:hunter2@[::1/0", "file:///tmp/nul%00byte.json"], ids=["ipv6", "nul"]
)
def test_a_malformed_url_is_an_invalid_step_too(
    value: str, oauth_env: FakeAnthropic, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_auth_file(auth_file_path(home), *oauth_env.issue_tokens())
    monkeypatch.setenv(VARIABLE, value)
    entry = source(get_auth_status())
    assert entry["state"] == "invalid" and "hunter2" not in entry["detail"]
    assert ClaudeClient(max_retries=0).auth_source == "auth_file"
    assert entry["detail"].startswith(VARIABLE), entry["detail"]


# ----- a real OS keyring ----------------------------------------------------------------------


def test_a_keyring_url_refreshes_an_expired_token_into_the_keyring(
    oauth_env: FakeAnthropic,
    secret_service: SecretServiceSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = oauth_env
    service = f"claude-oauth-auth-test-env-{uuid.uuid4().hex[:8]}"
    store = KeyringStore(service, "user")
    access, refresh = server.issue_tokens(expires_in=-5)
    store.save(TokenSet(access, refresh, time.time() - 5), expected_version=None)
    monkeypatch.setenv(VARIABLE, f"keyring://{service}/user")
    try:
        status = get_auth_status()
        assert (source(status)["state"], source(status)["path"]) == (
            "used",
            f"keyring://{service}/user",
        )
        client = ClaudeClient(max_retries=0)
        assert client.auth_source == "token_store_env"
        ask(client)
        assert (server.token_posts, server.invalid_grants) == (1, 0)
        saved = KeyringStore(service, "user").load()
        assert saved is not None
        assert (saved.access_token, saved.refresh_token) != (access, refresh)
        assert saved.refresh_token is not None and saved.refresh_token != refresh
        assert saved.seconds_left() > 3000
        assert [(r.status, r.token) for r in server.api_requests] == [(200, saved.access_token)]
    finally:
        store.delete()


# ----- save and logout through the console script ----------------------------------------------


def test_save_and_logout_with_a_file_url(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    access = "sk-ant-oat01-" + uuid.uuid4().hex + uuid.uuid4().hex
    refresh = "sk-ant-ort01-" + uuid.uuid4().hex + uuid.uuid4().hex
    path = tmp_path / "stores" / "tokens.json"
    url = file_url(path)
    answer = {"access_token": access, "refresh_token": refresh, "expires_in": 3600}
    saved = run("save", "--store", url, stdin=json.dumps(answer))
    assert saved.returncode == 0, saved.stderr
    assert str(path) in saved.stdout and f"...{access[-4:]}" in saved.stdout
    document = read_json(path)
    assert (document["access_token"], document["refresh_token"]) == (access, refresh)
    assert abs(document["token_expiry"] - (time.time() + 3600)) < 60
    assert path.stat().st_mode & 0o777 == 0o600
    assert not auth_file_path(home).exists()  # the store, not our default file
    # The library finds what was saved through the same URL.
    monkeypatch.setenv(VARIABLE, url)
    assert source(get_auth_status())["state"] == "used"
    monkeypatch.delenv(VARIABLE)
    logout = run("logout", "--store", url, "--yes")
    assert logout.returncode == 0, logout.stderr
    assert f"Deleted {path}" in logout.stdout
    assert not path.exists()
    again = run("logout", "--store", url, "--yes")
    assert again.returncode == 0, again.stderr
    assert "nothing to delete" in again.stdout
    everything = "".join(r.stdout + r.stderr for r in (saved, logout, again))
    assert_no_secret(everything, [access, refresh])


# ----- a Redis URL with a password ------------------------------------------------------------


@pytest.mark.parametrize(
    "credentials", [f":{PASSWORD}", f"admin:{PASSWORD}"], ids=["password", "user-and-password"]
)
def test_a_redis_password_never_shows_and_an_absent_server_is_explained(
    credentials: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setenv(VARIABLE, f"redis://{credentials}@127.0.0.1:{port}/0")
    key = "sk-ant-api03-" + uuid.uuid4().hex
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    caplog.set_level(logging.DEBUG, logger="claude_oauth_auth")
    status = get_auth_status()
    entry = source(status)
    assert entry["state"] == "invalid"
    assert f"redis://127.0.0.1:{port}/0" in entry["detail"]
    assert "cannot reach Redis (connection refused)" in entry["detail"]
    assert status["source"] == "api_key_env"  # the cascade went on
    client = ClaudeClient(max_retries=0)
    assert client.auth_source == "api_key_env"
    table, as_json = run("status"), run("status", "--json")
    assert (table.returncode, as_json.returncode) == (0, 0)
    assert "token_store_env" in table.stdout and "cannot reach Redis" in table.stdout
    assert source(json.loads(as_json.stdout))["detail"] == entry["detail"]
    everything = [json.dumps(status), caplog.text, repr(client.auth_manager.reports)]
    everything += [table.stdout, table.stderr, as_json.stdout, as_json.stderr]
    for text in everything:
        assert PASSWORD not in text
