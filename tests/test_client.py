"""ClaudeClient / AsyncClaudeClient: the real SDK over loopback, checked by the server's records."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.lib.credentials import AccessToken, StaticToken
from conftest import Clock
from fakeapi import CLAUDE_CODE_ONLY_MESSAGE, OAUTH_BETA, FakeAnthropic, Fault, RecordedRequest
from helpers import (
    auth_file_path,
    claude_code_path,
    read_json,
    write_auth_file,
    write_claude_code_file,
)

from claude_oauth_auth import (
    AsyncClaudeClient,
    ClaudeClient,
    OAuthTokenManager,
    UnifiedAuthManager,
)
from claude_oauth_auth.stores import FileStore

MODEL = "claude-test-1"
MESSAGES: Any = [{"role": "user", "content": "hi"}]
BATCH: Any = [
    {"custom_id": "one", "params": {"model": MODEL, "max_tokens": 5, "messages": MESSAGES}}
]
LOGGER = "claude_oauth_auth"


# ----- helpers ---------------------------------------------------------------------------------


def create(client: Any, **options: Any) -> Any:
    return client.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES, **options)


def records(server: FakeAnthropic) -> list[RecordedRequest]:
    with server.lock:
        return list(server.api_requests)


def assert_one_credential(record: RecordedRequest) -> None:
    """A request carries exactly one credential, and the OAuth flag only beside an OAuth token."""
    assert not record.has_both_auth_headers, record
    assert "x-api-key" not in record.headers, record
    authorization = record.headers.get("authorization", "")
    assert authorization.count("Bearer ") == 1 and "," not in authorization, record
    if record.auth_kind == "api_key":
        assert OAUTH_BETA not in record.betas, record
    if record.auth_kind == "oauth":
        assert OAUTH_BETA in record.betas and record.betas.count(OAUTH_BETA) == 1, record


def warnings_from_us(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith(LOGGER)
        and r.name != f"{LOGGER}.events"
        and r.levelno == logging.WARNING
    ]


@pytest.fixture(autouse=True)
def _every_request_has_one_credential(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test that used the server: no request carried two credentials."""
    server = request.getfixturevalue("server") if "server" in request.fixturenames else None
    yield
    if server is not None:
        for record in records(server):
            assert_one_credential(record)


@pytest.fixture
def tokens(oauth_env: FakeAnthropic, home: Path) -> tuple[str, str]:
    """A fresh OAuth pair in ~/.config/claude/auth.json; token URL and base URL on loopback."""
    access, refresh = oauth_env.issue_tokens()
    write_auth_file(auth_file_path(home), access, refresh)
    return access, refresh


@pytest.fixture
def api_key(oauth_env: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> str:
    """A valid key in ANTHROPIC_API_KEY (the cascade's fallback)."""
    key = oauth_env.add_api_key()
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    return key


def expire_on_disk(
    server: FakeAnthropic, home: Path, clock: Clock | None = None
) -> tuple[str, str]:
    """Another program wrote an expired token (with a valid refresh token) to the file.

    Clients look at the file again at most once a second: the clock of the client (if one
    is running already) moves on that far.
    """
    access, refresh = server.issue_tokens(expires_in=-5)
    write_auth_file(auth_file_path(home), access, refresh, expires_in=-5)
    if clock is not None:
        clock.advance(FileStore.poll_interval or 0)
    return access, refresh


def exercise_every_resource(client: anthropic.Anthropic) -> int:
    """Call each resource once; return how many API requests that made."""
    assert create(client).content[0].text == "Hello from fake API"
    with client.messages.stream(model=MODEL, max_tokens=5, messages=MESSAGES) as stream:
        assert "".join(stream.text_stream) == "Hello from fake API"
    events = list(create(client, stream=True))
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    assert [model.id for model in client.models.list()] == [MODEL]
    assert client.models.retrieve(MODEL).id == MODEL
    assert client.messages.count_tokens(model=MODEL, messages=MESSAGES).input_tokens > 0
    batch = client.messages.batches.create(requests=BATCH)
    assert client.messages.batches.retrieve(batch.id).id == batch.id
    beta = client.beta.messages.create(
        model=MODEL, max_tokens=5, messages=MESSAGES, betas=["caller-flag-2025-01-01"]
    )
    assert beta.content[0].type == "text"
    with client.beta.messages.stream(model=MODEL, max_tokens=5, messages=MESSAGES) as stream:
        assert stream.get_final_text() == "Hello from fake API"
    assert client.beta.messages.count_tokens(model=MODEL, messages=MESSAGES).input_tokens > 0
    assert client.beta.messages.batches.create(requests=BATCH).id.startswith("msgbatch_")
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=5, messages=MESSAGES)
    assert raw.http_request.headers["authorization"].startswith("Bearer ")
    assert raw.parse().content[0].type == "text"
    return 13


async def async_exercise_every_resource(client: anthropic.AsyncAnthropic) -> int:
    assert (await create(client)).content[0].text == "Hello from fake API"
    async with client.messages.stream(model=MODEL, max_tokens=5, messages=MESSAGES) as stream:
        assert "".join([text async for text in stream.text_stream]) == "Hello from fake API"
    events = [event async for event in await create(client, stream=True)]
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    assert [model.id async for model in client.models.list()] == [MODEL]
    assert (await client.models.retrieve(MODEL)).id == MODEL
    assert (await client.messages.count_tokens(model=MODEL, messages=MESSAGES)).input_tokens > 0
    batch = await client.messages.batches.create(requests=BATCH)
    assert (await client.messages.batches.retrieve(batch.id)).id == batch.id
    beta = await client.beta.messages.create(
        model=MODEL, max_tokens=5, messages=MESSAGES, betas=["caller-flag-2025-01-01"]
    )
    assert beta.content[0].type == "text"
    async with client.beta.messages.stream(model=MODEL, max_tokens=5, messages=MESSAGES) as s:
        assert await s.get_final_text() == "Hello from fake API"
    count = await client.beta.messages.count_tokens(model=MODEL, messages=MESSAGES)
    assert count.input_tokens > 0
    assert (await client.beta.messages.batches.create(requests=BATCH)).id.startswith("msgbatch_")
    return 12


# ----- 1. they are the SDK ---------------------------------------------------------------------


def test_clients_are_the_sdk_classes(tokens: tuple[str, str]) -> None:
    client = ClaudeClient()
    assert isinstance(client, anthropic.Anthropic)
    assert isinstance(client.with_options(timeout=5), anthropic.Anthropic)
    async_client = AsyncClaudeClient()
    assert isinstance(async_client, anthropic.AsyncAnthropic)
    assert isinstance(async_client.copy(), AsyncClaudeClient)


def test_every_resource_over_oauth(tokens: tuple[str, str], oauth_env: FakeAnthropic) -> None:
    client = ClaudeClient(max_retries=0)
    sent = exercise_every_resource(client)
    seen = records(oauth_env)
    assert len(seen) == sent
    assert {(r.auth_kind, r.token, r.status) for r in seen} == {("oauth", tokens[0], 200)}
    assert oauth_env.token_posts == 0
    assert "caller-flag-2025-01-01" in seen[8].betas


def test_every_resource_over_an_api_key(api_key: str, oauth_env: FakeAnthropic) -> None:
    client = ClaudeClient(max_retries=0)
    assert client.auth_method == "api_key" and client.auth_source == "api_key_env"
    sent = exercise_every_resource(client)
    seen = records(oauth_env)
    assert len(seen) == sent
    assert {(r.auth_kind, r.token, r.status) for r in seen} == {("api_key", api_key, 200)}
    assert all(OAUTH_BETA not in r.betas for r in seen)
    assert seen[8].betas == ["caller-flag-2025-01-01"]


def test_every_resource_async(tokens: tuple[str, str], oauth_env: FakeAnthropic) -> None:
    async def main() -> int:
        async with AsyncClaudeClient(max_retries=0) as client:
            return await async_exercise_every_resource(client)

    sent = asyncio.run(main())
    seen = records(oauth_env)
    assert len(seen) == sent
    assert {(r.auth_kind, r.token, r.status) for r in seen} == {("oauth", tokens[0], 200)}


# ----- 2. constructor ---------------------------------------------------------------------------


def test_sdk_options_pass_through(
    server: FakeAnthropic, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDE_OAUTH_TOKEN_URL", server.token_url)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # base_url= must win
    access, refresh = server.issue_tokens()
    write_auth_file(auth_file_path(home), access, refresh)
    http_client = anthropic.DefaultHttpxClient()
    client = ClaudeClient(
        base_url=server.base_url,
        timeout=7.5,
        max_retries=0,
        default_headers={"x-team": "research"},
        default_query={"tag": "t1"},
        http_client=http_client,
    )
    assert str(client.base_url).rstrip("/") == server.base_url
    assert client.timeout == 7.5 and client.max_retries == 0
    assert client._client is http_client
    server.api_faults.append(Fault(500, {"type": "error", "error": {"type": "api_error"}}))
    with pytest.raises(anthropic.InternalServerError):
        create(client)  # max_retries=0: no retry
    create(client)
    seen = records(server)
    assert [r.status for r in seen] == [500, 200]
    assert all(r.headers["x-team"] == "research" and r.query == "tag=t1" for r in seen)
    assert all(r.headers["x-stainless-read-timeout"] == "7.5" for r in seen)


def test_api_key_argument_uses_only_that_key(
    oauth_env: FakeAnthropic, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    access, refresh = oauth_env.issue_tokens(expires_in=-5)
    ours = write_auth_file(auth_file_path(home), access, refresh, expires_in=-5)
    cc_access, cc_refresh = oauth_env.issue_tokens(expires_in=-5)
    write_claude_code_file(claude_code_path(home), cc_access, cc_refresh, expires_in=-5)
    monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", cc_access)
    monkeypatch.setenv("ANTHROPIC_API_KEY", oauth_env.add_api_key())
    before = ours.read_text()
    key = oauth_env.add_api_key("sk-ant-api03-explicit")

    client = ClaudeClient(api_key=key, max_retries=0)
    create(client)
    client.with_options(timeout=3).models.list()
    assert (client.auth_method, client.auth_source) == ("api_key", "explicit")
    assert [(r.auth_kind, r.token) for r in records(oauth_env)] == [("api_key", key)] * 2
    assert oauth_env.token_posts == 0
    assert ours.read_text() == before


def test_oauth_manager_subclass(oauth_env: FakeAnthropic, tmp_path: Path) -> None:
    class Base64TokenManager(OAuthTokenManager):
        """Like the FAQ's EncryptedTokenManager: own attributes first, own storage format."""

        def __init__(self, path: Path) -> None:
            self.encode, self.decode = base64.b64encode, base64.b64decode
            self.saves = 0
            super().__init__(token_file=path)

        def _load_tokens(self) -> None:
            assert self.token_file is not None
            data = json.loads(self.decode(self.token_file.read_bytes()))
            self.access_token, self.refresh_token = data["access"], data["refresh"]
            self.token_expiry = data["expiry"]

        def _save_tokens(self) -> None:
            assert self.token_file is not None
            data = {
                "access": self.access_token,
                "refresh": self.refresh_token,
                "expiry": self.token_expiry,
            }
            self.token_file.write_bytes(self.encode(json.dumps(data).encode()))
            self.saves += 1

    access, refresh = oauth_env.issue_tokens(expires_in=-5)
    path = tmp_path / "tokens.b64"
    path.write_bytes(
        base64.b64encode(
            json.dumps({"access": access, "refresh": refresh, "expiry": time.time() - 5}).encode()
        )
    )
    manager = Base64TokenManager(path)
    client = ClaudeClient(oauth_manager=manager, max_retries=0)
    assert client.auth_manager.token_manager is manager
    assert (client.auth_method, client.auth_source) == ("oauth", "explicit")
    create(client)
    create(client)
    stored = json.loads(base64.b64decode(path.read_bytes()))
    assert oauth_env.token_posts == 1 and manager.saves == 1
    assert stored["access"] == manager.access_token != access
    assert [(r.auth_kind, r.token) for r in records(oauth_env)] == [("oauth", stored["access"])] * 2


def test_credentials_argument_takes_any_sdk_provider(oauth_env: FakeAnthropic) -> None:
    first, _ = oauth_env.issue_tokens()
    second, _ = oauth_env.issue_tokens()
    calls: list[bool] = []

    def provider(*, force_refresh: bool = False) -> AccessToken:
        calls.append(force_refresh)
        token = second if force_refresh else first
        return AccessToken(token, expires_at=int(time.time()) + 3600)

    client = ClaudeClient(credentials=provider, max_retries=0)
    assert (client.auth_method, client.auth_source) == ("oauth", "explicit")
    create(client)
    create(client)
    oauth_env.revoke_access_token(first)
    create(client)  # 401, the SDK provider is asked with force_refresh=True, resent
    assert calls == [False, True]
    assert [(r.token, r.status) for r in records(oauth_env)] == [
        (first, 200),
        (first, 200),
        (first, 401),
        (second, 200),
    ]

    static = ClaudeClient(credentials=StaticToken(second), max_retries=0)
    create(static)
    assert records(oauth_env)[-1].token == second
    assert oauth_env.token_posts == 0


def test_async_client_takes_an_async_provider(oauth_env: FakeAnthropic) -> None:
    access, _ = oauth_env.issue_tokens()

    async def provider(*, force_refresh: bool = False) -> AccessToken:
        return AccessToken(access, expires_at=0)

    async def main() -> None:
        async with AsyncClaudeClient(credentials=provider, max_retries=0) as client:
            await create(client)

    asyncio.run(main())
    assert [(r.auth_kind, r.token) for r in records(oauth_env)] == [("oauth", access)]


# ----- 3. what the client says about itself -----------------------------------------------------


def test_auth_properties(
    oauth_env: FakeAnthropic, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    access, refresh = oauth_env.issue_tokens()
    write_claude_code_file(claude_code_path(home), access, refresh)
    client = ClaudeClient()
    assert (client.auth_method, client.auth_source) == ("oauth", "claude_code")
    assert isinstance(client.auth_manager, UnifiedAuthManager)
    assert isinstance(client.auth_manager.token_manager, OAuthTokenManager)

    write_auth_file(auth_file_path(home), access, refresh)
    assert ClaudeClient().auth_source == "auth_file"

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-env")
    with_key = ClaudeClient(sources=["api_key_env"])
    assert (with_key.auth_method, with_key.auth_source) == ("api_key", "api_key_env")
    assert with_key.auth_manager.token_manager is None

    custom = write_auth_file(home / "elsewhere" / "tokens.json", access, refresh)
    from_file = ClaudeClient(token_file=custom, max_retries=0)
    assert (from_file.auth_method, from_file.auth_source) == ("oauth", "explicit")
    assert from_file.auth_manager.token_manager is not None
    assert from_file.auth_manager.token_manager.token_file == custom
    create(from_file)
    assert records(oauth_env)[-1].token == access

    manager = UnifiedAuthManager(api_key="sk-ant-api03-given")
    given = AsyncClaudeClient(auth_manager=manager)
    assert given.auth_manager is manager
    assert (given.auth_method, given.auth_source) == ("api_key", "explicit")


# ----- 4. headers -------------------------------------------------------------------------------


def test_oauth_flag_merged_with_caller_betas(
    tokens: tuple[str, str], oauth_env: FakeAnthropic
) -> None:
    client = ClaudeClient(max_retries=0, default_headers={"anthropic-beta": "client-flag-1"})
    create(client)
    create(client, extra_headers={"anthropic-beta": "request-flag-2"})
    client.beta.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES, betas=["param-3"])
    create(client, extra_headers={"anthropic-beta": f"{OAUTH_BETA},request-flag-4"})
    client.with_options(default_headers={"anthropic-beta": "copy-flag-5"}).models.list()
    assert [r.betas for r in records(oauth_env)] == [
        ["client-flag-1", OAUTH_BETA],
        ["request-flag-2", OAUTH_BETA],
        ["param-3", OAUTH_BETA],
        [OAUTH_BETA, "request-flag-4"],
        ["copy-flag-5", OAUTH_BETA],
    ]


def test_api_key_requests_carry_no_oauth_flag(api_key: str, oauth_env: FakeAnthropic) -> None:
    client = ClaudeClient(max_retries=0, default_headers={"anthropic-beta": "client-flag-1"})
    create(client)
    client.beta.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES, betas=["param-3"])
    assert [(r.auth_kind, r.betas) for r in records(oauth_env)] == [
        ("api_key", ["client-flag-1"]),
        ("api_key", ["param-3"]),
    ]


def test_no_request_ever_carries_two_credentials(
    tokens: tuple[str, str], api_key: str, oauth_env: FakeAnthropic
) -> None:
    """OAuth first although ANTHROPIC_API_KEY is set; key clients; a fallback; copies."""
    client = ClaudeClient(max_retries=0)
    assert client.auth_source == "auth_file"
    exercise_every_resource(client)
    exercise_every_resource(client.copy(api_key=api_key))
    oauth_env.revoke_access_token(tokens[0])
    oauth_env.revoke_refresh_token(tokens[1])
    create(client)  # 401, refresh refused, fallback to the key
    exercise_every_resource(client.with_options(timeout=9))
    seen = records(oauth_env)
    assert {r.auth_kind for r in seen} == {"oauth", "api_key"}
    for record in seen:
        assert_one_credential(record)
        assert not ("authorization" in record.headers and "x-api-key" in record.headers)


# ----- 5. copies share the credential -----------------------------------------------------------


def test_copies_share_the_manager_and_one_refresh(
    tokens: tuple[str, str], oauth_env: FakeAnthropic
) -> None:
    client = ClaudeClient(max_retries=0)
    copies = [client.with_options(timeout=3), client.copy(max_retries=0), client.copy().copy()]
    for copy in copies:
        assert type(copy) is ClaudeClient
        assert copy.auth_manager is client.auth_manager
        assert copy.auth_manager.token_manager is client.auth_manager.token_manager
    assert copies[0].timeout == 3
    oauth_env.revoke_access_token(tokens[0])
    for each in (copies[0], client, copies[1], copies[2]):
        create(each)
    assert oauth_env.token_posts == 1
    seen = records(oauth_env)
    assert [r.status for r in seen] == [401, 200, 200, 200, 200]
    assert len({r.token for r in seen[1:]}) == 1


def test_copies_share_an_sdk_provider_cache(oauth_env: FakeAnthropic) -> None:
    access, _ = oauth_env.issue_tokens()
    calls: list[bool] = []

    def provider(*, force_refresh: bool = False) -> AccessToken:
        calls.append(force_refresh)
        return AccessToken(access, expires_at=int(time.time()) + 3600)

    client = ClaudeClient(credentials=provider, max_retries=0)
    create(client)
    create(client.with_options(timeout=4))
    create(client.copy(max_retries=1))
    assert calls == [False]


def test_copy_with_api_key_switches_credential(
    tokens: tuple[str, str], oauth_env: FakeAnthropic
) -> None:
    client = ClaudeClient(max_retries=0)
    key = oauth_env.add_api_key()
    keyed = client.copy(api_key=key)
    assert (keyed.auth_method, keyed.auth_source) == ("api_key", "explicit")
    assert keyed.auth_manager is not client.auth_manager
    create(keyed)
    create(keyed.with_options(timeout=2))
    create(client)
    assert client.auth_method == "oauth"
    assert [(r.auth_kind, r.token) for r in records(oauth_env)] == [
        ("api_key", key),
        ("api_key", key),
        ("oauth", tokens[0]),
    ]


def test_copy_with_credentials_switches_provider(
    tokens: tuple[str, str], oauth_env: FakeAnthropic
) -> None:
    other, _ = oauth_env.issue_tokens()
    client = ClaudeClient(max_retries=0)
    switched = client.copy(credentials=StaticToken(other))
    assert switched.auth_manager is not client.auth_manager
    create(switched)
    create(client)
    assert [r.token for r in records(oauth_env)] == [other, tokens[0]]


def test_async_copies_share_one_refresh(tokens: tuple[str, str], oauth_env: FakeAnthropic) -> None:
    async def main() -> None:
        client = AsyncClaudeClient(max_retries=0)
        copy = client.with_options(timeout=5)
        assert copy.auth_manager is client.auth_manager
        oauth_env.revoke_access_token(tokens[0])
        await create(copy)
        await create(client)

    asyncio.run(main())
    assert oauth_env.token_posts == 1
    assert [r.status for r in records(oauth_env)] == [401, 200, 200]


# ----- 6. fallback that keeps the request alive ---------------------------------------------------


def assert_one_fallback_warning(caplog: pytest.LogCaptureFixture, reason: str) -> None:
    warnings = warnings_from_us(caplog)
    assert len(warnings) == 1, warnings
    assert "auth_file" in warnings[0] and "api_key_env" in warnings[0]
    assert reason in warnings[0]


def test_fallback_when_the_refresh_is_refused_at_request_time(
    tokens: tuple[str, str],
    api_key: str,
    oauth_env: FakeAnthropic,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    client = ClaudeClient(max_retries=0)
    copy = client.with_options(timeout=9)
    oauth_env.revoke_access_token(tokens[0])
    oauth_env.revoke_refresh_token(tokens[1])
    assert create(client).content[0].text == "Hello from fake API"
    create(client)
    create(copy)
    assert [(r.auth_kind, r.status) for r in records(oauth_env)] == [
        ("oauth", 401),
        ("api_key", 200),
        ("api_key", 200),
        ("api_key", 200),
    ]
    assert (oauth_env.token_posts, oauth_env.invalid_grants) == (1, 1)
    assert (client.auth_method, client.auth_source) == ("api_key", "api_key_env")
    assert_one_fallback_warning(caplog, "refused the refresh token")


def test_fallback_when_the_expired_token_cannot_be_refreshed(
    tokens: tuple[str, str],
    api_key: str,
    oauth_env: FakeAnthropic,
    home: Path,
    caplog: pytest.LogCaptureFixture,
    clock: Clock,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    client = ClaudeClient(max_retries=0, clock=clock)
    _, refresh = expire_on_disk(oauth_env, home, clock)
    oauth_env.revoke_refresh_token(refresh)
    create(client)
    assert [(r.auth_kind, r.status) for r in records(oauth_env)] == [("api_key", 200)]
    assert oauth_env.token_posts == 1
    assert_one_fallback_warning(caplog, "refused the refresh token")


def test_fallback_at_construction_when_the_refresh_is_refused(
    oauth_env: FakeAnthropic, api_key: str, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    _, refresh = expire_on_disk(oauth_env, home)
    oauth_env.revoke_refresh_token(refresh)
    client = ClaudeClient(max_retries=0)
    create(client)
    assert client.auth_method == "api_key"
    assert [(r.auth_kind, r.status) for r in records(oauth_env)] == [("api_key", 200)]
    assert_one_fallback_warning(caplog, "refused the refresh token")


def test_fallback_when_401_persists_after_the_forced_refresh(
    tokens: tuple[str, str],
    api_key: str,
    oauth_env: FakeAnthropic,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    refused = {"type": "error", "error": {"type": "authentication_error", "message": "no"}}
    oauth_env.api_faults += [Fault(401, refused), Fault(401, refused)]
    client = ClaudeClient(max_retries=0)
    create(client)
    create(client)
    seen = records(oauth_env)
    assert [(r.auth_kind, r.status) for r in seen] == [
        ("oauth", 401),
        ("oauth", 401),
        ("api_key", 200),
        ("api_key", 200),
    ]
    assert seen[0].token == tokens[0] != seen[1].token
    assert oauth_env.token_posts == 1
    assert_one_fallback_warning(caplog, "refused a freshly refreshed token")


@pytest.mark.parametrize("status", [400, 403])
def test_fallback_when_the_token_is_only_for_claude_code(
    status: int,
    oauth_env: FakeAnthropic,
    api_key: str,
    home: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    access, refresh = oauth_env.issue_tokens(claude_code_only=status == 400)
    write_auth_file(auth_file_path(home), access, refresh)
    if status == 403:
        body = {"type": "error", "error": {"type": "permission_error"}}
        body["error"]["message"] = CLAUDE_CODE_ONLY_MESSAGE  # type: ignore[index]
        oauth_env.api_faults.append(Fault(403, body))
    client = ClaudeClient(max_retries=0, default_headers={"anthropic-beta": "keep-me"})
    create(client)
    with client.messages.stream(model=MODEL, max_tokens=5, messages=MESSAGES) as stream:
        assert stream.get_final_text() == "Hello from fake API"
    seen = records(oauth_env)
    assert [(r.auth_kind, r.status, r.betas) for r in seen] == [
        ("oauth", status, ["keep-me", OAUTH_BETA]),
        ("api_key", 200, ["keep-me"]),
        ("api_key", 200, ["keep-me"]),
    ]
    assert oauth_env.token_posts == 0
    assert_one_fallback_warning(caplog, "only authorized for use with Claude Code")


def test_fallback_in_a_stream_async(
    oauth_env: FakeAnthropic, api_key: str, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    access, refresh = oauth_env.issue_tokens(claude_code_only=True)
    write_auth_file(auth_file_path(home), access, refresh)

    async def main() -> str:
        async with AsyncClaudeClient(max_retries=0) as client:
            events = [event async for event in await create(client, stream=True)]
            return events[-1].type

    assert asyncio.run(main()) == "message_stop"
    assert [(r.auth_kind, r.status) for r in records(oauth_env)] == [
        ("oauth", 400),
        ("api_key", 200),
    ]
    assert_one_fallback_warning(caplog, "only authorized for use with Claude Code")


def test_fallback_when_the_refresh_is_refused_async(
    tokens: tuple[str, str],
    api_key: str,
    oauth_env: FakeAnthropic,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)

    async def main() -> None:
        async with AsyncClaudeClient(max_retries=0) as client:
            oauth_env.revoke_access_token(tokens[0])
            oauth_env.revoke_refresh_token(tokens[1])
            await asyncio.gather(*(create(client) for _ in range(4)))
            await create(client.with_options(timeout=5))

    asyncio.run(main())
    seen = records(oauth_env)
    assert sum(r.auth_kind == "api_key" and r.status == 200 for r in seen) == 5
    assert all(r.status == 401 for r in seen if r.auth_kind == "oauth")
    assert oauth_env.invalid_grants == oauth_env.token_posts == 1
    assert_one_fallback_warning(caplog, "refused the refresh token")


def test_fallback_shared_by_64_threads_warns_once(
    oauth_env: FakeAnthropic, api_key: str, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    access, refresh = oauth_env.issue_tokens(claude_code_only=True)
    write_auth_file(auth_file_path(home), access, refresh)
    client = ClaudeClient(max_retries=0)
    barrier = threading.Barrier(64)

    def one(_: int) -> str:
        barrier.wait()
        return str(create(client).content[0].text)

    with ThreadPoolExecutor(max_workers=64) as pool:
        assert list(pool.map(one, range(64))) == ["Hello from fake API"] * 64
    seen = records(oauth_env)
    assert sum(r.auth_kind == "api_key" and r.status == 200 for r in seen) == 64
    assert all(r.status == 400 for r in seen if r.auth_kind == "oauth")
    assert_one_fallback_warning(caplog, "only authorized for use with Claude Code")


def test_without_a_key_a_refused_refresh_is_an_authentication_error(
    tokens: tuple[str, str], oauth_env: FakeAnthropic
) -> None:
    client = ClaudeClient()  # default retries: the error must not be retried
    oauth_env.revoke_access_token(tokens[0])
    oauth_env.revoke_refresh_token(tokens[1])
    with pytest.raises(anthropic.AuthenticationError) as caught:
        create(client)
    message = str(caught.value)
    assert "refused the refresh token" in message and "invalid_grant" in message
    assert "log in" in message.lower() or "login" in message.lower()
    assert (oauth_env.token_posts, len(records(oauth_env))) == (1, 1)


def test_without_a_key_a_persisting_401_is_an_authentication_error(
    tokens: tuple[str, str], oauth_env: FakeAnthropic
) -> None:
    refused = {"type": "error", "error": {"type": "authentication_error", "message": "nope"}}
    oauth_env.api_faults += [Fault(401, refused), Fault(401, refused)]
    client = ClaudeClient(max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        create(client)
    assert "nope" in str(caught.value)
    assert "ANTHROPIC_API_KEY" in str(caught.value)
    assert [r.status for r in records(oauth_env)] == [401, 401]
    assert oauth_env.token_posts == 1


@pytest.mark.parametrize("streaming", [False, True])
def test_without_a_key_claude_code_only_says_what_to_do(
    streaming: bool, oauth_env: FakeAnthropic, home: Path
) -> None:
    access, refresh = oauth_env.issue_tokens(claude_code_only=True)
    write_auth_file(auth_file_path(home), access, refresh)
    client = ClaudeClient()
    with pytest.raises(anthropic.BadRequestError) as caught:
        if streaming:
            with client.messages.stream(model=MODEL, max_tokens=5, messages=MESSAGES) as stream:
                stream.get_final_text()
        else:
            create(client)
    message = str(caught.value)
    assert "only authorized for use with Claude Code" in message
    assert "terms" in message and "Claude Code" in message and "API key" in message
    assert caught.value.status_code == 400
    assert len(records(oauth_env)) == 1


# ----- 7. threads and the event loop ------------------------------------------------------------


def test_64_threads_share_one_client(tokens: tuple[str, str], oauth_env: FakeAnthropic) -> None:
    client = ClaudeClient(max_retries=0)
    oauth_env.refresh_latency = 0.3
    oauth_env.revoke_access_token(tokens[0])
    barrier = threading.Barrier(64)

    def one(index: int) -> str:
        barrier.wait()
        each = client if index % 2 else client.with_options(timeout=30)
        return str(create(each).content[0].text)

    with ThreadPoolExecutor(max_workers=64) as pool:
        results = list(pool.map(one, range(64)))
    assert results == ["Hello from fake API"] * 64
    assert (oauth_env.token_posts, oauth_env.invalid_grants) == (1, 0)
    seen = records(oauth_env)
    assert sum(r.status == 200 for r in seen) == 64
    assert all(r.status == 401 and r.token == tokens[0] for r in seen if r.status != 200)
    assert len({r.token for r in seen if r.status == 200}) == 1


async def _longest_stall(work: Any) -> tuple[float, Any]:
    """Run ``work()`` while a ticker sleeps 10 ms at a time; return the largest gap seen."""
    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = loop.time()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = loop.time()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    try:
        result = await work()
    finally:
        done.set()
        await task
    return max(gaps) - 0.01, result


@pytest.mark.parametrize("trigger", ["expired_on_disk", "revoked"])
def test_async_refresh_never_blocks_the_loop(
    trigger: str, tokens: tuple[str, str], oauth_env: FakeAnthropic, home: Path, clock: Clock
) -> None:
    async def main() -> tuple[float, Any]:
        async with AsyncClaudeClient(max_retries=0, clock=clock) as client:
            await create(client)  # the SDK's first-use imports are not what this measures
            oauth_env.refresh_latency = 2.0
            if trigger == "revoked":
                oauth_env.revoke_access_token(tokens[0])
            else:
                expire_on_disk(oauth_env, home, clock)

            async def work() -> Any:
                return await asyncio.gather(*(create(client) for _ in range(8)))

            return await _longest_stall(work)

    stall, replies = asyncio.run(main())
    print(f"longest event-loop stall during a 2 s refresh ({trigger}): {stall * 1000:.1f} ms")
    assert len(replies) == 8
    assert oauth_env.token_posts == 1
    # A blocked loop would stall for the whole 2 s refresh; a loop that is not blocked stalls
    # about 5 ms here (more beside busy loops on 2 cores: 0.35 s was seen with two).
    assert stall < 1.0


def test_an_async_client_has_its_file_lock_imported_before_the_first_refresh() -> None:
    """The first refresh imported filelock in its worker thread, beside the running loop: the
    test above printed a 100 ms stall for an expired token on disk (5 ms once imported)."""
    code = (
        "import sys; from claude_oauth_auth import AsyncClaudeClient; "
        "AsyncClaudeClient(api_key='sk-ant-api03-' + 'x' * 40); "
        "print('filelock' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_async_client_built_in_a_coroutine_does_not_block_the_loop(
    oauth_env: FakeAnthropic, home: Path
) -> None:
    async def warm_up() -> None:  # the SDK's first-use imports are not what this measures
        async with AsyncClaudeClient(api_key=oauth_env.add_api_key(), max_retries=0) as client:
            await create(client)

    asyncio.run(warm_up())
    expire_on_disk(oauth_env, home)
    oauth_env.refresh_latency = 1.0

    async def main() -> float:
        async def work() -> Any:
            async with AsyncClaudeClient(max_retries=0) as client:
                return await create(client)

        stall, _ = await _longest_stall(work)
        return stall

    stall = asyncio.run(main())
    print(f"longest event-loop stall while constructing with an expired token: {stall:.3f} s")
    assert oauth_env.token_posts == 1
    assert stall < 0.5  # a blocked loop would stall for the whole 1 s refresh


# ----- 8. a revoked access token, max_retries=0 ------------------------------------------------


def test_revoked_token_recovered_with_one_refresh(
    tokens: tuple[str, str], oauth_env: FakeAnthropic, home: Path
) -> None:
    client = ClaudeClient(max_retries=0)
    oauth_env.revoke_access_token(tokens[0])
    create(client)
    create(client)
    seen = records(oauth_env)
    assert [(r.token == tokens[0], r.status) for r in seen] == [
        (True, 401),
        (False, 200),
        (False, 200),
    ]
    assert (oauth_env.token_posts, oauth_env.invalid_grants) == (1, 0)
    assert read_json(auth_file_path(home))["access_token"] == seen[1].token


def test_revoked_token_recovered_with_one_refresh_async(
    tokens: tuple[str, str], oauth_env: FakeAnthropic
) -> None:
    async def main() -> None:
        async with AsyncClaudeClient(max_retries=0) as client:
            oauth_env.revoke_access_token(tokens[0])
            await create(client)
            async with client.messages.stream(
                model=MODEL, max_tokens=5, messages=MESSAGES
            ) as stream:
                await stream.get_final_text()

    asyncio.run(main())
    assert [r.status for r in records(oauth_env)] == [401, 200, 200]
    assert oauth_env.token_posts == 1


def test_revoked_token_in_a_stream(tokens: tuple[str, str], oauth_env: FakeAnthropic) -> None:
    client = ClaudeClient(max_retries=0)
    oauth_env.revoke_access_token(tokens[0])
    events = list(create(client, stream=True))
    assert events[-1].type == "message_stop"
    assert [r.status for r in records(oauth_env)] == [401, 200]
    assert oauth_env.token_posts == 1


def test_custom_http_client_transport_sees_one_credential(
    tokens: tuple[str, str], oauth_env: FakeAnthropic
) -> None:
    """The auth flow runs inside httpx: a transport hook sees the final headers of each send."""
    sent: list[httpx2.Headers] = []

    def hook(request: httpx2.Request) -> None:
        sent.append(request.headers.copy())

    http_client = anthropic.DefaultHttpxClient(event_hooks={"request": [hook]})
    client = ClaudeClient(max_retries=0, http_client=http_client)
    oauth_env.revoke_access_token(tokens[0])
    create(client)
    assert len(sent) == 2
    assert all("x-api-key" not in h and h["authorization"].startswith("Bearer ") for h in sent)
