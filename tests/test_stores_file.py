"""FileStore: the store contract, symlinks, permissions, and keeping the file's shape."""

from __future__ import annotations

import functools
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakeapi import FakeAnthropic
from helpers import read_json, write_auth_file, write_claude_code_file, write_json
from store_contract import (
    check_generation_is_kept,
    check_lock_is_exclusive_across_processes,
    check_round_trip_and_compare_and_set,
    same_tokens,
    token_set,
)

from claude_oauth_auth import OAuthTokenManager
from claude_oauth_auth.stores import FileStore, StoreConflict, TokenStore, store_from_url


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that takes nothing away, so the modes seen are the ones the store chose."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


# ----- the contract ----------------------------------------------------------------------------


def test_contract_round_trip_and_compare_and_set(tmp_path: Path) -> None:
    check_round_trip_and_compare_and_set(functools.partial(FileStore, tmp_path / "d" / "a.json"))


def test_contract_lock_is_exclusive_across_processes(tmp_path: Path) -> None:
    check_lock_is_exclusive_across_processes(functools.partial(FileStore, tmp_path / "a.json"))


def test_contract_through_a_file_url(tmp_path: Path) -> None:
    path = tmp_path / "with space" / "auth.json"
    url = "file://" + str(path).replace(" ", "%20")
    store = store_from_url(url)
    assert isinstance(store, FileStore) and isinstance(store, TokenStore)
    assert store.path == path and store.location == str(path)
    assert isinstance(store_from_url(f"file://localhost{path}"), FileStore)
    check_round_trip_and_compare_and_set(lambda: store_from_url(url))
    check_lock_is_exclusive_across_processes(lambda: store_from_url(url))


# ----- where and how the file is written ------------------------------------------------------


def test_a_symlinked_token_file_is_refreshed_at_its_target_and_stays_a_link(
    server: FakeAnthropic, home: Path
) -> None:
    access, refresh = server.issue_tokens(expires_in=-5)
    target = write_auth_file(home / "dotfiles" / "claude-auth.json", access, refresh, -5)
    link = home / ".config" / "claude" / "auth.json"
    link.parent.mkdir(parents=True, mode=0o700)
    link.symlink_to(target)
    manager = OAuthTokenManager(store=FileStore(link), token_url=server.token_url)
    new = manager.get_valid_token()
    assert new != access
    assert (server.token_posts, server.invalid_grants) == (1, 0)
    assert link.is_symlink() and os.readlink(link) == str(target)
    saved = read_json(target)
    assert (saved["access_token"], saved["refresh_token"]) == (new, manager.refresh_token)
    assert saved["refresh_token"] != refresh
    assert mode(target) == 0o600
    # Nothing was left beside the link: no temp file, no second copy.
    assert sorted(p.name for p in link.parent.iterdir()) == ["auth.json"]
    # A second manager on the target shares the lock and sees the rotated pair.
    assert (
        OAuthTokenManager(store=FileStore(target), token_url=server.token_url).get_valid_token()
        == new
    )
    assert server.token_posts == 1


def test_a_new_file_is_0600_in_a_new_0700_folder(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "fresh" / "auth.json"
    store = FileStore(path)
    with store.lock(timeout=5):
        store.save(token_set(1), expected_version=None)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert mode(path.parent / "auth.json.oauth.lock") == 0o600
    assert same_tokens(store.load(), token_set(1))


def test_a_refresh_makes_a_too_open_file_0600(
    server: FakeAnthropic, tmp_path: Path, open_umask: None
) -> None:
    access, refresh = server.issue_tokens(expires_in=-5)
    path = write_auth_file(tmp_path / "auth.json", access, refresh, -5)
    os.chmod(path, 0o644)  # readable by others: still trusted, but not left that way
    OAuthTokenManager(store=FileStore(path), token_url=server.token_url).get_valid_token()
    assert server.token_posts == 1
    assert mode(path) == 0o600


# ----- shapes and keys the store does not own -------------------------------------------------


def test_a_refresh_keeps_claude_codes_shape_and_unknown_keys(
    server: FakeAnthropic, tmp_path: Path
) -> None:
    access, refresh = server.issue_tokens(expires_in=-5)
    path = write_claude_code_file(
        tmp_path / "credentials.json", access, refresh, -5, otherTool={"setting": 1}
    )
    path_doc = read_json(path)
    path_doc["claudeAiOauth"]["rateLimitTier"] = "tier-x"  # a key added by a newer Claude Code
    write_json(path, path_doc)
    store = FileStore(path)
    manager = OAuthTokenManager(store=store, token_url=server.token_url)
    new = manager.get_valid_token()
    assert (server.token_posts, server.invalid_grants) == (1, 0)
    assert store.shape == "claude_code"
    saved = read_json(path)
    inner = saved["claudeAiOauth"]
    assert (inner["accessToken"], inner["refreshToken"]) == (new, manager.refresh_token)
    assert inner["expiresAt"] > (time.time() + 3000) * 1000  # milliseconds, as Claude Code's
    assert inner["scopes"] == ["user:inference", "user:profile"]
    assert (inner["subscriptionType"], inner["rateLimitTier"]) == ("max", "tier-x")
    assert saved["mcpOAuth"] == {"server": {"token": "keep-me"}}
    assert saved["otherTool"] == {"setting": 1}
    assert not {"access_token", "refresh_token", "token_expiry"} & set(saved)


def test_a_save_by_a_new_instance_keeps_the_shape_it_finds(tmp_path: Path) -> None:
    path = write_claude_code_file(tmp_path / "credentials.json", "old-access-token", "old-r", 60)
    store = FileStore(path)  # never loaded: save must find the shape itself
    store.save(token_set(2), expected_version=store.version())
    saved = read_json(path)
    assert saved["claudeAiOauth"]["accessToken"] == token_set(2).access_token
    assert saved["mcpOAuth"] == {"server": {"token": "keep-me"}}
    assert "access_token" not in saved
    assert same_tokens(FileStore(path).load(), token_set(2))


def test_a_save_keeps_our_shape_and_unknown_keys(tmp_path: Path) -> None:
    path = write_auth_file(
        tmp_path / "auth.json", "old-access-token", "old-refresh", 60, client_id="mine", note="kept"
    )
    store = FileStore(path)
    loaded = store.load()
    assert loaded is not None and loaded.extra == {"client_id": "mine"}
    store.save(token_set(3), expected_version=store.version())
    saved = read_json(path)
    assert (saved["client_id"], saved["note"]) == ("mine", "kept")
    assert saved["access_token"] == token_set(3).access_token
    assert saved["token_expiry"] == int(token_set(3).expires_at or 0)
    assert "claudeAiOauth" not in saved


def test_a_stale_save_is_refused_and_the_newer_file_kept(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    mine, theirs = FileStore(path), FileStore(path)
    mine.save(token_set(1), expected_version=None)
    seen = mine.version()
    theirs.save(token_set(2), expected_version=seen)
    with pytest.raises(StoreConflict) as caught:
        mine.save(token_set(3), expected_version=seen)
    assert caught.value.location == str(path)
    assert same_tokens(mine.load(), token_set(2))


def test_contract_generation_is_kept(tmp_path: Path) -> None:
    check_generation_is_kept(functools.partial(FileStore, tmp_path / "d" / "a.json"))
