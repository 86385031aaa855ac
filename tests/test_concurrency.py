"""Exactly one refresh per expiry across threads, coroutines and processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import anthropic
import pytest
from fakeapi import FakeAnthropic
from helpers import create_from_threads, fork_processes, read_json, write_auth_file

from claude_oauth_auth import OAuthTokenManager

MODEL = "claude-test-1"
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def expired_file(server: FakeAnthropic, home: Path) -> Path:
    server.refresh_latency = 0.5
    access, refresh = server.issue_tokens(expires_in=-5)
    return write_auth_file(home / ".config" / "claude" / "auth.json", access, refresh, -5)


def test_64_threads_one_refresh(server: FakeAnthropic, expired_file: Path) -> None:
    manager = OAuthTokenManager(token_file=expired_file, token_url=server.token_url)
    client = anthropic.Anthropic(credentials=manager, base_url=server.base_url, max_retries=0)
    results = create_from_threads(client, 64)
    assert len(results) == 64
    assert (server.token_posts, server.invalid_grants) == (1, 0)
    assert sum(1 for r in server.api_requests if r.status == 200) == 64


def test_200_coroutines_one_refresh(server: FakeAnthropic, expired_file: Path) -> None:
    manager = OAuthTokenManager(token_file=expired_file, token_url=server.token_url)

    async def main() -> list[str]:
        client = anthropic.AsyncAnthropic(
            credentials=manager, base_url=server.base_url, max_retries=0
        )
        async with client:

            async def one() -> str:
                message = await client.messages.create(
                    model=MODEL,
                    max_tokens=5,
                    messages=MESSAGES,  # type: ignore[arg-type]
                )
                return message.id

            return await asyncio.gather(*(one() for _ in range(200)))

    results = asyncio.run(main())
    assert len(results) == 200
    assert (server.token_posts, server.invalid_grants) == (1, 0)


def run_processes(server: FakeAnthropic, path: Path, count: int) -> list[str]:
    """``count`` processes, each with a client that has read the file, released at once to
    send one request each; their message ids."""

    def setup() -> Callable[[], str]:
        manager = OAuthTokenManager(token_file=path, token_url=server.token_url)
        client = anthropic.Anthropic(credentials=manager, base_url=server.base_url, max_retries=0)

        def send() -> str:
            message = client.messages.create(
                model=MODEL,
                max_tokens=5,
                messages=MESSAGES,  # type: ignore[arg-type]
            )
            return message.id

        return send

    return fork_processes(setup, count)


def test_8_processes_one_refresh(server: FakeAnthropic, expired_file: Path) -> None:
    assert len(set(run_processes(server, expired_file, 8))) == 8  # each child's own request
    assert (server.token_posts, server.invalid_grants) == (1, 0)
    saved = read_json(expired_file)
    assert saved["token_expiry"] > time.time() + 3000
    # The refresh token on disk is the live one: the server still accepts it.
    server.refresh_latency = 0.0
    manager = OAuthTokenManager(token_file=expired_file, token_url=server.token_url)
    manager.refresh()
    assert server.invalid_grants == 0
