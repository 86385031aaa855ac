"""``claude-oauth-auth move``: a login into a store, out of its source; never Claude Code's."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import pytest
from fakeapi import FakeAnthropic
from helpers import auth_file_path, claude_code_path, write_auth_file, write_claude_code_file
from redis_server import RedisServer, free_port

from claude_oauth_auth import ClaudeClient, OAuthTokenManager
from claude_oauth_auth.stores import FileStore, RedisStore, TokenSet

PASSWORD = "move-test-password-" + "q" * 20


def run(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "claude_oauth_auth", *arguments],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
        check=False,
    )


def secret_free(result: subprocess.CompletedProcess[str], *secrets: str) -> bool:
    return not any(s in result.stdout + result.stderr for s in (*secrets, PASSWORD))


def test_move_from_auth_json_into_redis(
    redis_server: RedisServer, oauth_env: FakeAnthropic, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    access, refresh = oauth_env.issue_tokens(expires_in=-5)  # the first use refreshes it
    source = write_auth_file(auth_file_path(home), access, refresh, expires_in=-5)
    result = run("move", "--from", str(source), "--to", redis_server.url)
    assert result.returncode == 0, result.stderr
    assert not source.exists()  # the refresh token left the source
    stored = RedisStore(redis_server.url).load()
    assert stored is not None and (stored.access_token, stored.refresh_token) == (access, refresh)
    assert f"...{access[-4:]}" in result.stdout
    assert "redis://127.0.0.1" in result.stdout
    assert secret_free(result, access, refresh)

    monkeypatch.setenv("CLAUDE_TOKEN_STORE", redis_server.url)
    client = ClaudeClient(max_retries=0)
    assert client.auth_source == "token_store_env"
    client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert (oauth_env.token_posts, oauth_env.invalid_grants) == (1, 0)
    renewed = RedisStore(redis_server.url).load()
    assert renewed is not None and oauth_env.refresh_token_usable(renewed.refresh_token)


def test_a_program_still_running_on_the_source_does_not_spend_the_moved_login(
    redis_server: RedisServer,
    oauth_env: FakeAnthropic,
    home: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A client built on auth.json before the move, due for a refresh after it: it must not
    spend the refresh token that now lives in Redis (nor write the file back)."""
    caplog.set_level(logging.WARNING, logger="claude_oauth_auth")
    access, refresh = oauth_env.issue_tokens(expires_in=-5)
    source = write_auth_file(auth_file_path(home), access, refresh, expires_in=-5)
    running = OAuthTokenManager(token_file=source)
    result = run("move", "--from", str(source), "--to", redis_server.url)
    assert result.returncode == 0, result.stderr
    with pytest.raises(anthropic.AuthenticationError, match="no refresh token"):
        running.get_valid_token()
    assert f"The OAuth login was removed from {source}" in caplog.text
    assert "keeping the ones in memory" not in caplog.text
    assert oauth_env.token_posts == 0 and not source.exists()
    stored = RedisStore(redis_server.url).load()
    assert stored is not None and oauth_env.refresh_token_usable(stored.refresh_token)


def test_move_refuses_claude_codes_store(redis_server: RedisServer, home: Path) -> None:
    theirs = write_claude_code_file(claude_code_path(home), "sk-ant-oat01-" + "a" * 40, "r" * 40)
    before = theirs.read_bytes()
    for source in (str(theirs), f"file://{theirs}"):
        result = run("move", "--from", source, "--to", redis_server.url)
        assert result.returncode == 1
        assert "Claude Code's own login" in result.stderr
        assert "Claude Code would keep refreshing its copy" in result.stderr
    copy = write_claude_code_file(home / "elsewhere.json", "sk-ant-oat01-" + "b" * 40, "s" * 40)
    result = run("move", "--from", str(copy), "--to", redis_server.url)
    assert result.returncode == 1 and "Claude Code would keep refreshing" in result.stderr
    assert theirs.read_bytes() == before and copy.exists()
    assert RedisStore(redis_server.url).version() is None


def test_move_refuses_a_target_holding_another_login(redis_server: RedisServer, home: Path) -> None:
    source = write_auth_file(auth_file_path(home), "sk-ant-oat01-" + "c" * 40, "ort-" + "c" * 40)
    other = TokenSet("sk-ant-oat01-" + "d" * 40, "ort-" + "d" * 40, time.time() + 600)
    RedisStore(redis_server.url).save(other, expected_version=None)
    result = run("move", "--from", str(source), "--to", redis_server.url)
    assert result.returncode == 1
    assert "already holds another OAuth login" in result.stderr
    assert "nothing was moved" in result.stderr
    assert source.exists()
    kept = RedisStore(redis_server.url).load()
    assert kept is not None and kept.refresh_token == other.refresh_token


def test_move_run_again_after_the_source_was_not_removed(
    redis_server: RedisServer, home: Path
) -> None:
    """Interrupted between the two steps: running it again finishes the move."""
    source = write_auth_file(auth_file_path(home), "sk-ant-oat01-" + "e" * 40, "ort-" + "e" * 40)
    tokens = FileStore(source).load()
    assert tokens is not None
    RedisStore(redis_server.url).save(tokens, expected_version=None)  # step one happened
    result = run("move", "--from", str(source), "--to", redis_server.url)
    assert result.returncode == 0, result.stderr
    assert not source.exists()


def test_move_from_redis_to_a_file(redis_server: RedisServer, tmp_path: Path) -> None:
    tokens = TokenSet("sk-ant-oat01-" + "f" * 40, "ort-" + "f" * 40, time.time() + 600)
    store = RedisStore(redis_server.url)
    store.save(tokens, expected_version=None)
    target = tmp_path / "private" / "login.json"
    result = run("move", "--from", redis_server.url, "--to", f"file://{target}")
    assert result.returncode == 0, result.stderr
    assert store.load() is None and not store.may_restore()  # deleted on purpose
    assert json.loads(target.read_text())["refresh_token"] == tokens.refresh_token
    assert target.stat().st_mode & 0o777 == 0o600
    assert target.parent.stat().st_mode & 0o777 == 0o700


def test_move_to_an_unreachable_redis_leaves_the_source(home: Path) -> None:
    source = write_auth_file(auth_file_path(home), "sk-ant-oat01-" + "g" * 40, "ort-" + "g" * 40)
    before = source.read_bytes()
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    result = run("move", "--from", str(source), "--to", url)
    assert result.returncode == 1
    assert "cannot reach Redis" in result.stderr
    assert source.read_bytes() == before
    assert secret_free(result)


def test_move_usage(home: Path) -> None:
    assert run("move", "--to", "keyring:").returncode == 2
    result = run("move", "--from", str(home / "missing.json"), "--to", "keyring:")
    assert result.returncode == 1 and "is not a token file" in result.stderr
    source = write_auth_file(auth_file_path(home), "sk-ant-oat01-" + "h" * 40, "ort-" + "h" * 40)
    result = run("move", "--from", str(source), "--to", f"file://{source}")
    assert result.returncode == 1 and "both the source and the target" in result.stderr
    assert source.exists()


def test_a_source_that_cannot_be_deleted_is_reported_and_a_rerun_finishes(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """The Redis user may save and lock but not run EVAL, which delete() needs: the login is
    written to the target, the failure to remove it from the source is said plainly, and
    `move` run again (with enough rights) completes."""
    rules = "on >limited-pw ~claude-oauth-auth:* -@all +@connection +hget +hset +hdel +hincrby"
    rules += " +del +exists +time +set +get +pexpire +evalsha +script|load"
    redis_server.client().execute_command("ACL", "SETUSER", "limited", *rules.split())
    limited = f"redis://limited:limited-pw@127.0.0.1:{redis_server.port}/0"
    tokens = TokenSet("sk-ant-oat01-" + "k" * 40, "ort-" + "k" * 40, time.time() + 600)
    RedisStore(redis_server.url).save(tokens, expected_version=None)
    target = tmp_path / "login.json"
    result = run("move", "--from", limited, "--to", f"file://{target}")
    assert result.returncode == 1
    assert "copied the login to" in result.stderr
    assert "could not remove it from" in result.stderr
    assert "the same refresh token is now in both" in result.stderr
    assert "logout --yes --store redis://***@127.0.0.1" in result.stderr
    assert "limited-pw" not in result.stdout + result.stderr
    assert json.loads(target.read_text())["refresh_token"] == tokens.refresh_token
    result = run("move", "--from", redis_server.url, "--to", f"file://{target}")
    assert result.returncode == 0, result.stderr
    assert RedisStore(redis_server.url).load() is None


# ----- move keeps what it moves (issue 22, item 8) ----------------------------------------------


def test_move_from_an_sdk_profile_keeps_its_expiry_client_id_and_host(
    redis_server: RedisServer, server: FakeAnthropic, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_profiles import CLIENT_ID, config_dir, write_profile

    access, refresh = write_profile(config_dir(home), "default", server, expires_in=-5)
    credentials = config_dir(home) / "credentials" / "default.json"
    result = run("move", "--from", str(credentials), "--to", redis_server.url)
    assert result.returncode == 0, result.stderr
    assert not credentials.exists()
    stored = RedisStore(redis_server.url).load()
    assert stored is not None and (stored.access_token, stored.refresh_token) == (access, refresh)
    assert stored.expires_at is not None and stored.expires_at < time.time()  # kept: expired
    assert stored.extra.get("client_id") == CLIENT_ID
    assert stored.extra.get("token_url") == server.token_url

    monkeypatch.setenv("CLAUDE_TOKEN_STORE", redis_server.url)
    client = ClaudeClient(base_url=server.base_url, max_retries=0)
    client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert server.token_posts == 1 and server.invalid_grants == 0  # refreshed, not served stale
    assert server.token_requests[-1]["client_id"] == CLIENT_ID  # the profile's, not Claude Code's


def test_move_between_two_spellings_of_one_redis_key_is_refused_at_once(
    redis_server: RedisServer, server: FakeAnthropic
) -> None:
    access, refresh = server.issue_tokens()
    RedisStore(redis_server.url).save(
        TokenSet(access, refresh, time.time() + 3600), expected_version=None
    )
    other = redis_server.url.replace("127.0.0.1", "localhost")
    started = time.monotonic()
    result = run("move", "--from", redis_server.url, "--to", other)
    assert time.monotonic() - started < 10
    assert result.returncode != 0
    assert "both the source and the target" in result.stderr, result.stderr
    assert RedisStore(redis_server.url).load() is not None  # nothing was lost
