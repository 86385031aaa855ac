"""`claude-oauth-auth status`: the summary, the fix line and the exit code say what the rows say.

Each case runs the installed console script in a fresh HOME against the loopback server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from fakeapi import FakeAnthropic
from helpers import auth_file_path, write_auth_file

from claude_oauth_auth import OAuthRefreshError, OAuthTokenManager

SCRIPT = Path(sys.executable).with_name("claude-oauth-auth")
FALLBACK_ADVICE = "Set ANTHROPIC_API_KEY as a fallback"


def run(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *arguments], capture_output=True, text=True, env=dict(os.environ), timeout=30
    )


def refused_login(server: FakeAnthropic, home: Path, expires_in: float) -> Path:
    """A login whose refresh token the endpoint refused (recorded beside the file)."""
    path = auth_file_path(home)
    access, refresh = server.issue_tokens(expires_in=expires_in)
    write_auth_file(path, access, refresh, expires_in=expires_in)
    server.revoke_refresh_token(refresh)
    try:
        OAuthTokenManager(token_file=path).refresh()
    except OAuthRefreshError:
        pass
    else:
        raise AssertionError("the endpoint accepted a revoked refresh token")
    return path


def test_a_refused_login_is_in_the_summary_the_fix_line_and_the_exit_code(
    oauth_env: FakeAnthropic, home: Path
) -> None:
    path = refused_login(oauth_env, home, expires_in=47 * 60)
    done = run("status")
    row = next(line for line in done.stdout.splitlines() if line.startswith("auth_file "))
    assert "refused" in row and "log in again" in row
    summary = next(line for line in done.stdout.splitlines() if line.startswith("Using OAuth"))
    assert "expires in 47 min" in summary and "refused" in summary, summary
    fix = next(line for line in done.stdout.splitlines() if line.startswith("To fix:"))
    assert str(path) in fix and "claude-oauth-auth save" in fix, fix
    assert done.returncode == 1, done.stdout
    document = json.loads(run("status", "--json").stdout)
    assert document["refused"] and "invalid_grant" in document["refused"]
    assert document["fix"] == fix.removeprefix("To fix: ").rstrip(".")


def test_after_check_refreshed_an_expired_token_status_shows_the_new_expiry(
    oauth_env: FakeAnthropic, home: Path
) -> None:
    access, refresh = oauth_env.issue_tokens(expires_in=-60)
    write_auth_file(auth_file_path(home), access, refresh, expires_in=-60)
    before = run("status")
    # 60 s when written, plus however long the script took to start on a busy machine.
    ago = re.search(r"expired (\d+) s ago", before.stdout)
    assert ago and 60 <= int(ago[1]) < 90, before.stdout
    done = run("status", "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert oauth_env.token_posts == 1
    assert "expired" not in done.stdout, done.stdout
    assert "expires in 60 min" in done.stdout
    assert "Check (GET /v1/models): ok" in done.stdout


def test_without_credentials_check_says_why_once() -> None:
    done = run("status", "--check")
    assert done.returncode == 1
    line = next(line for line in done.stdout.splitlines() if line.startswith("Check"))
    assert line == "Check (GET /v1/models): not checked: no usable credential was found", line


def test_the_api_key_advice_is_shown_once_and_not_after_a_passed_check(
    oauth_env: FakeAnthropic, home: Path
) -> None:
    access, refresh = oauth_env.issue_tokens()
    write_auth_file(auth_file_path(home), access, refresh)
    offline = run("status")
    assert offline.stdout.count(FALLBACK_ADVICE) == 1  # nothing has tried the token yet
    checked = run("status", "--check")
    assert "Check (GET /v1/models): ok" in checked.stdout
    assert FALLBACK_ADVICE not in checked.stdout, checked.stdout
    assert checked.returncode == 0


def test_a_path_with_control_characters_cannot_forge_a_row(
    oauth_env: FakeAnthropic, home: Path
) -> None:
    folder = home / "odd\nforged_row  used  OAuth\x1b[31m"
    path = folder / "auth.json"
    access, refresh = oauth_env.issue_tokens()
    write_auth_file(path, access, refresh)
    done = subprocess.run(
        [str(SCRIPT), "status"],
        capture_output=True,
        text=True,
        env={**os.environ, "CLAUDE_AUTH_FILE": str(path)},
        timeout=30,
    )
    assert not any(line.startswith("forged_row") for line in done.stdout.splitlines())
    assert "\x1b" not in done.stdout and "\\x0a" in done.stdout
