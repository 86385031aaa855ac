"""Our errors reach the caller of ``client.messages.create(...)`` as themselves.

Each test goes through the real SDK and the loopback server, sync and async, and checks what
the caller catches: our type (also an ``anthropic.APIError``, so the SDK neither wraps nor
retries it), the whole message, and how many requests and token POSTs it cost.
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import anthropic
import pytest
from conftest import Clock
from fakeapi import FakeAnthropic, Fault
from helpers import write_auth_file
from redis_server import RedisServer

from claude_oauth_auth import (
    AsyncClaudeClient,
    ClaudeAuthError,
    ClaudeClient,
    OAuthRefreshError,
    OAuthTokenManager,
    StoreError,
    TokenRefreshError,
)
from claude_oauth_auth.lifecycle import _grant as grant_module

MESSAGE: dict[str, Any] = {
    "model": "claude-test-1",
    "max_tokens": 5,
    "messages": [{"role": "user", "content": "hi"}],
}


@pytest.fixture
def token_path(home: Path) -> Path:
    return home / ".config" / "claude" / "auth.json"


def expired_login(server: FakeAnthropic, path: Path) -> None:
    access, refresh = server.issue_tokens(expires_in=-5)
    write_auth_file(path, access, refresh, expires_in=-5)


def ask(client: ClaudeClient | AsyncClaudeClient) -> Any:
    if isinstance(client, AsyncClaudeClient):
        return asyncio.run(client.messages.create(**MESSAGE))
    return client.messages.create(**MESSAGE)


def make_client(mode: str, **kwargs: Any) -> ClaudeClient | AsyncClaudeClient:
    return AsyncClaudeClient(**kwargs) if mode == "async" else ClaudeClient(**kwargs)


MODES = ["sync", "async"]


def assert_ours(error: BaseException, kind: type[ClaudeAuthError]) -> None:
    """Our own type, also an SDK error that ``except anthropic.APIError`` catches, not a
    connection error (which the SDK retries)."""
    assert isinstance(error, kind), type(error).__mro__
    assert isinstance(error, anthropic.APIError)
    assert not isinstance(error, anthropic.APIConnectionError)
    assert type(error).__name__ == kind.__name__


@pytest.mark.parametrize("mode", MODES)
def test_a_hanging_token_endpoint_surfaces_our_error_whole_without_an_sdk_retry(
    mode: str, oauth_env: FakeAnthropic, token_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(grant_module, "REFRESH_TIMEOUT_SECONDS", 0.3)
    expired_login(oauth_env, token_path)
    oauth_env.token_faults += [Fault(200, {}, delay=1.0) for _ in range(4)]
    client = make_client(mode, max_retries=2)
    posts = oauth_env.token_posts  # building the client may have tried once
    with pytest.raises(TokenRefreshError) as caught:
        ask(client)
    assert_ours(caught.value, TokenRefreshError)
    text = str(caught.value)
    assert text.endswith(" s") and oauth_env.token_url in text, text
    assert "timed out" in text, text
    assert oauth_env.token_posts - posts <= 1  # no SDK retry: at most our own one attempt
    assert oauth_env.api_requests == []  # the expired token was never sent


@pytest.mark.parametrize("mode", MODES)
def test_a_backoff_surfaces_our_error_with_its_whole_reason(
    mode: str, oauth_env: FakeAnthropic, token_path: Path
) -> None:
    expired_login(oauth_env, token_path)
    oauth_env.token_faults += [Fault(503, {"error": "overloaded"}, {"Retry-After": "30"})]
    client = make_client(mode, max_retries=2)
    assert oauth_env.token_posts == 1  # the client's first refresh failed: 30 s of backoff
    for _ in range(3):
        with pytest.raises(TokenRefreshError) as caught:
            ask(client)
        assert_ours(caught.value, TokenRefreshError)
        text = str(caught.value)
        assert "backing off" in text and "HTTP 503" in text and "next attempt in" in text
        assert 25 <= (caught.value.retry_after or 0) <= 30
    assert oauth_env.token_posts == 1 and oauth_env.api_requests == []


LONG_FOLDER = "a-folder-with-a-long-name-" * 4

# In a read-only folder (a read-only bind mount for root, who ignores permissions): what the
# caller of messages.create catches, sync and async, with the SDK's retries on.
READ_ONLY_CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    import anthropic
    from claude_oauth_auth import AsyncClaudeClient, ClaudeClient
    message = dict(
        model="claude-test-1", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    )
    seen = []
    for make in (ClaudeClient, AsyncClaudeClient):
        client = make(max_retries=2)
        for _ in range(2):
            try:
                call = client.messages.create(**message)
                asyncio.run(call) if make is AsyncClaudeClient else call
            except Exception as error:
                names = [cls.__name__ for cls in type(error).__mro__]
                sdk = isinstance(error, anthropic.APIError)
                seen.append({"types": names, "sdk": sdk, "message": str(error)})
    print(json.dumps(seen))
    """
)


def read_only_mount_available() -> bool:
    if os.geteuid() != 0:
        return True  # chmod stops an ordinary user
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    probe = ["unshare", "-m", "sh", "-c", "mount -t tmpfs none /mnt 2>/dev/null || exit 1"]
    return subprocess.run(probe, capture_output=True).returncode == 0


@pytest.mark.skipif(not read_only_mount_available(), reason="needs unshare + mount as root")
def test_a_read_only_folder_surfaces_the_whole_reason_and_spends_nothing(
    oauth_env: FakeAnthropic, home: Path
) -> None:
    path = home / LONG_FOLDER / "auth.json"
    expired_login(oauth_env, path)
    child = [sys.executable, "-c", READ_ONLY_CHILD]
    folder = str(path.parent)
    if os.geteuid() == 0:
        script = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" "$1" && shift && "$@"'
        command = ["unshare", "-m", "sh", "-c", script, "sh", folder, *child]
    else:
        path.parent.chmod(0o500)
        command = child
    environment = {**os.environ, "CLAUDE_AUTH_FILE": str(path)}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=environment)
    finally:
        path.parent.chmod(0o700)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert len(seen) == 4
    for outcome in seen:
        assert "TokenRefreshError" in outcome["types"] and outcome["sdk"], outcome
        assert "APIConnectionError" not in outcome["types"], outcome
        text = outcome["message"]
        assert folder in text and "would lose this login" in text, text
        assert "or point CLAUDE_AUTH_FILE at a writable place" in text, text  # whole
    assert oauth_env.token_posts == 0 and oauth_env.api_requests == []


@pytest.mark.parametrize("mode", MODES)
def test_a_store_that_cannot_be_reached_surfaces_our_store_error(
    mode: str,
    oauth_env: FakeAnthropic,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    clock: Clock,
) -> None:
    """The login lives in Redis; the held token expires while Redis is down: the caller gets
    our ``StoreError`` naming the store and the variable, and nothing is spent."""
    from claude_oauth_auth.stores import RedisStore, TokenSet

    access, refresh = oauth_env.issue_tokens(expires_in=600)
    store = RedisStore(redis_server.url)
    store.save(TokenSet(access, refresh, clock() + 600), expected_version=None)
    manager = OAuthTokenManager(store=store, clock=clock)
    client = make_client(mode, max_retries=2, oauth_manager=manager)
    redis_server.stop()
    clock.advance(700)
    with pytest.raises(StoreError) as caught:
        ask(client)
    assert_ours(caught.value, StoreError)
    assert "cannot reach Redis" in str(caught.value), str(caught.value)
    assert oauth_env.token_posts == 0 and oauth_env.api_requests == []


def test_the_provider_called_by_the_plain_sdk_raises_our_error_unwrapped(
    oauth_env: FakeAnthropic, token_path: Path
) -> None:
    expired_login(oauth_env, token_path)
    oauth_env.token_faults += [Fault(503, {"error": "overloaded"}, {"Retry-After": "30"})]
    manager = OAuthTokenManager(token_file=token_path)
    client = anthropic.Anthropic(credentials=manager, base_url=oauth_env.base_url)
    with pytest.raises(TokenRefreshError) as caught:
        client.messages.create(**MESSAGE)
    assert_ours(caught.value, TokenRefreshError)
    assert oauth_env.token_posts == 1  # no SDK retry of a refresh that failed
    with pytest.raises(TokenRefreshError, match="backing off"):
        client.messages.create(**MESSAGE)
    assert oauth_env.token_posts == 1


def test_the_manager_called_directly_raises_the_plain_error(
    oauth_env: FakeAnthropic, token_path: Path
) -> None:
    """Outside a request, our errors stay as they were (no SDK import needed to catch them)."""
    expired_login(oauth_env, token_path)
    oauth_env.token_faults += [Fault(503, {"error": "overloaded"})]
    with pytest.raises(TokenRefreshError) as caught:
        OAuthTokenManager(token_file=token_path).get_valid_token()
    assert type(caught.value) is TokenRefreshError


def test_a_refused_refresh_is_still_an_authentication_error(
    oauth_env: FakeAnthropic, token_path: Path
) -> None:
    access, refresh = oauth_env.issue_tokens()
    write_auth_file(token_path, access, refresh)
    client = ClaudeClient(max_retries=2)
    oauth_env.revoke_access_token(access)
    oauth_env.revoke_refresh_token(refresh)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        ask(client)
    assert isinstance(caught.value, OAuthRefreshError) and "invalid_grant" in str(caught.value)
    assert oauth_env.token_posts == 1


def test_our_sdk_errors_pickle_as_our_type(oauth_env: FakeAnthropic, token_path: Path) -> None:
    expired_login(oauth_env, token_path)
    oauth_env.token_faults += [Fault(503, {"error": "overloaded"}, {"Retry-After": "30"})]
    client = ClaudeClient(max_retries=0)
    with pytest.raises(TokenRefreshError) as caught:
        ask(client)
    copy = pickle.loads(pickle.dumps(caught.value))
    assert isinstance(copy, TokenRefreshError) and str(copy) == str(caught.value)
    assert copy.retry_after == caught.value.retry_after


# ----- one refresh per refused request, like the SDK -------------------------------------------


def refused_forever(server: FakeAnthropic, count: int = 20) -> None:
    body = {"type": "error", "error": {"type": "authentication_error", "message": "nope"}}
    server.api_faults += [Fault(401, body) for _ in range(count)]


@pytest.mark.parametrize("mode", MODES)
def test_a_persistent_401_costs_two_attempts_and_one_refresh_per_call_like_the_sdk(
    mode: str, oauth_env: FakeAnthropic, token_path: Path
) -> None:
    access, refresh = oauth_env.issue_tokens()
    write_auth_file(token_path, access, refresh)
    # The plain SDK, with our manager as its provider: what we match.
    sdk = anthropic.Anthropic(
        credentials=OAuthTokenManager(token_file=token_path), base_url=oauth_env.base_url
    )
    refused_forever(oauth_env)
    with pytest.raises(anthropic.AuthenticationError):
        sdk.messages.create(**MESSAGE)
    sdk_attempts, sdk_posts = len(oauth_env.api_requests), oauth_env.token_posts
    assert (sdk_attempts, sdk_posts) == (2, 1)

    client = make_client(mode, max_retries=2)
    counts: list[tuple[int, int]] = []

    def count() -> None:
        counts.append((len(oauth_env.api_requests), oauth_env.token_posts))

    async def twice() -> None:  # one event loop: the async client's connections belong to it
        assert isinstance(client, AsyncClaudeClient)
        for _ in range(2):
            with pytest.raises(anthropic.AuthenticationError):
                await client.messages.create(**MESSAGE)
            count()

    if isinstance(client, AsyncClaudeClient):
        asyncio.run(twice())
    else:
        for _ in range(2):
            with pytest.raises(anthropic.AuthenticationError):
                client.messages.create(**MESSAGE)
            count()
    assert counts == [(sdk_attempts + 2, sdk_posts + 1), (sdk_attempts + 4, sdk_posts + 2)]
    assert oauth_env.invalid_grants == 0


# ----- the suite does not compare text that the SDK formats ------------------------------------


def test_sdk_versions_are_the_ones_our_pin_allows() -> None:
    """Both legs of the matrix run this suite: the SDK in use is inside our pin."""
    from importlib.metadata import version

    major, minor = (int(part) for part in version("anthropic").split(".")[:2])
    assert (2, 14) <= (major, minor) < (3, 0)


def test_importing_the_package_still_does_not_import_the_sdk() -> None:
    code = (
        "import sys, claude_oauth_auth\n"
        "from claude_oauth_auth import TokenRefreshError, StoreError, get_auth_status\n"
        "get_auth_status()\n"
        "assert 'anthropic' not in sys.modules, 'anthropic imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
