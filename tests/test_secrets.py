"""Secret sweep: scenarios run with DEBUG logging on every logger; no token or key comes out.

Every token the loopback server ever minted, every API key it knows, and the secrets planted
in broken files are checked against every log record (ours, the SDK's, httpx's), every repr,
exception message, status dict and CLI output the scenario produced: neither a whole secret
nor any 12-character piece of its secret part may appear.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from fakeapi import FakeAnthropic, Fault
from helpers import (
    auth_file_path,
    claude_code_path,
    run_cli,
    skip_backoff,
    write_auth_file,
    write_claude_code_file,
)

from claude_oauth_auth import (
    AsyncClaudeClient,
    ClaudeAuthError,
    ClaudeClient,
    OAuthTokenManager,
    TokenRefreshError,
    UnifiedAuthManager,
    get_auth_status,
)
from claude_oauth_auth import cli as cli_module

MODEL = "claude-test-1"
MESSAGES: Any = [{"role": "user", "content": "hi"}]
PUBLIC_PREFIXES = ("sk-ant-oat01-", "sk-ant-ort01-", "sk-ant-api03-")
SCRIPT = Path(sys.executable).with_name("claude-oauth-auth")


def secret_pieces(secret: str) -> set[str]:
    """Every 12-character window holding at least one character past the public prefix."""
    prefix = next((p for p in PUBLIC_PREFIXES if secret.startswith(p)), "")
    first = max(0, len(prefix) - 11)
    return {secret[start : start + 12] for start in range(first, len(secret) - 11)}


class Sweep:
    """Collects everything a scenario shows the world, then looks for secrets in it."""

    def __init__(self, server: FakeAnthropic, caplog: pytest.LogCaptureFixture) -> None:
        self.server = server
        self.caplog = caplog
        self.texts: list[str] = []
        self.planted: set[str] = set()

    def show(self, *values: Any) -> None:
        for value in values:
            self.texts.append(value if isinstance(value, str) else repr(value))

    def error(self, error: BaseException) -> None:
        self.show(str(error), repr(error), *(str(arg) for arg in error.args))
        if error.__cause__ is not None:
            self.error(error.__cause__)

    def status(self) -> dict[str, Any]:
        status = get_auth_status()
        self.show(json.dumps(status, ensure_ascii=False))
        return status

    def cli(self, *arguments: str) -> int:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_module.main(list(arguments))
        self.show(out.getvalue(), err.getvalue())
        return code

    def secrets(self) -> set[str]:
        with self.server.lock:
            minted = set(self.server._access_tokens) | set(self.server._refresh_tokens)
            minted |= set(self.server._api_keys)
        return {s for s in minted | self.planted if s}

    def records(self) -> list[str]:
        lines = []
        for record in self.caplog.records:
            lines.append(record.getMessage())
            if record.exc_info and record.exc_info[1] is not None:
                lines.append(logging.Formatter().formatException(record.exc_info))
        return lines

    def check(self) -> None:
        everything = "\n".join(self.texts + self.records())
        assert self.caplog.records, "DEBUG logging was not captured"
        for secret in self.secrets():
            leaked = sorted(piece for piece in secret_pieces(secret) if piece in everything)
            assert not leaked, f"a piece of a secret leaked: {leaked[0]!r}"


@pytest.fixture
def sweep(
    server: FakeAnthropic, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Sweep]:
    monkeypatch.setenv("CLAUDE_OAUTH_TOKEN_URL", server.token_url)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
    with caplog.at_level(logging.DEBUG):  # the root logger: ours, anthropic, httpx2, ...
        yield Sweep(server, caplog)


def ask(client: anthropic.Anthropic, sweep: Sweep) -> None:
    message = client.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES)
    sweep.show(message)


# ----- scenarios --------------------------------------------------------------------------------


def test_refresh_rotation_and_forced_refresh(
    sweep: Sweep, server: FakeAnthropic, home: Path
) -> None:
    access, refresh = server.issue_tokens(expires_in=-5)
    write_claude_code_file(claude_code_path(home), access, refresh, expires_in=-5)
    sweep.status()
    client = ClaudeClient(max_retries=1)
    ask(client, sweep)  # refreshed at construction
    manager = client.auth_manager.token_manager
    assert manager is not None
    server.revoke_access_token(manager.access_token or "")
    ask(client, sweep)  # 401, forced refresh, resent
    ask(client.with_options(timeout=5), sweep)
    sweep.show(client, client.auth_manager, manager, manager(), client.auth_manager.credential)
    sweep.show(*client.auth_manager.reports)
    assert server.token_posts == 2
    sweep.status()
    assert sweep.cli("status", "--json") == 0
    assert sweep.cli("status") == 0

    async def concurrently() -> None:
        async with AsyncClaudeClient() as async_client:
            sweep.show(async_client)
            await asyncio.gather(
                *(
                    async_client.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES)
                    for _ in range(3)
                )
            )

    asyncio.run(concurrently())
    sweep.check()


def test_fallbacks_to_an_api_key(
    sweep: Sweep, server: FakeAnthropic, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = server.add_api_key()
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    # A refused refresh: invalid_grant, with the endpoint echoing the refresh token back.
    access, refresh = server.issue_tokens(expires_in=-5)
    write_auth_file(auth_file_path(home), access, refresh, expires_in=-5)
    server.token_faults.append(
        Fault(400, {"error": "invalid_grant", "error_description": f"bad token {refresh}"})
    )
    client = ClaudeClient(max_retries=0)
    ask(client, sweep)
    assert client.auth_method == "api_key"
    sweep.show(client, client.auth_manager, client.auth_manager.fallback_reason)
    sweep.status()
    # A subscription token the API refuses for anything but Claude Code.
    limited_access, limited_refresh = server.issue_tokens(claude_code_only=True)
    write_auth_file(auth_file_path(home), limited_access, limited_refresh)
    client = ClaudeClient(max_retries=0)
    ask(client, sweep)
    assert client.auth_method == "api_key"
    sweep.show(client.auth_manager, client.auth_manager.fallback_reason)
    assert sweep.cli("status", "--json") == 0
    sweep.check()


def test_refusals_and_transient_failures_without_a_key(
    sweep: Sweep, server: FakeAnthropic, home: Path
) -> None:
    path = auth_file_path(home)
    access, refresh = server.issue_tokens(expires_in=-5)
    write_auth_file(path, access, refresh, expires_in=-5)
    # Transient: a 500 whose body quotes the refresh token, then a refusal quoting it too.
    server.token_faults += [
        Fault(500, {"error": "server_error", "error_description": f"while using {refresh}"}),
        Fault(500, {"error": refresh, "error_description": refresh}),
        Fault(401, {"error": {"type": "authentication_error", "message": f"no {refresh}"}}),
    ]
    client = ClaudeClient(max_retries=0)  # spends the first 500: backing off
    manager = client.auth_manager.token_manager
    assert manager is not None
    for _ in range(2):  # failing fast while backing off, then the second 500
        with pytest.raises(TokenRefreshError) as transient:
            ask(client, sweep)
        sweep.error(transient.value)
        skip_backoff(manager)
    with pytest.raises(anthropic.AuthenticationError) as refused:
        ask(client, sweep)
    sweep.error(refused.value)
    sweep.show(client.auth_manager, client.auth_manager.token_manager)
    sweep.status()
    assert sweep.cli("status", "--json") in (0, 1)
    # No credential at all.
    path.unlink()
    with pytest.raises(ClaudeAuthError) as missing:
        ClaudeClient()
    sweep.error(missing.value)
    sweep.check()


BROKEN = {
    "truncated_json": '{"access_token": "%(a)s", "refresh_token": "%(r)s", "token_ex',
    "not_an_object": '["%(a)s", "%(r)s"]',
    "bad_types": '{"access_token": ["%(a)s"], "refresh_token": {"t": "%(r)s"}, "token_expiry": 1}',
    "bad_expiry": '{"access_token": "%(a)s", "refresh_token": "%(r)s", "token_expiry": "%(r)s"}',
    "claude_code_not_an_object": '{"claudeAiOauth": "%(a)s %(r)s"}',
    "claude_code_bad_scopes": '{"claudeAiOauth": {"accessToken": "%(a)s", "scopes": "%(r)s"}',
    "not_utf8": b'{"access_token": "%(a)s\xff\xfe", "refresh_token": "%(r)s"}',
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_token_files(
    case: str, sweep: Sweep, server: FakeAnthropic, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    access, refresh = server.issue_tokens()
    template = BROKEN[case]
    raw = (template.encode() if isinstance(template, str) else template) % {
        b"a": access.encode(),
        b"r": refresh.encode(),
    }
    for path in (auth_file_path(home), claude_code_path(home)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
        os.chmod(path, 0o600)
    status = sweep.status()
    assert status["source"] is None
    assert sweep.cli("status", "--json") == 1
    assert sweep.cli("status") == 1
    for attempt in (
        lambda: OAuthTokenManager(token_file=auth_file_path(home)),
        UnifiedAuthManager,
        ClaudeClient,
    ):
        with pytest.raises((ClaudeAuthError, ValueError)) as caught:
            attempt()
        sweep.error(caught.value)
    # With a key to fall back on, the broken files are reported (not quoted) and skipped.
    monkeypatch.setenv("ANTHROPIC_API_KEY", server.add_api_key())
    manager = UnifiedAuthManager()
    assert manager.auth_method == "api_key"
    sweep.show(manager, *manager.reports)
    sweep.status()
    sweep.check()


def test_world_writable_file_and_directory_in_place(
    sweep: Sweep, server: FakeAnthropic, home: Path
) -> None:
    access, refresh = server.issue_tokens()
    write_auth_file(auth_file_path(home), access, refresh)
    os.chmod(auth_file_path(home), 0o666)
    claude_code_path(home).mkdir(parents=True)
    sweep.status()
    assert sweep.cli("status") == 1
    with pytest.raises(ClaudeAuthError) as caught:
        ClaudeClient()
    sweep.error(caught.value)
    sweep.check()


def test_environment_credentials_and_cli_subprocess(
    sweep: Sweep, server: FakeAnthropic, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    access, refresh = server.issue_tokens()
    write_auth_file(auth_file_path(home), access, refresh)
    long_lived, _ = server.issue_tokens()
    bearer = server.add_api_key()  # a gateway's static bearer token
    key = server.add_api_key()
    monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", long_lived)
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", bearer)
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    monkeypatch.setenv("CLAUDE_AUTH_FILE", str(home / "missing.json"))
    sweep.status()
    assert sweep.cli("status", "--json") == 0
    for arguments in (["status", "--json"], ["--debug", "status", "--json"], ["status"]):
        done = subprocess.run(
            [str(SCRIPT), *arguments], capture_output=True, text=True, env=dict(os.environ)
        )
        assert done.returncode == 0, done.stderr
        sweep.show(done.stdout, done.stderr)
    for explicit in (
        {"api_key": key},
        {"auth_token": bearer},
        {"token_file": auth_file_path(home)},
    ):
        client = ClaudeClient(**explicit)  # type: ignore[arg-type]
        ask(client, sweep)
        sweep.show(client, client.auth_manager, client.auth_manager.credential)
    monkeypatch.delenv("CLAUDE_AUTH_FILE")
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN")
    auth_file_path(home).unlink()
    client = ClaudeClient()
    assert client.auth_source == "claude_code_env"
    ask(client, sweep)
    sweep.show(client, client.auth_manager, client.auth_manager.token_source)
    sweep.check()


def test_status_check_shows_no_secret_even_when_the_endpoint_echoes_one(
    sweep: Sweep, server: FakeAnthropic, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    access, refresh = server.issue_tokens(expires_in=-5)
    write_auth_file(auth_file_path(home), access, refresh, expires_in=-5)
    server.token_faults.append(
        Fault(400, {"error": "invalid_grant", "error_description": f"bad token {refresh}"})
    )
    assert sweep.cli("status", "--check", "--json") == 1
    # The refusal is kept, scrubbed, beside the file for the other processes.
    sweep.show(auth_file_path(home).with_name("auth.json.oauth.state").read_text())
    # A new login: this time the refresh works and the check passes.
    access, refresh = server.issue_tokens(expires_in=-5)
    write_auth_file(auth_file_path(home), access, refresh, expires_in=-5)
    assert sweep.cli("status", "--check") == 0
    bad_key = "sk-ant-api03-" + "q" * 40 + "BAD7"
    sweep.planted.add(bad_key)
    monkeypatch.setenv("ANTHROPIC_API_KEY", bad_key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
    auth_file_path(home).unlink()
    assert sweep.cli("status", "--check", "--json") == 1
    sweep.check()


@pytest.mark.parametrize("token", ["sk-ant-oat01-N0cI__dxndWXnsh11WzS", "N0cI__dxndWXnsh11WzS"])
def test_a_token_put_in_a_label_field_is_not_shown(home: Path, token: str) -> None:
    """Found by test_fuzz: a token text in ``subscriptionType`` (or a scope) reached status."""
    path = home / ".claude" / ".credentials.json"
    path.parent.mkdir(mode=0o700)
    document = {
        "claudeAiOauth": {
            "accessToken": token,
            "refreshToken": token,
            "expiresAt": 4_000_000_000_000,
            "scopes": ["user:inference", token],
            "subscriptionType": token,  # the token's text, or any other odd text
            "rateLimitTier": "default_claude_max_20x",
        }
    }
    path.write_text(json.dumps(document))
    path.chmod(0o600)
    for arguments in (("status",), ("status", "--json")):
        result = run_cli(*arguments)
        assert result.returncode == 0, result.stderr
        assert token[:12] not in result.stdout + result.stderr
        assert "default_claude_max_20x" in result.stdout


def test_a_token_put_in_the_token_url_is_not_echoed(home: Path) -> None:
    """Found by test_fuzz (lowest leg): a token pasted as ``token_url`` was quoted in the
    error that ``status`` shows."""
    token = "sk-ant-oat01-N0cI__dxndWXnsh11WzSabc"
    write_auth_file(auth_file_path(home), token, "sk-ant-ort01-refresh-x", token_url=token)
    for arguments in (("status",), ("status", "--json")):
        result = run_cli(*arguments)
        assert token[:12] not in result.stdout + result.stderr
        assert token[-12:] not in result.stdout + result.stderr
        assert "is not a URL" in result.stdout
