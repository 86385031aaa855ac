"""Fixtures for the framework tests: tests/conftest.py's, plus logins and a network guard.

These tests need the frameworks (``pip install -e '.[langchain,litellm,pydantic-ai,instructor]'``)
and run in their own venv (``.ci/run`` makes ``.venv-integrations``). Every framework is kept
offline: its switches are set below, before any of them is imported, and an audit hook refuses
any connection or name lookup that is not loopback, so a test that reaches out fails.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

OFFLINE = {
    "LITELLM_OFFLINE_MODE": "true",  # LiteLLM: bundled catalogs, checks and tokenizers only
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # LiteLLM: the bundled price list
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",  # LiteLLM: the bundled beta-flag list
    "LITELLM_TELEMETRY": "False",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "HF_HUB_OFFLINE": "1",  # tokenizers LiteLLM may ask the Hugging Face hub for
    "TRANSFORMERS_OFFLINE": "1",
    "OTEL_SDK_DISABLED": "true",
}
os.environ.update(OFFLINE)

TESTS = Path(__file__).resolve().parent.parent / "tests"
_spec = importlib.util.spec_from_file_location("_shared_conftest", TESTS / "conftest.py")
assert _spec is not None and _spec.loader is not None
_shared = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_shared)

from fakeapi import FakeAnthropic  # noqa: E402  (tests/ is on sys.path now)
from helpers import auth_file_path, write_auth_file  # noqa: E402

home = _shared.home
server = _shared.server
oauth_env = _shared.oauth_env

MODEL = "claude-test-1"
PROMPT = [{"role": "user", "content": "hi"}]

# ----- no network but loopback ------------------------------------------------------------------

OUTSIDE_CALLS: list[str] = []


def _loopback(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str) or host in ("", "localhost"):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _guard(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect":
        address = args[1]
        if isinstance(address, tuple) and not _loopback(address[0]):
            OUTSIDE_CALLS.append(f"connect {address[0]}")
            raise ConnectionRefusedError(f"test guard: no network outside loopback ({address[0]})")
    elif event == "socket.getaddrinfo" and args[0] is not None and not _loopback(args[0]):
        OUTSIDE_CALLS.append(f"getaddrinfo {args[0]!r}")
        raise OSError(f"test guard: no name lookups outside loopback ({args[0]!r})")


sys.addaudithook(_guard)


@pytest.fixture(autouse=True)
def _no_outside_calls() -> Iterator[None]:
    """Fail any test during which something tried to reach beyond 127.0.0.1."""
    before = len(OUTSIDE_CALLS)
    yield
    assert OUTSIDE_CALLS[before:] == [], "a framework tried to use the network"


@pytest.fixture(autouse=True)
def _offline_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/conftest.py's ``home`` fixture isolates our variables; keep the frameworks' too."""
    for name, value in OFFLINE.items():
        monkeypatch.setenv(name, value)


# ----- logins -----------------------------------------------------------------------------------


@pytest.fixture
def api_key(oauth_env: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> str:
    """Only ANTHROPIC_API_KEY is set."""
    key = oauth_env.add_api_key()
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    return key


@dataclass
class Login:
    """An OAuth login in ~/.config/claude/auth.json."""

    server: FakeAnthropic
    access_token: str
    refresh_token: str
    expires_at: float

    def wait_until_expired(self) -> None:
        """Real time passes until the access token has expired (for us and for the API)."""
        time.sleep(max(0.0, self.expires_at - time.time()) + 0.05)


def _login(server: FakeAnthropic, home: Path, lifetime: float) -> Login:
    access, refresh = server.issue_tokens(expires_in=lifetime)
    write_auth_file(auth_file_path(home), access, refresh, expires_in=lifetime)
    return Login(server, access, refresh, time.time() + lifetime)


@pytest.fixture
def oauth(oauth_env: FakeAnthropic, home: Path) -> Login:
    """A fresh OAuth login (an hour left); no API key anywhere."""
    return _login(oauth_env, home, 3600)


@pytest.fixture
def short_oauth(oauth_env: FakeAnthropic, home: Path, monkeypatch: pytest.MonkeyPatch) -> Login:
    """An OAuth login whose access token expires in a second (refresh threshold 0 s, so the
    first call uses it as it is and a call after ``wait_until_expired`` needs a refresh)."""
    monkeypatch.setenv("CLAUDE_TOKEN_REFRESH_THRESHOLD", "0")
    return _login(oauth_env, home, 1.0)


def assert_sent_oauth(server: FakeAnthropic, token: str | None = None) -> None:
    """Every API request carried one bearer OAuth token and the OAuth beta flag, no x-api-key."""
    with server.lock:
        records = list(server.api_requests)
    assert records
    for record in records:
        assert "x-api-key" not in record.headers
        assert record.headers["authorization"].startswith("Bearer ")
        assert "oauth-2025-04-20" in record.betas
        assert record.auth_kind == "oauth"
    if token is not None:
        assert records[-1].token == token


def assert_sent_api_key(server: FakeAnthropic, key: str) -> None:
    """Every API request carried exactly that API key and no OAuth beta flag."""
    with server.lock:
        records = list(server.api_requests)
    assert records
    for record in records:
        assert record.auth_kind == "api_key"
        assert record.token == key
        assert not record.has_both_auth_headers
        assert "oauth-2025-04-20" not in record.betas


def refreshed_once(server: FakeAnthropic, login: Login) -> str:
    """Exactly one refresh POST was made, spending the login's refresh token; the new token."""
    with server.lock:
        assert server.token_posts == 1, server.token_posts
        assert server.token_requests[0]["refresh_token"] == login.refresh_token
        records = list(server.api_requests)
    final = records[-1]
    assert final.status == 200
    assert final.token != login.access_token
    return str(final.token)


def pytest_configure(config: pytest.Config) -> None:
    # The frameworks' own import-time noise (pydantic schema warnings in LiteLLM's types).
    config.addinivalue_line("filterwarnings", "ignore::UserWarning:pydantic._internal.*")
