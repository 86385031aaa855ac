"""Store URLs (``CLAUDE_TOKEN_STORE``, ``--store``): a bad one is a clear error when it is read.

Through the client, ``status`` and the console script, in a temporary HOME: a URL whose options
Redis would refuse at its first command, or whose parts hold control characters, makes the
source invalid with a reason naming the variable, and the cascade moves on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakeapi import FakeAnthropic

from claude_oauth_auth import ClaudeClient, StoreError, get_auth_status
from claude_oauth_auth.stores._url import store_from_url

SCRIPT = Path(sys.executable).with_name("claude-oauth-auth")

BAD_REDIS_URLS = {
    "a misspelt key option": ("redis://127.0.0.1:6399/0?Key=team-a", "'Key'"),
    "an unknown option": ("redis://127.0.0.1:6399/0?foo=", "'foo'"),
    "an unknown option with a value": ("redis://127.0.0.1:6399/0?foo=bar", "'foo'"),
    "a TLS option on plain redis": ("redis://127.0.0.1:6399/0?ssl_cert_reqs=", "rediss://"),
    "a bad value": ("redis://127.0.0.1:6399/0?db=x", "'db'"),
}


@pytest.mark.parametrize("case", sorted(BAD_REDIS_URLS))
def test_a_redis_url_with_options_redis_refuses_is_refused_when_parsed(case: str) -> None:
    url, named = BAD_REDIS_URLS[case]
    with pytest.raises(StoreError) as caught:
        store_from_url(url)
    assert named in str(caught.value), str(caught.value)
    assert "127.0.0.1:6399" in str(caught.value)


@pytest.mark.parametrize("case", sorted(BAD_REDIS_URLS))
def test_the_client_moves_on_to_an_api_key_and_status_names_the_variable(
    case: str, oauth_env: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, named = BAD_REDIS_URLS[case]
    monkeypatch.setenv("CLAUDE_TOKEN_STORE", url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", oauth_env.add_api_key())
    client = ClaudeClient()
    assert client.auth_source == "api_key_env"
    row = next(r for r in get_auth_status()["sources"] if r["name"] == "token_store_env")
    assert row["state"] == "invalid" and row["detail"].startswith("CLAUDE_TOKEN_STORE: ")
    assert named in row["detail"]


@pytest.mark.parametrize("command", ["save", "logout", "keep-fresh"])
def test_commands_print_the_reason_not_a_python_error(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDE_TOKEN_STORE", BAD_REDIS_URLS["a misspelt key option"][0])
    tokens = '{"access_token": "sk-ant-oat01-x", "refresh_token": "sk-ant-ort01-y"}'
    done = subprocess.run(
        [str(SCRIPT), command],
        input=tokens,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=30,
    )
    assert "Traceback" not in done.stderr and "TypeError" not in done.stderr + done.stdout
    assert "'Key'" in done.stderr + done.stdout, done.stderr + done.stdout
    assert done.returncode in (1, 2)


def test_status_never_prints_control_characters_from_a_store_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLAUDE_TOKEN_STORE", "keyring://svc%0Aforged_row  used  x/user%1b[31m")
    done = subprocess.run(
        [str(SCRIPT), "status"], capture_output=True, text=True, env=dict(os.environ), timeout=30
    )
    assert not any(line.startswith("forged_row") for line in done.stdout.splitlines())
    assert "\x1b" not in done.stdout
    row = next(line for line in done.stdout.splitlines() if line.startswith("token_store_env"))
    assert "invalid" in row and "control characters" in row, row
