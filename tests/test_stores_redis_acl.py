"""A Redis user without every command the store needs: ``writable`` says so before a refresh
token is spent, naming the refused command (issue 22, item 4).

Against a real ``redis-server`` with ACL users, through the client and ``status``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakeapi import FakeAnthropic
from redis_server import RedisServer

from claude_oauth_auth import ClaudeClient, TokenRefreshError
from claude_oauth_auth.stores import RedisStore, TokenSet

SCRIPT = Path(sys.executable).with_name("claude-oauth-auth")
MESSAGE = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}

LIMITED = {
    "no scripting": ("+@read", "+@write", "+@connection", "-@scripting"),
    "scripts but no HSET": ("+@read", "+@write", "+@connection", "+@scripting", "-hset"),
}


def limited_url(redis_server: RedisServer, case: str) -> str:
    admin = redis_server.client()
    admin.execute_command("ACL", "SETUSER", "worker", "reset", "on", ">worker-pw", "~*", "&*")
    admin.execute_command("ACL", "SETUSER", "worker", *LIMITED[case])
    return redis_server.url.replace("redis://", "redis://worker:worker-pw@", 1)


@pytest.mark.parametrize("case", sorted(LIMITED))
def test_a_user_without_a_needed_command_spends_nothing_and_says_which(
    case: str,
    redis_server: RedisServer,
    oauth_env: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    access, refresh = oauth_env.issue_tokens(expires_in=-5)
    RedisStore(redis_server.url).save(
        TokenSet(access, refresh, time.time() - 5), expected_version=None
    )
    url = limited_url(redis_server, case)
    store = RedisStore(url)
    assert store.load() is not None  # it can read
    assert not store.writable
    refused = "EVALSHA" if case == "no scripting" else "HSET"
    assert refused in store.why_not_writable()
    monkeypatch.setenv("CLAUDE_TOKEN_STORE", url)
    client = ClaudeClient(max_retries=0)
    with pytest.raises(TokenRefreshError) as caught:
        client.messages.create(**MESSAGE)
    assert refused in str(caught.value) and "cannot be saved" in str(caught.value)
    assert oauth_env.token_posts == 0  # the refresh token was not spent
    stored = RedisStore(redis_server.url).load()
    assert stored is not None and oauth_env.refresh_token_usable(stored.refresh_token)
    done = subprocess.run(
        [str(SCRIPT), "status"], capture_output=True, text=True, env=dict(os.environ), timeout=30
    )
    row = next(line for line in done.stdout.splitlines() if line.startswith("token_store_env"))
    assert refused in row, row


def documented_acl() -> list[str]:
    """The ACL rule docs/fleets.md gives for the workers' Redis user."""
    page = (Path(__file__).parents[1] / "docs" / "fleets.md").read_text()
    line = next(line for line in page.splitlines() if "ACL SETUSER claude-workers" in line)
    return line.split("ACL SETUSER ", 1)[1].replace(">PASSWORD", ">worker-pw").split()


def test_the_documented_acl_user_can_save_and_hold_the_lease(redis_server: RedisServer) -> None:
    redis_server.client().execute_command("ACL", "SETUSER", *documented_acl())
    url = redis_server.url.replace("redis://", "redis://claude-workers:worker-pw@", 1)
    store = RedisStore(url, lease_seconds=0.3)  # renewed every 0.1 s while held
    assert store.writable and store.why_not_writable() == ""
    assert not redis_server.client().exists(store.key)  # the check wrote nothing
    with store.lock(timeout=2):
        time.sleep(1.0)  # three lease lifetimes: only renewals keep it
        assert store.holds_lock()
        store.save(
            TokenSet("sk-ant-oat01-x", "sk-ant-ort01-y", time.time() + 60), expected_version=None
        )
    assert store.load() is not None
    store.delete()
