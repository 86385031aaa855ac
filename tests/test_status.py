"""get_auth_status() and `claude-oauth-auth status`: complete, honest, never a secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from helpers import (
    auth_file_path,
    claude_code_path,
    write_auth_file,
    write_claude_code_file,
    write_json,
)

from claude_oauth_auth import get_auth_status

ACCESS = "sk-ant-oat01-" + "s" * 40 + "ACC1"
REFRESH = "sk-ant-ort01-" + "t" * 40 + "REF1"
KEY = "sk-ant-api03-" + "u" * 40 + "KEY1"
KEYS = {
    "summary",
    "auth_method",
    "source",
    "oauth_available",
    "oauth_token_valid",
    "oauth_token_expiry",
    "oauth_token_file",
    "api_key_available",
    "api_key_source",
    "sources",
    "recommendation",
}
SCRIPT = Path(sys.executable).with_name("claude-oauth-auth")


def assert_no_secret(text: str) -> None:
    for secret in (ACCESS, REFRESH, KEY):
        for start in range(0, len(secret) - 12):
            assert secret[start : start + 12] not in text, "a 12-character piece of a secret leaked"


def test_nothing_found() -> None:
    status = get_auth_status()
    assert set(status) >= KEYS
    assert status["source"] is None and status["auth_method"] is None
    assert not status["oauth_available"] and not status["api_key_available"]
    assert "No usable" in status["summary"]
    assert "ANTHROPIC_API_KEY" in status["recommendation"]
    assert status["sources"][0]["name"] == "auth_file_env"
    assert all(s["state"] == "absent" for s in status["sources"])


def test_oauth_with_api_key_fallback(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_auth_file(auth_file_path(home), ACCESS, REFRESH, expires_in=3600)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    status = get_auth_status()
    assert status["auth_method"] == "oauth" and status["source"] == "auth_file"
    assert status["oauth_available"] and status["oauth_token_valid"]
    assert status["oauth_token_file"] == str(auth_file_path(home))
    assert 3500 < status["oauth_token_expiry"] - __import__("time").time() <= 3600
    assert status["api_key_available"] and status["api_key_source"] == "api_key_env"
    states = {s["name"]: s["state"] for s in status["sources"]}
    assert states["auth_file"] == "used" and states["api_key_env"] == "available"
    assert status["recommendation"] is None
    assert_no_secret(json.dumps(status))
    assert "ACC1" in json.dumps(status)  # the last 4 characters help tell tokens apart


def test_broken_sources_are_named(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_json(auth_file_path(home), {"access_token": ACCESS, "token_expiry": "soon"})
    write_json(claude_code_path(home), "]")
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    status = get_auth_status()
    assert status["source"] == "api_key_env"
    assert "auth_file" in status["summary"] and "claude_code" in status["summary"]
    assert "auth_file" in status["recommendation"]
    assert_no_secret(json.dumps(status))


def test_expired_oauth_is_reported(home: Path) -> None:
    write_auth_file(auth_file_path(home), ACCESS, REFRESH, expires_in=-600)
    status = get_auth_status()
    assert status["oauth_available"] and not status["oauth_token_valid"]
    assert "expired" in status["summary"]
    assert "Set ANTHROPIC_API_KEY" in status["recommendation"]


def run(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *arguments], capture_output=True, text=True, env=env or dict(os.environ)
    )


def test_cli_status_without_credentials_exits_1_and_explains() -> None:
    result = run("status")
    assert result.returncode == 1
    assert "api_key_env" in result.stdout and "No usable" in result.stdout
    assert "Traceback" not in result.stderr
    last = result.stdout.rstrip().splitlines()[-1]
    assert last.startswith("To fix: set ANTHROPIC_API_KEY") and not last.endswith("..")


def test_cli_status_json_with_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    result = run("status", "--json")
    assert result.returncode == 0
    status = json.loads(result.stdout)
    assert status["source"] == "api_key_env"
    assert_no_secret(result.stdout + result.stderr)


def test_cli_help_documents_exit_codes() -> None:
    result = run("status", "--help")
    assert result.returncode == 0 and "Exits 0" in result.stdout
    top = run("--help")
    assert "exit codes" in top.stdout
    assert run("no-such-command").returncode == 2
    assert run().returncode == 2


def test_python_dash_m_works() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "claude_oauth_auth", "status"], capture_output=True, text=True
    )
    assert result.returncode == 1 and "api_key_env" in result.stdout


def test_import_status_and_cli_never_import_anthropic(home: Path) -> None:
    write_auth_file(auth_file_path(home), ACCESS, REFRESH)
    code = (
        "import sys, claude_oauth_auth\n"
        "claude_oauth_auth.get_auth_status()\n"
        "from claude_oauth_auth import cli\n"
        "cli.main(['status', '--json'])\n"
        "assert 'anthropic' not in sys.modules, 'anthropic was imported'\n"
        "assert 'httpx2' not in sys.modules and 'httpx' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ----- what status shows (through the console script, in a fresh HOME) ----------------------


def status_json(*arguments: str) -> tuple[int, dict[str, object], str]:
    result = run("status", "--json", *arguments)
    return result.returncode, json.loads(result.stdout), result.stderr


def test_claude_code_login_shows_expiry_scopes_plan_and_urls(home: Path) -> None:
    path = claude_code_path(home)
    write_claude_code_file(path, ACCESS, REFRESH, expires_in=5 * 3600, rateLimitTier="tier_x")
    document = json.loads(path.read_text())
    document["claudeAiOauth"]["rateLimitTier"] = "default_claude_max_20x"
    write_json(path, document)
    result = run("status")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    expires = datetime.fromtimestamp(document["claudeAiOauth"]["expiresAt"] / 1000).astimezone()
    assert f"expires:      {expires:%Y-%m-%d %H:%M}" in text and "(in 5 h)" in text
    assert "scopes:       user:inference user:profile" in text
    assert "subscription: max (rate-limit tier default_claude_max_20x)" in text
    assert "can refresh:  yes" in text
    assert "API base URL: https://api.anthropic.com" in text
    assert "token URL:    https://platform.claude.com/v1/oauth/token" in text
    assert f"location:     {path}" in text
    assert_no_secret(text + result.stderr)
    code, status, _ = status_json()
    assert code == 0
    credential = status["credential"]
    assert isinstance(credential, dict)
    assert credential["kind"] == "oauth" and credential["source"] == "claude_code"
    assert credential["subscription_type"] == "max" and credential["can_refresh"] is True
    assert credential["scopes"] == ["user:inference", "user:profile"]
    assert abs(credential["expires_in"] - 5 * 3600) < 60
    assert status["api_base_url"] == "https://api.anthropic.com"


def test_api_key_shows_where_it_comes_from_and_the_base_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    result = run("status")
    assert result.returncode == 0
    assert "Credential in use: API key (...KEY1) from api_key_env" in result.stdout
    assert "location:     environment variable ANTHROPIC_API_KEY" in result.stdout
    assert "API base URL: http://127.0.0.1:9" in result.stdout
    assert "token URL" not in result.stdout
    assert_no_secret(result.stdout)


CONFIG_ERRORS = {
    "token URL variable": ({"CLAUDE_OAUTH_TOKEN_URL": "http://example.com/token"}, {}),
    "threshold": ({"CLAUDE_TOKEN_REFRESH_THRESHOLD": "5m"}, {}),
    "token_url in auth.json": ({}, {"token_url": "http://example.com/token"}),
}


@pytest.mark.parametrize("case", list(CONFIG_ERRORS))
def test_settings_the_client_refuses_make_the_source_invalid_and_exit_1(
    case: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    variables, extra = CONFIG_ERRORS[case]
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    write_auth_file(auth_file_path(home), ACCESS, REFRESH, **extra)
    code, status, _ = status_json()
    assert code == 1
    states = {s["name"]: s for s in status["sources"]}  # type: ignore[union-attr]
    assert states["auth_file"]["state"] == "invalid"
    reason = states["auth_file"]["detail"]
    assert status["configuration_errors"] == ["auth_file"]
    text = run("status")
    assert text.returncode == 1 and "To fix: auth_file is broken;" in text.stdout
    # The client gives the same reason, in its warning and in its final error.
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    code, status, _ = status_json()
    assert code == 1 and status["source"] == "api_key_env"
    token = run("token")
    assert token.returncode == 0 and token.stdout.strip() == KEY
    assert reason in token.stderr, (reason, token.stderr)
    assert_no_secret(token.stderr)


def test_claude_code_file_without_a_login_is_absent_and_no_client_warns(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_json(claude_code_path(home), {"mcpOAuth": {"server": {"accessToken": "x"}}})
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    code, status, _ = status_json()
    assert code == 0
    entry = next(s for s in status["sources"] if s["name"] == "claude_code")  # type: ignore[union-attr]
    assert entry["state"] == "absent"
    assert entry["detail"].startswith("no Claude login in this file")
    assert "access_token" not in entry["detail"]
    token = run("token")
    assert token.returncode == 0 and token.stderr == ""


def test_messages_use_the_field_names_of_the_files_shape(home: Path) -> None:
    write_json(claude_code_path(home), {"claudeAiOauth": {"refreshToken": REFRESH}})
    code, status, _ = status_json()
    assert code == 1
    entry = next(s for s in status["sources"] if s["name"] == "claude_code")  # type: ignore[union-attr]
    assert entry["state"] == "invalid" and '"accessToken"' in entry["detail"]
    assert "access_token" not in entry["detail"]


def test_expires_at_written_in_seconds_is_read_as_seconds_with_a_note(home: Path) -> None:
    path = claude_code_path(home)
    write_claude_code_file(path, ACCESS, REFRESH)
    document = json.loads(path.read_text())
    document["claudeAiOauth"]["expiresAt"] = int(time.time() + 3 * 3600)  # seconds, not ms
    write_json(path, document)
    result = run("status")
    assert result.returncode == 0
    assert "(in 3 h)" in result.stdout and "days ago" not in result.stdout
    assert "looks like seconds" in result.stdout


@pytest.mark.parametrize(
    ("broken", "fix"),
    [
        ("auth_file", "replace it with `claude-oauth-auth save`"),
        ("claude_code", "run `claude`, then /login"),
    ],
)
def test_to_fix_names_the_broken_source_and_the_command(broken: str, fix: str, home: Path) -> None:
    path = auth_file_path(home) if broken == "auth_file" else claude_code_path(home)
    path.parent.mkdir(parents=True, mode=0o700)
    path.write_text("{not json")
    path.chmod(0o600)
    result = run("status")
    assert result.returncode == 1
    assert f"To fix: {broken} is broken; " in result.stdout and fix in result.stdout
    assert "1 source is broken" in result.stdout and "source(s)" not in result.stdout
    if broken == "auth_file":
        assert str(path) in result.stdout.split("To fix:")[1]
    token = run("token")
    assert token.returncode == 1 and f"To fix: {broken} is broken; " in token.stderr


def test_global_flags_before_or_after_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    plain = run("status").stdout
    for arguments in (["status", "--debug"], ["--debug", "status"]):
        result = run(*arguments)
        assert result.returncode == 0, result.stderr
        assert result.stdout == plain
    for arguments in (["token", "--debug"], ["--debug", "token"]):
        result = run(*arguments)
        assert result.returncode == 0 and "DEBUG claude_oauth_auth" in result.stderr
        assert_no_secret(result.stderr)
    for arguments in (["--json", "status"], ["status", "--json"], ["--json", "status", "--debug"]):
        result = run(*arguments)
        assert result.returncode == 0 and json.loads(result.stdout)["source"] == "api_key_env"
    assert run("--json", "completion", "bash").returncode == 2  # the one command without it


@pytest.mark.parametrize(
    ("variable", "value", "argument"),
    [
        ("CLAUDE_TOKEN_REFRESH_THRESHOLD", "5m", {"refresh_threshold": 600}),
        ("CLAUDE_OAUTH_TOKEN_URL", "http://example.com/token", {"token_url": "https://x.test/t"}),
    ],
)
def test_a_client_argument_wins_over_a_bad_variable_of_the_same_setting(
    variable: str,
    value: str,
    argument: dict[str, object],
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from claude_oauth_auth import UnifiedAuthManager

    write_auth_file(auth_file_path(home), ACCESS, REFRESH)
    monkeypatch.setenv(variable, value)
    with pytest.raises(Exception, match="No Claude credentials"):
        UnifiedAuthManager()  # the variable alone makes auth.json unusable
    auth = UnifiedAuthManager(**argument)  # type: ignore[arg-type]
    assert (auth.source, auth.auth_method) == ("auth_file", "oauth")
