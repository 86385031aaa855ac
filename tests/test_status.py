"""get_auth_status() and `claude-oauth-auth status`: complete, honest, never a secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import auth_file_path, claude_code_path, write_auth_file, write_json

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
