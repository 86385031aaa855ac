"""Exactly one refresh per expiry across threads, coroutines and processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anthropic
import pytest
from fakeapi import FakeAnthropic
from helpers import create_from_threads, read_json, write_auth_file

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


CHILD = textwrap.dedent(
    """
    import os, sys, time, anthropic
    from claude_oauth_auth import OAuthTokenManager
    path, token_url, base_url, go_file = sys.argv[1:5]
    manager = OAuthTokenManager(token_file=path, token_url=token_url)
    client = anthropic.Anthropic(credentials=manager, base_url=base_url, max_retries=0)
    print("ready", flush=True)
    while not os.path.exists(go_file):
        time.sleep(0.001)
    message = client.messages.create(
        model="claude-test-1", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    )
    print(message.id, flush=True)
    """
)


def run_processes(
    server: FakeAnthropic, path: Path, count: int
) -> list[subprocess.CompletedProcess[str]]:
    """Start ``count`` children, wait until each has read the file, then release them at once."""
    go_file = path.parent / "go"
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD,
                str(path),
                server.token_url,
                server.base_url,
                str(go_file),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        for _ in range(count)
    ]
    for child in children:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    go_file.touch()
    results = []
    for child in children:
        stdout, stderr = child.communicate(timeout=60)
        results.append(subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr))
    return results


def test_8_processes_one_refresh(server: FakeAnthropic, expired_file: Path) -> None:
    results = run_processes(server, expired_file, 8)
    failures = [r.stderr[-500:] for r in results if r.returncode != 0]
    assert failures == []
    assert (server.token_posts, server.invalid_grants) == (1, 0)
    saved = read_json(expired_file)
    assert saved["token_expiry"] > time.time() + 3000
    # The refresh token on disk is the live one: the server still accepts it.
    server.refresh_latency = 0.0
    manager = OAuthTokenManager(token_file=expired_file, token_url=server.token_url)
    manager.refresh()
    assert server.invalid_grants == 0
