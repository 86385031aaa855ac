"""The FAQ's (spec/faq.md) code blocks, run against the loopback API.

Each test keeps the FAQ's code as written, except where a comment says what had to change
(``create(...)`` placeholders filled in, top-level ``await`` run with ``asyncio.run``).
Placeholder keys such as ``"your-key"`` are registered with the fake server as real keys.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import anthropic._base_client
import pytest
from fakeapi import FakeAnthropic, Fault, RecordedRequest
from helpers import auth_file_path, write_auth_file

MODEL = "claude-3-5-sonnet-20241022"


def records(server: FakeAnthropic) -> list[RecordedRequest]:
    with server.lock:
        return list(server.api_requests)


def credentials_used(server: FakeAnthropic) -> list[tuple[str, str | None]]:
    return [(r.auth_kind, r.token) for r in records(server)]


@pytest.fixture
def tokens(oauth_env: FakeAnthropic, home: Path) -> tuple[str, str]:
    """OAuth tokens in the FAQ's default location, ~/.config/claude/auth.json."""
    access, refresh = oauth_env.issue_tokens()
    write_auth_file(auth_file_path(home), access, refresh)
    return access, refresh


@pytest.fixture
def no_sdk_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's own retries (default max_retries=2) without their 0.5-8 s sleeps."""
    monkeypatch.setattr(
        anthropic._base_client.BaseClient, "_calculate_retry_timeout", lambda *a, **k: 0.0
    )


@pytest.fixture(autouse=True)
def _one_credential_per_request(request: pytest.FixtureRequest) -> Iterator[None]:
    server = request.getfixturevalue("server") if "server" in request.fixturenames else None
    yield
    if server is not None:
        for record in records(server):
            assert not record.has_both_auth_headers, record
            assert record.headers.get("authorization", "").count("Bearer ") <= 1, record


def rate_limited(times: int) -> list[Fault]:
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    return [Fault(429, body, headers={"retry-after-ms": "1"}) for _ in range(times)]


# ----- Authentication ---------------------------------------------------------------------------


def test_check_which_authentication_method(
    tokens: tuple[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from claude_oauth_auth import UnifiedAuthManager

    auth = UnifiedAuthManager()
    print(f"Method: {auth.auth_method}")  # "oauth" or "api_key"

    from claude_oauth_auth import get_auth_status

    status = get_auth_status()
    print(status["summary"])

    out = capsys.readouterr().out
    assert out.startswith("Method: oauth\nUsing OAuth from auth_file")
    assert tokens[0] not in out and tokens[1] not in out

    auth_file_path(Path(os.environ["HOME"])).unlink()
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-from-env")
    assert UnifiedAuthManager().auth_method == "api_key"
    assert get_auth_status()["summary"].startswith("Using an API key from api_key_env")


def test_force_api_key_ignores_oauth(tokens: tuple[str, str], oauth_env: FakeAnthropic) -> None:
    oauth_env.add_api_key("your-key")
    from claude_oauth_auth import ClaudeClient

    client = ClaudeClient(api_key="your-key")  # Ignores OAuth

    client.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert credentials_used(oauth_env) == [("api_key", "your-key")]
    assert oauth_env.token_posts == 0


def test_oauth_without_claude_code(oauth_env: FakeAnthropic) -> None:
    access, refresh = oauth_env.issue_tokens(expires_in=-60)
    your_access_token, your_refresh_token = access, refresh
    from claude_oauth_auth import OAuthTokenManager

    manager = OAuthTokenManager(
        access_token=your_access_token,
        refresh_token=your_refresh_token,
        token_expiry=1234567890,  # Unix timestamp
    )

    from claude_oauth_auth import ClaudeClient

    client = ClaudeClient(oauth_manager=manager, max_retries=0)
    client.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert oauth_env.token_posts == 1
    assert credentials_used(oauth_env) == [("oauth", manager.access_token)]
    assert manager.access_token != access and manager.refresh_token != refresh


def test_rotate_api_keys(oauth_env: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY_NEW", "sk-ant-api03-not-yet-active")
    monkeypatch.setenv("ANTHROPIC_API_KEY_OLD", oauth_env.add_api_key())
    # --- FAQ; `client.messages.create(...)` filled in (Ellipsis is not an argument) ---
    import os

    # Try new key first, fall back to old
    new_key = os.getenv("ANTHROPIC_API_KEY_NEW")
    old_key = os.getenv("ANTHROPIC_API_KEY_OLD")

    from claude_oauth_auth import ClaudeClient

    try:
        client = ClaudeClient(api_key=new_key)
        client.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "t"}])  # fmt: skip  # noqa: E501
    except:  # noqa: E722
        client = ClaudeClient(api_key=old_key)  # Fall back
    # --- end FAQ ---
    client.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "t"}])
    assert [(r.token, r.status) for r in records(oauth_env)] == [
        (new_key, 401),
        (old_key, 200),
    ]


# ----- Usage and Integration ----------------------------------------------------------------------


def test_same_api_as_the_official_client(tokens: tuple[str, str], oauth_env: FakeAnthropic) -> None:
    key = oauth_env.add_api_key()
    kwargs: Any = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}

    # Official SDK
    import anthropic

    client = anthropic.Anthropic(api_key=key)
    response = client.messages.create(**kwargs)

    # claude-oauth-auth (same API)
    from claude_oauth_auth import ClaudeClient

    client = ClaudeClient()
    response2 = client.messages.create(**kwargs)  # Identical

    assert type(response2) is type(response)
    assert response2.content == response.content
    assert credentials_used(oauth_env) == [("api_key", key), ("oauth", tokens[0])]


def test_async_wrapper_around_the_sync_client(
    tokens: tuple[str, str], oauth_env: FakeAnthropic
) -> None:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from claude_oauth_auth import ClaudeClient

    executor = ThreadPoolExecutor()

    async def async_chat(prompt: str) -> Any:
        client = ClaudeClient()
        loop = asyncio.get_event_loop()
        response = await loop.run_in_executor(
            executor,
            lambda: client.messages.create(
                model="claude-3-5-sonnet-20241022",
                max_tokens=100,
                messages=[{"role": "user", "content": prompt}],
            ),
        )
        return response

    # Usage (the FAQ's top-level `await`, run in an event loop)
    response = asyncio.run(async_chat("Hello!"))

    async def several() -> list[Any]:
        return await asyncio.gather(*(async_chat(f"n{i}") for i in range(5)))

    assert response.content[0].text == "Hello from fake API"
    assert len(asyncio.run(several())) == 5
    executor.shutdown()
    assert credentials_used(oauth_env) == [("oauth", tokens[0])] * 6


def test_flask(tokens: tuple[str, str], oauth_env: FakeAnthropic) -> None:
    from flask import Flask, jsonify, request

    from claude_oauth_auth import ClaudeClient

    app = Flask(__name__)
    client = ClaudeClient()  # Create once at startup

    @app.route("/chat", methods=["POST"])
    def chat() -> Any:
        assert request.json is not None
        prompt = request.json["prompt"]
        response = client.messages.create(
            model="claude-3-5-sonnet-20241022",
            max_tokens=1024,
            messages=[{"role": "user", "content": prompt}],
        )
        return jsonify({"response": response.content[0].text})  # type: ignore[union-attr]

    answer = app.test_client().post("/chat", json={"prompt": "hi"})
    assert answer.get_json() == {"response": "Hello from fake API"}
    assert credentials_used(oauth_env) == [("oauth", tokens[0])]


def test_fastapi(tokens: tuple[str, str], oauth_env: FakeAnthropic) -> None:
    # The FAQ's snippet uses `asyncio` without importing it; this module imports it.
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from claude_oauth_auth import ClaudeClient

    app = FastAPI()
    client = ClaudeClient()

    @app.post("/chat")
    async def chat(prompt: str) -> dict[str, Any]:
        # Run in thread pool since Anthropic SDK is sync
        from concurrent.futures import ThreadPoolExecutor

        executor = ThreadPoolExecutor()
        loop = asyncio.get_event_loop()

        response = await loop.run_in_executor(
            executor,
            lambda: client.messages.create(
                model="claude-3-5-sonnet-20241022",
                max_tokens=1024,
                messages=[{"role": "user", "content": prompt}],
            ),
        )
        return {"response": response.content[0].text}  # type: ignore[union-attr]

    with TestClient(app) as http:
        assert http.post("/chat", params={"prompt": "hi"}).json() == {
            "response": "Hello from fake API"
        }
    assert credentials_used(oauth_env) == [("oauth", tokens[0])]


def test_multiple_clients_with_different_credentials(
    tokens: tuple[str, str], oauth_env: FakeAnthropic
) -> None:
    oauth_env.add_api_key("key-for-user-2")
    oauth_env.add_api_key("key-for-user-3")
    from claude_oauth_auth import ClaudeClient

    # Client 1: OAuth
    client1 = ClaudeClient()

    # Client 2: Specific API key
    client2 = ClaudeClient(api_key="key-for-user-2")

    # Client 3: Different API key
    client3 = ClaudeClient(api_key="key-for-user-3")

    for client in (client1, client2, client3, client2, client1):
        client.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}])  # fmt: skip  # noqa: E501
    assert credentials_used(oauth_env) == [
        ("oauth", tokens[0]),
        ("api_key", "key-for-user-2"),
        ("api_key", "key-for-user-3"),
        ("api_key", "key-for-user-2"),
        ("oauth", tokens[0]),
    ]
    assert [c.auth_method for c in (client1, client2, client3)] == ["oauth", "api_key", "api_key"]


def faq_chat_with_backoff(
    prompt: str, max_retries: int = 3, client_options: dict[str, Any] | None = None
) -> Any:
    """The FAQ's rate-limit snippet; ``client_options`` lets a test turn the SDK's retries off."""
    import time

    from anthropic import RateLimitError

    from claude_oauth_auth import ClaudeClient

    client = ClaudeClient(**(client_options or {}))

    for attempt in range(max_retries):
        try:
            return client.messages.create(
                model="claude-3-5-sonnet-20241022",
                max_tokens=1024,
                messages=[{"role": "user", "content": prompt}],
            )
        except RateLimitError:
            if attempt < max_retries - 1:
                wait = 2**attempt
                time.sleep(wait)
            else:
                raise


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept


def test_rate_limit_backoff_loop(
    tokens: tuple[str, str], oauth_env: FakeAnthropic, sleeps: list[float]
) -> None:
    """With the SDK's retries off (max_retries=0), the FAQ's own loop retries: 429, 429, 200."""
    oauth_env.api_faults += rate_limited(2)
    response = faq_chat_with_backoff("hi", client_options={"max_retries": 0})
    assert response.content[0].text == "Hello from fake API"
    assert [r.status for r in records(oauth_env)] == [429, 429, 200]
    assert sleeps == [1, 2]
    assert {r.token for r in records(oauth_env)} == {tokens[0]}


def test_rate_limit_backoff_gives_up(
    tokens: tuple[str, str], oauth_env: FakeAnthropic, sleeps: list[float]
) -> None:
    oauth_env.api_faults += rate_limited(3)
    with pytest.raises(anthropic.RateLimitError):
        faq_chat_with_backoff("hi", client_options={"max_retries": 0})
    assert [r.status for r in records(oauth_env)] == [429, 429, 429]
    assert sleeps == [1, 2]


def test_rate_limit_backoff_as_written(
    tokens: tuple[str, str], oauth_env: FakeAnthropic, sleeps: list[float]
) -> None:
    """As written (ClaudeClient() keeps the SDK's 2 retries), the SDK absorbs both 429s."""
    oauth_env.api_faults += rate_limited(2)
    assert faq_chat_with_backoff("hi").content[0].text == "Hello from fake API"
    assert [r.status for r in records(oauth_env)] == [429, 429, 200]
    assert sleeps == [0.001, 0.001]  # the SDK honoured retry-after-ms; the FAQ loop never slept


def test_jupyter_cell(tokens: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    # Cell 2: Import and use
    from claude_oauth_auth import ClaudeClient

    client = ClaudeClient()
    response = client.messages.create(
        model="claude-3-5-sonnet-20241022",
        max_tokens=100,
        messages=[{"role": "user", "content": "Hello!"}],
    )
    print(response.content[0].text)  # type: ignore[union-attr]
    assert capsys.readouterr().out == "Hello from fake API\n"


# ----- Error Handling ---------------------------------------------------------------------------


def faq_error_handling() -> None:
    """The FAQ's block; ``client.messages.create(...)`` filled in."""
    from anthropic import (
        APIConnectionError,  # Network error
        APIError,  # General API error
        AuthenticationError,  # Invalid credentials
        RateLimitError,  # Rate limit exceeded
    )

    from claude_oauth_auth import ClaudeClient

    try:
        client = ClaudeClient()
        response = client.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
        print(f"OK: {response.content[0].text}")  # type: ignore[union-attr]
    except AuthenticationError:
        print("Invalid credentials")
    except RateLimitError:
        print("Rate limit exceeded")
    except APIConnectionError:
        print("Network error")
    except APIError as e:
        print(f"API error: {e}")


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    "case", ["ok", "no_credentials", "bad_key", "rate_limited", "network", "server_error"]
)
def test_error_handling_block(
    case: str,
    oauth_env: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_sdk_backoff: None,
) -> None:
    if case != "no_credentials":
        key = "sk-ant-api03-unknown" if case == "bad_key" else oauth_env.add_api_key()
        monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    if case == "rate_limited":
        oauth_env.api_faults += rate_limited(3)
    if case == "server_error":
        body = {"type": "error", "error": {"type": "api_error", "message": "boom"}}
        oauth_env.api_faults += [Fault(500, body) for _ in range(3)]
    if case == "network":
        monkeypatch.setenv("ANTHROPIC_BASE_URL", closed_port_url())

    faq_error_handling()

    out = capsys.readouterr().out
    expected = {
        "ok": "OK: Hello from fake API\n",
        "no_credentials": "Invalid credentials\n",
        "bad_key": "Invalid credentials\n",
        "rate_limited": "Rate limit exceeded\n",
        "network": "Network error\n",
        "server_error": "API error: ",
    }[case]
    assert out.startswith(expected)
    if case == "server_error":  # the rest is the SDK's own wording, which changes between versions
        assert "500" in out and "boom" in out
    sent = {"ok": 1, "no_credentials": 0, "bad_key": 1, "network": 0}.get(case, 3)
    assert len(records(oauth_env)) == sent


def test_no_credentials_found(oauth_env: FakeAnthropic, capsys: pytest.CaptureFixture[str]) -> None:
    oauth_env.add_api_key("your-key")
    from claude_oauth_auth import ClaudeClient

    with pytest.raises(anthropic.AuthenticationError) as caught:
        ClaudeClient()
    assert "ANTHROPIC_API_KEY" in str(caught.value)

    client = ClaudeClient(api_key="your-key")

    from claude_oauth_auth import get_auth_status

    print(get_auth_status()["summary"])
    client.models.list()
    assert capsys.readouterr().out == "No usable Claude credentials found.\n"
    assert credentials_used(oauth_env) == [("api_key", "your-key")]


def test_what_if_token_refresh_fails(oauth_env: FakeAnthropic, home: Path) -> None:
    access, refresh = oauth_env.issue_tokens(expires_in=-60)
    write_auth_file(auth_file_path(home), access, refresh, expires_in=-60)
    oauth_env.revoke_refresh_token(refresh)
    oauth_env.add_api_key("backup-key")
    fell_back = False

    from anthropic import AuthenticationError

    from claude_oauth_auth import ClaudeClient

    try:
        client = ClaudeClient()
    except AuthenticationError as error:
        # Re-authenticate or use API key
        fell_back = True
        client = ClaudeClient(api_key="backup-key")
        message = str(error)

    assert "invalid_grant" in message and "ANTHROPIC_API_KEY" in message

    client.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert fell_back
    assert (oauth_env.token_posts, oauth_env.invalid_grants) == (1, 1)
    assert credentials_used(oauth_env) == [("api_key", "backup-key")]


def test_what_if_token_refresh_fails_with_a_key_in_the_environment(
    oauth_env: FakeAnthropic, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FAQ step 1: with ANTHROPIC_API_KEY set, ClaudeClient() falls back instead of raising."""
    access, refresh = oauth_env.issue_tokens(expires_in=-60)
    write_auth_file(auth_file_path(home), access, refresh, expires_in=-60)
    oauth_env.revoke_refresh_token(refresh)
    monkeypatch.setenv("ANTHROPIC_API_KEY", oauth_env.add_api_key("env-key"))
    from claude_oauth_auth import ClaudeClient

    client = ClaudeClient()
    client.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert credentials_used(oauth_env) == [("api_key", "env-key")]


def test_debug_logging_and_diagnostics(
    tokens: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The FAQ calls logging.basicConfig(level=logging.DEBUG); caplog stands in for it here.
    caplog.set_level(logging.DEBUG)

    from claude_oauth_auth import UnifiedAuthManager

    auth = UnifiedAuthManager()  # Will print detailed logs

    from claude_oauth_auth import get_auth_status

    status = get_auth_status()
    print(f"Summary: {status['summary']}")
    print(f"OAuth available: {status['oauth_available']}")
    print(f"API key available: {status['api_key_available']}")

    out = capsys.readouterr().out
    assert auth.auth_method == "oauth"
    assert "OAuth available: True\nAPI key available: False\n" in out
    assert any(r.name.startswith("claude_oauth_auth") for r in caplog.records)
    for secret in tokens:
        assert secret not in caplog.text and secret not in out


# ----- Performance ------------------------------------------------------------------------------


def test_reuse_one_client(tokens: tuple[str, str], oauth_env: FakeAnthropic) -> None:
    from claude_oauth_auth import ClaudeClient

    prompts = ["a", "b", "c"]
    client = ClaudeClient()  # Create once
    for prompt in prompts:
        response = client.messages.create(  # Reuse
            model=MODEL, max_tokens=5, messages=[{"role": "user", "content": prompt}]
        )
        assert response.content
    assert credentials_used(oauth_env) == [("oauth", tokens[0])] * 3


def test_concurrent_requests_process_batch(
    tokens: tuple[str, str], oauth_env: FakeAnthropic
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from claude_oauth_auth import ClaudeClient

    def process_batch(prompts: list[str]) -> list[Any]:
        client = ClaudeClient()
        with ThreadPoolExecutor(max_workers=10) as executor:
            futures = [
                executor.submit(  # the FAQ's `...` filled in
                    client.messages.create,
                    model=MODEL,
                    max_tokens=5,
                    messages=[{"role": "user", "content": prompt}],
                )
                for prompt in prompts
            ]
            return [f.result() for f in futures]

    assert len(process_batch([f"p{i}" for i in range(20)])) == 20
    assert credentials_used(oauth_env) == [("oauth", tokens[0])] * 20


def test_thread_pool_shares_one_client(
    tokens: tuple[str, str], oauth_env: FakeAnthropic, home: Path
) -> None:
    # A token that needs a refresh while the pool runs: one refresh serves every thread.
    oauth_env.refresh_latency = 0.2
    prompts = [f"prompt {i}" for i in range(20)]

    from concurrent.futures import ThreadPoolExecutor

    from claude_oauth_auth import ClaudeClient

    client = ClaudeClient()  # One client, shared across threads
    oauth_env.revoke_access_token(tokens[0])

    def make_request(prompt: str) -> Any:
        return client.messages.create(
            model="claude-3-5-sonnet-20241022",
            max_tokens=100,
            messages=[{"role": "user", "content": prompt}],
        )

    with ThreadPoolExecutor(max_workers=5) as executor:
        results = executor.map(make_request, prompts)
        texts = [r.content[0].text for r in results]

    assert texts == ["Hello from fake API"] * 20
    assert (oauth_env.token_posts, oauth_env.invalid_grants) == (1, 0)
    assert sum(r.status == 200 for r in records(oauth_env)) == 20


def test_lru_cache_wrapper(tokens: tuple[str, str], oauth_env: FakeAnthropic) -> None:
    from functools import lru_cache

    from claude_oauth_auth import ClaudeClient

    client = ClaudeClient()

    @lru_cache(maxsize=100)
    def cached_chat(prompt: str) -> str:
        """Cache responses for repeated prompts"""
        response = client.messages.create(
            model="claude-3-5-sonnet-20241022",
            max_tokens=100,
            messages=[{"role": "user", "content": prompt}],
        )
        return response.content[0].text  # type: ignore[union-attr]

    # First call: hits API
    result1 = cached_chat("What is 2+2?")

    # Second call: returns cached result
    result2 = cached_chat("What is 2+2?")

    assert result1 == result2 == "Hello from fake API"
    assert len(records(oauth_env)) == 1
    assert cached_chat.cache_info().hits == 1


# ----- Troubleshooting and advanced -------------------------------------------------------------


def test_why_cant_the_library_find_my_credentials(
    tokens: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    # 1. Check OAuth file
    oauth_file = os.path.expanduser("~/.config/claude/auth.json")
    print(f"OAuth file exists: {os.path.exists(oauth_file)}")

    # 2. Check API key
    api_key = os.getenv("ANTHROPIC_API_KEY")
    print(f"API key set: {api_key is not None}")

    # 3. Check custom location
    custom = os.getenv("CLAUDE_AUTH_FILE")
    print(f"Custom location: {custom}")

    assert capsys.readouterr().out == (
        "OAuth file exists: True\nAPI key set: False\nCustom location: None\n"
    )


def test_my_tokens_keep_expiring(
    tokens: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from claude_oauth_auth import OAuthTokenManager

    manager = OAuthTokenManager()
    assert manager.token_file is not None
    with open(manager.token_file) as f:
        tokens_on_disk = json.load(f)

    from datetime import datetime

    expiry = datetime.fromtimestamp(tokens_on_disk["token_expiry"])
    print(f"Token expires: {expiry}")

    import time

    print(f"Hours until expiry: {(tokens_on_disk['token_expiry'] - time.time()) / 3600}")
    out = capsys.readouterr().out
    assert "Token expires: " in out and "Hours until expiry: 0.99" in out


def test_custom_discovery(oauth_env: FakeAnthropic) -> None:
    key = oauth_env.add_api_key()
    from claude_oauth_auth import ClaudeClient, UnifiedAuthManager

    class CustomAuth(UnifiedAuthManager):
        def load_from_somewhere(self) -> str:  # the FAQ leaves this to the reader
            return key

        def _discover_credentials(self) -> Any:
            # Your custom logic
            custom_creds = self.load_from_somewhere()
            if custom_creds:
                return custom_creds
            return super()._discover_credentials()

    client = ClaudeClient(auth_manager=CustomAuth())
    client.models.list()
    assert client.auth_method == "api_key"
    assert credentials_used(oauth_env) == [("api_key", key)]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import claude_oauth_auth

    print(claude_oauth_auth.__version__)
    assert capsys.readouterr().out.strip().count(".") == 2
