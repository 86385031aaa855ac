"""`claude-oauth-auth status --check`: one models-list call says ok, refused or unreachable.

Every case runs the installed console script in a fresh HOME against the loopback server,
and asserts the exit code, the verdict, the reason and that it took under 5 seconds.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fakeapi import FakeAnthropic, Fault, UnifiedLimits
from helpers import (
    auth_file_path,
    claude_code_path,
    write_auth_file,
    write_claude_code_file,
)

SCRIPT = Path(sys.executable).with_name("claude-oauth-auth")
# Well under the check's own 10 s timeout (a check that waited one out fails), with room for
# a busy machine.
CHECK_BUDGET_SECONDS = 5.0


@dataclass
class Checked:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def document(self) -> Any:
        return json.loads(self.stdout)


def status(*arguments: str) -> Checked:
    started = time.monotonic()
    done = subprocess.run(
        [str(SCRIPT), "status", *arguments],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=30,
    )
    return Checked(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def assert_secret_free(result: Checked, *secrets: str) -> None:
    for secret in secrets:
        for start in range(0, len(secret) - 8):
            assert secret[start : start + 8] not in result.stdout + result.stderr


def check_of(result: Checked) -> dict[str, Any]:
    check: dict[str, Any] = result.document["check"]
    # The check itself (not the interpreter start-up) stays well under the budget.
    assert check.get("seconds", 0) < CHECK_BUDGET_SECONDS, check
    return check


def test_ok_for_a_working_api_key(
    oauth_env: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = oauth_env.add_api_key()
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    result = status("--check", "--json")
    assert result.returncode == 0, result.stderr
    check = check_of(result)
    assert check["result"] == "ok" and check["source"] == "api_key_env"
    assert [r.path for r in oauth_env.api_requests] == ["/v1/models"]
    assert_secret_free(result, key)
    text = status("--check")
    assert text.returncode == 0 and "Check (GET /v1/models): ok" in text.stdout


def test_ok_for_a_working_oauth_login(oauth_env: FakeAnthropic, home: Path) -> None:
    access, refresh = oauth_env.issue_tokens()
    write_claude_code_file(claude_code_path(home), access, refresh)
    result = status("--check", "--json")
    assert result.returncode == 0, result.stderr
    check = check_of(result)
    assert check["result"] == "ok" and check["source"] == "claude_code"
    request = oauth_env.api_requests[-1]
    assert request.auth_kind == "oauth" and "oauth-2025-04-20" in request.betas
    assert oauth_env.token_posts == 0  # a fresh token is not refreshed for a check
    assert_secret_free(result, access, refresh)


def test_refused_for_a_revoked_refresh_token(oauth_env: FakeAnthropic, home: Path) -> None:
    access, refresh = oauth_env.issue_tokens(expires_in=-60)
    oauth_env.revoke_refresh_token(refresh)
    write_auth_file(auth_file_path(home), access, refresh, expires_in=-60)
    # Offline, status cannot know: the login looks refreshable.
    assert status().returncode == 0
    result = status("--check", "--json")
    assert result.returncode == 1
    check = check_of(result)
    assert check["result"] == "refused" and "invalid_grant" in check["reason"], check
    text = status("--check")
    assert text.returncode == 1 and "refused" in text.stdout
    assert text.stderr.count("invalid_grant") <= 1  # one cause, at most one message
    assert_secret_free(result, access, refresh)
    assert_secret_free(text, access, refresh)


def test_refused_for_a_claude_code_only_token(oauth_env: FakeAnthropic, home: Path) -> None:
    access, refresh = oauth_env.issue_tokens(claude_code_only=True)
    write_claude_code_file(claude_code_path(home), access, refresh)
    result = status("--check", "--json")
    assert result.returncode == 1
    check = check_of(result)
    assert check["result"] == "refused" and "Claude Code" in check["reason"], check
    assert check["reason"].startswith("HTTP 400")


def test_refused_for_a_bad_key(oauth_env: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = "sk-ant-api03-" + "x" * 40 + "BAD1"
    monkeypatch.setenv("ANTHROPIC_API_KEY", bad)
    result = status("--check", "--json")
    assert result.returncode == 1
    check = check_of(result)
    assert check["result"] == "refused" and check["reason"].startswith("HTTP 401"), check
    assert_secret_free(result, bad)


def test_unreachable_for_a_closed_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-" + "y" * 40 + "KEY2")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", closed_port_url())
    result = status("--check", "--json")
    assert result.returncode == 1
    check = check_of(result)
    assert check["result"] == "unreachable", check
    text = status("--check")
    assert text.returncode == 1 and "unreachable" in text.stdout
    assert text.seconds < 10  # the whole process, SDK import included


def test_unreachable_token_endpoint_for_an_expired_login(
    oauth_env: FakeAnthropic, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    access, refresh = oauth_env.issue_tokens(expires_in=-60)
    write_auth_file(auth_file_path(home), access, refresh, expires_in=-60)
    monkeypatch.setenv("CLAUDE_OAUTH_TOKEN_URL", closed_port_url() + "/v1/oauth/token")
    result = status("--check")
    assert result.returncode == 1
    assert "unreachable" in result.stdout and "token endpoint" in result.stdout
    # The warning at start-up and the verdict are one cause: the verdict says it, once.
    assert "could not reach the token endpoint" not in result.stderr, result.stderr


def test_fallback_is_ok_and_says_so(
    oauth_env: FakeAnthropic, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    access, refresh = oauth_env.issue_tokens(claude_code_only=True)
    write_claude_code_file(claude_code_path(home), access, refresh)
    monkeypatch.setenv("ANTHROPIC_API_KEY", oauth_env.add_api_key())
    result = status("--check", "--json")
    assert result.returncode == 0, result.stderr
    check = check_of(result)
    assert check["result"] == "ok" and check["source"] == "api_key_env"
    assert "claude_code" in check["fallback"] and "api_key_env" in check["fallback"]


def test_without_credentials_the_check_is_skipped_and_exits_1() -> None:
    result = status("--check", "--json")
    assert result.returncode == 1
    assert result.document["check"]["result"] == "skipped"


def test_without_check_status_makes_no_request(
    oauth_env: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", oauth_env.add_api_key())
    result = status("--json")
    assert result.returncode == 0 and "check" not in result.document
    assert oauth_env.api_requests == []


# ----- the quota the check's answer reports ----------------------------------------------------


def test_check_prints_the_quota_its_answer_carries(oauth_env: FakeAnthropic, home: Path) -> None:
    access, refresh = oauth_env.issue_tokens()
    write_claude_code_file(claude_code_path(home), access, refresh)
    oauth_env.unified_paths = ("/v1/messages", "/v1/models")
    before = time.time()
    result = status("--check", "--json")
    assert result.returncode == 0, result.stderr
    quota = result.document["quota"]
    assert quota["status"] == "allowed" and quota["representative_claim"] == "five_hour"
    assert set(quota["windows"]) == {"5h", "7d"}
    five_hour = quota["windows"]["5h"]
    assert five_hour["utilization"] == 0.62 and five_hour["status"] == "allowed"
    assert five_hour["resets_at"] == pytest.approx(before + 3 * 3600, abs=10)
    assert quota["windows"]["7d"]["utilization"] == 0.18
    assert quota["overage_status"] == "rejected" and quota["fallback"] == "available"
    assert "quota" not in result.document["check"]
    text = status("--check")
    assert text.returncode == 0, text.stderr
    lines = [line for line in text.stdout.splitlines() if line.startswith("Quota: ")]
    assert len(lines) == 1, text.stdout
    assert lines[0].startswith("Quota: 5-hour window: 62 % used, resets ")
    assert "(binding); 7-day: 18 % used, resets " in lines[0]
    assert [r.path for r in oauth_env.api_requests] == ["/v1/models", "/v1/models"]  # one each


def test_check_prints_the_quota_of_a_rate_limited_answer(
    oauth_env: FakeAnthropic, home: Path
) -> None:
    access, refresh = oauth_env.issue_tokens()
    write_claude_code_file(claude_code_path(home), access, refresh)
    oauth_env.unified_paths = ("/v1/models",)
    oauth_env.unified_limits = UnifiedLimits(status="rejected", utilization={"5h": 1.0})
    error = {"type": "error", "error": {"type": "rate_limit_error", "message": "limited"}}
    oauth_env.api_faults.append(Fault(429, error))
    text = status("--check")
    assert text.returncode == 1 and "unreachable" in text.stdout
    assert "Quota: 5-hour window: 100 % used, resets " in text.stdout
    assert "(rejected, binding); status: rejected" in text.stdout


def test_check_without_unified_headers_prints_no_quota(
    oauth_env: FakeAnthropic, home: Path
) -> None:
    access, refresh = oauth_env.issue_tokens()
    write_claude_code_file(claude_code_path(home), access, refresh)
    result = status("--check", "--json")  # the models list carries none by default
    assert result.returncode == 0 and result.document["quota"] is None
    text = status("--check")
    assert text.returncode == 0 and "Quota" not in text.stdout


def test_check_with_an_api_key_prints_no_quota(
    oauth_env: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", oauth_env.add_api_key())
    oauth_env.unified_paths = ("/v1/messages", "/v1/models")  # sent to OAuth requests only
    result = status("--check", "--json")
    assert result.returncode == 0 and result.document["quota"] is None
