"""Every saved login carries a generation (its chain of refreshes, and how far along it): a
login put back from an older copy of the same chain is recognised as older, whoever wrote it
and however long ago it was spent, and the newer login is written back over it."""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path
from typing import Any

import anthropic
import keyring
import pytest
from conftest import Clock
from fakeapi import FakeAnthropic
from helpers import read_json, run_cli, write_auth_file, write_claude_code_file, write_json
from secret_service import SecretServiceSession

from claude_oauth_auth import OAuthTokenManager
from claude_oauth_auth._tokens import (
    Generation,
    TokenSet,
    parse_token_document,
    render_token_document,
)
from claude_oauth_auth.lifecycle._backoff import MAX_SPENT
from claude_oauth_auth.stores import ClaudeCodeStore, KeyringStore

MODEL = "claude-test-1"


def ask(client: anthropic.Anthropic) -> None:
    client.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}])


def sdk_client(manager: OAuthTokenManager, server: FakeAnthropic) -> anthropic.Anthropic:
    return anthropic.Anthropic(credentials=manager, base_url=server.base_url, max_retries=0)


def usable(server: FakeAnthropic, refresh_token: object) -> bool:
    return isinstance(refresh_token, str) and server.refresh_token_usable(refresh_token)


# ----- the label in each file shape --------------------------------------------------------------


def test_our_shape_keeps_the_label_and_a_login_without_one_drops_it() -> None:
    labelled = TokenSet("a" * 20, "r" * 20, 1e9, generation=Generation("abc123", 7))
    document = render_token_document(labelled, "ours")
    assert document["generation"] == {"lineage": "abc123", "number": 7}
    assert parse_token_document(document)[0].generation == Generation("abc123", 7)
    plain = render_token_document(TokenSet("b" * 20, "s" * 20, 1e9), "ours", document)
    assert "generation" not in plain  # a new login is not part of the old chain


def test_claude_codes_shape_keeps_the_label_beside_its_object() -> None:
    labelled = TokenSet("a" * 20, "r" * 20, 1e9, generation=Generation("abc123", 2))
    document = render_token_document(labelled, "claude_code", {"mcpOAuth": {"x": 1}})
    assert document["claudeOauthAuthGeneration"] == {"lineage": "abc123", "number": 2}
    assert "generation" not in document["claudeAiOauth"]  # Claude Code's own object untouched
    assert parse_token_document(document)[0].generation == Generation("abc123", 2)


@pytest.mark.parametrize(
    "label",
    [
        "7",
        {"lineage": "abc", "number": "7"},
        {"lineage": "abc", "number": -1},
        {"lineage": "abc", "number": True},
        {"lineage": "a/b", "number": 1},
        {"number": 1},
    ],
)
def test_a_malformed_label_is_no_label(label: Any) -> None:
    tokens, _ = parse_token_document({"access_token": "a" * 20, "generation": label})
    assert tokens.generation is None


def test_a_store_of_ones_own_that_round_trips_through_asdict_keeps_the_label() -> None:
    """As a store written after the storage guide does: ``TokenSet(**asdict(tokens))``."""
    labelled = TokenSet("a" * 20, "r" * 20, 1e9, generation=Generation("abc123", 3))
    copy = TokenSet(**json.loads(json.dumps(dataclasses.asdict(labelled))))
    assert copy.generation == Generation("abc123", 3)


def test_older_means_same_chain_fewer_refreshes() -> None:
    assert Generation("a", 1).older_than(Generation("a", 2))
    assert not Generation("a", 2).older_than(Generation("a", 2))
    assert not Generation("a", 1).older_than(Generation("b", 9))  # another login: not ranked
    assert not Generation("a", 1).older_than(None)


# ----- a copy from long ago, put back ------------------------------------------------------------


@pytest.fixture
def token_path(home: Path) -> Path:
    return home / ".config" / "claude" / "auth.json"


def test_each_refresh_saves_the_next_generation_of_one_chain(
    server: FakeAnthropic, token_path: Path, clock: Clock
) -> None:
    access, refresh = server.issue_tokens(expires_in=-5)
    write_auth_file(token_path, access, refresh, expires_in=-5)
    manager = OAuthTokenManager(token_file=token_path, token_url=server.token_url, clock=clock)
    ask(sdk_client(manager, server))
    first = read_json(token_path)["generation"]
    manager.refresh()
    second = read_json(token_path)["generation"]
    assert first["number"] == 1 and second == {"lineage": first["lineage"], "number": 2}
    assert refresh not in json.dumps(first)  # the lineage names the chain, not its token


def test_a_token_file_restored_from_a_backup_many_refreshes_old_is_not_adopted(
    server: FakeAnthropic, token_path: Path, clock: Clock
) -> None:
    """As reported: a service runs for days; the token file is restored from last week's
    backup (older than the few spent tokens any process remembers). The service adopted the
    backup's spent refresh token, and the login was lost at its next refresh."""
    access, refresh = server.issue_tokens(expires_in=-5)
    write_auth_file(token_path, access, refresh, expires_in=-5)
    manager = OAuthTokenManager(token_file=token_path, token_url=server.token_url, clock=clock)
    client = sdk_client(manager, server)
    ask(client)  # refreshes the expired login
    backup = token_path.read_bytes()
    for _ in range(MAX_SPENT + 2):  # days of refreshes
        manager.refresh()
    newest = manager.refresh_token
    token_path.write_bytes(backup)  # the restore, without our lock
    clock.advance(1.1)
    ask(client)
    assert manager.refresh_token == newest
    assert read_json(token_path)["refresh_token"] == newest
    assert usable(server, newest) and server.invalid_grants == 0


def test_a_process_started_after_a_backup_was_put_back_does_not_spend_its_token(
    oauth_env: FakeAnthropic, token_path: Path, clock: Clock
) -> None:
    """As observed from outside: after the restore, a new process (a cron job running
    `claude-oauth-auth token`) spent the backup's refresh token. A token endpoint that revokes
    a reused token's whole family then ended the newer login the running service held too."""
    server = oauth_env
    access, refresh = server.issue_tokens(expires_in=-5)
    write_auth_file(token_path, access, refresh, expires_in=-5)
    service = OAuthTokenManager(token_file=token_path, token_url=server.token_url, clock=clock)
    client = sdk_client(service, server)
    ask(client)
    backup = read_json(token_path)
    for _ in range(3):
        service.refresh()
    newest = service.refresh_token
    backup["token_expiry"] = clock() - 60  # last week's copy: its access token has expired
    write_json(token_path, backup)
    posts = server.token_posts

    cron = run_cli("token")
    assert cron.returncode == 1
    assert "older copy of its OAuth login (refresh 1 of its chain; refresh 4" in cron.stderr
    assert server.token_posts == posts and server.invalid_grants == 0

    clock.advance(1.1)
    ask(client)  # the service puts its newer login back at its next request
    assert read_json(token_path)["refresh_token"] == newest
    assert run_cli("token").returncode == 0
    assert usable(server, service.refresh_token) and server.invalid_grants == 0


def test_a_restored_backup_of_claude_codes_file_is_not_adopted_but_its_rotation_is(
    server: FakeAnthropic, home: Path, clock: Clock
) -> None:
    path = home / ".claude" / ".credentials.json"
    access, refresh = server.issue_tokens(expires_in=-5)
    write_claude_code_file(path, access, refresh, expires_in=-5)
    manager = OAuthTokenManager(
        store=ClaudeCodeStore(path), token_url=server.token_url, clock=clock
    )
    client = sdk_client(manager, server)
    ask(client)
    backup = path.read_bytes()
    for _ in range(MAX_SPENT + 2):
        manager.refresh()
    newest = manager.refresh_token
    path.write_bytes(backup)
    clock.advance(1.1)
    ask(client)
    assert read_json(path)["claudeAiOauth"]["refreshToken"] == newest
    assert read_json(path)["mcpOAuth"] == {"server": {"token": "keep-me"}}

    # Claude Code rotates it as it does: a new object under its key, the rest of the file kept.
    access, refresh = server.issue_tokens()
    document = read_json(path)
    document["claudeAiOauth"] = {"accessToken": access, "refreshToken": refresh, "expiresAt": 0}
    document["claudeAiOauth"]["expiresAt"] = int((clock() + 3600) * 1000)
    write_json(path, document)
    clock.advance(1.1)
    ask(client)
    assert manager.refresh_token == refresh  # adopted: the label it kept is not an older one
    assert server.invalid_grants == 0


@pytest.fixture
def service(secret_service: SecretServiceSession) -> str:
    return f"claude-oauth-auth-test-generations-{uuid.uuid4().hex[:8]}"


def test_a_keyring_secret_put_back_by_another_program_is_not_adopted(
    server: FakeAnthropic, service: str, clock: Clock
) -> None:
    """Two processes share a keyring login; a third program puts back the secret it read two
    refreshes ago. A keyring keeps no record of spent tokens beside it, so the process that
    never spent that token adopted it, and lost the login at its next refresh."""
    access, refresh = server.issue_tokens(expires_in=-5)
    KeyringStore(service).save(TokenSet(access, refresh, clock() - 5), expected_version=None)
    first = OAuthTokenManager(store=KeyringStore(service), token_url=server.token_url, clock=clock)
    first.get_valid_token()
    older = keyring.get_password(service, "default")
    first.refresh()
    second = OAuthTokenManager(store=KeyringStore(service), token_url=server.token_url, clock=clock)
    client = sdk_client(second, server)
    ask(client)  # adopts the newest login; it never spent the older one
    newest = second.refresh_token
    assert older is not None
    keyring.set_password(service, "default", older)
    clock.advance((KeyringStore.poll_interval or 0) + 0.1)
    ask(client)
    assert second.refresh_token == newest
    stored = keyring.get_password(service, "default")
    assert stored is not None and json.loads(stored)["refresh_token"] == newest
    assert usable(server, newest) and server.invalid_grants == 0
