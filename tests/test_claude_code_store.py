"""Claude Code's file as Claude Code leaves it: a login it logged out, its folder, its Keychain
item's name."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Clock
from fakeapi import FakeAnthropic
from helpers import claude_code_path, read_json, run_cli, write_claude_code_file, write_json
from store_contract import check_generation_is_kept

from claude_oauth_auth import ClaudeAuthError, OAuthTokenManager, TokenFileError, get_auth_status
from claude_oauth_auth.stores import ClaudeCodeStore, FileStore, TokenSet


def logged_out(document: dict[str, Any]) -> dict[str, Any]:
    """What Claude Code writes after its refresh token was refused: the tokens blanked, every
    other key kept (and, when the login ran out of time, a ``loginEnded`` mark)."""
    inner = {
        **document["claudeAiOauth"],
        "accessToken": "",
        "refreshToken": "",
        "expiresAt": 0,
        "loginEnded": "time_limit",
    }
    return {**document, "claudeAiOauth": inner}


@pytest.fixture
def blanked(home: Path) -> Path:
    path = write_claude_code_file(claude_code_path(home), "sk-ant-oat01-" + "a" * 30, "r" * 30)
    return write_json(path, logged_out(read_json(path)))


def test_a_login_claude_code_logged_out_is_reported_as_such_with_what_to_run(
    blanked: Path,
) -> None:
    status = get_auth_status()
    report = next(source for source in status["sources"] if source["name"] == "claude_code")
    assert report["state"] == "invalid"
    assert "logged out by Claude Code" in report["detail"]
    assert "empty" not in report["detail"] and "accessToken" not in report["detail"]
    assert report["fix"] == "log in again with Claude Code: run `claude`, then /login"
    assert status["fix"] == f"claude_code is broken; {report['fix']}"
    shown = run_cli("status")
    assert "logged out by Claude Code" in shown.stdout and "/login" in shown.stdout


@pytest.mark.parametrize("kind", ["claude_code", "file"])
def test_a_login_claude_code_logged_out_is_no_parse_error_for_the_stores(
    blanked: Path, kind: str
) -> None:
    store = ClaudeCodeStore(blanked, keychains=[]) if kind == "claude_code" else FileStore(blanked)
    with pytest.raises(TokenFileError) as raised:
        store.load()
    assert raised.value.reason.startswith("was logged out by Claude Code")
    assert raised.value.fix is not None and "/login" in raised.value.fix


def test_a_save_we_left_unfinished_is_not_recovered_over_a_login_claude_code_logged_out(
    home: Path,
) -> None:
    path = write_claude_code_file(claude_code_path(home), "sk-ant-oat01-" + "o" * 30, "o" * 30)
    leftover = path.with_name("..credentials.json.killed.tmp")  # as write_json_atomic names it
    shutil.copy(path, leftover)  # a save of ours, killed before its rename
    os.chmod(leftover, 0o600)
    write_json(path, logged_out(read_json(path)))
    before = read_json(path)
    store = ClaudeCodeStore(path, keychains=[])
    with store.lock(5):
        assert store.recover_interrupted_save() is False
    assert read_json(path) == before


def test_a_manager_holding_the_login_claude_code_logged_out_never_writes_it_back(
    server: FakeAnthropic, home: Path, clock: Clock
) -> None:
    access, refresh = server.issue_tokens(expires_in=900)
    path = write_claude_code_file(claude_code_path(home), access, refresh, expires_in=900)
    store = ClaudeCodeStore(path, keychains=[])
    manager = OAuthTokenManager(store=store, token_url=server.token_url, clock=clock)
    assert manager.get_valid_token() == access
    server.revoke_refresh_token(refresh)  # Claude Code spent it and was refused...
    write_json(path, logged_out(read_json(path)))  # ...so it logged out
    after = read_json(path)
    clock.advance(5)
    manager.get_valid_token()  # the access token has not expired yet
    clock.advance(900)
    with pytest.raises(ClaudeAuthError):
        manager.get_valid_token()
    assert read_json(path) == after


def test_a_new_login_saved_over_one_claude_code_logged_out_keeps_every_other_key(
    blanked: Path,
) -> None:
    store = ClaudeCodeStore(blanked, keychains=[])
    new = TokenSet(
        "sk-ant-oat01-" + "n" * 30, "sk-ant-ort01-" + "n" * 30, time.time() + 3600, ("x:y",)
    )
    store.save(new, expected_version=store.version())
    saved = read_json(blanked)
    inner = saved["claudeAiOauth"]
    assert (inner["accessToken"], inner["refreshToken"]) == (new.access_token, new.refresh_token)
    assert inner["expiresAt"] == int(new.expires_at * 1000)  # type: ignore[operator]
    assert inner["scopes"] == ["user:inference", "user:profile"]  # what Claude Code checks
    assert inner["subscriptionType"] == "max"
    assert "loginEnded" not in inner  # a login again, as Claude Code's own save leaves it
    assert saved["mcpOAuth"] == {"server": {"token": "keep-me"}}
    assert not {"access_token", "refresh_token", "token_expiry"} & set(saved)
    loaded = store.load()
    assert loaded is not None and loaded.refresh_token == new.refresh_token


def test_claude_codes_login_is_found_in_its_secure_storage_folder(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secure, config = tmp_path / "secure", tmp_path / "config"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    monkeypatch.setenv("CLAUDE_SECURESTORAGE_CONFIG_DIR", str(secure))
    path = write_claude_code_file(secure / ".credentials.json", "sk-ant-oat01-" + "s" * 30, None)
    store = ClaudeCodeStore(keychains=[])
    assert store.path == path
    status = get_auth_status()
    assert status["source"] == "claude_code" and status["oauth_token_file"] == str(path)
    with store.lock(5):
        assert (secure / ".oauth_refresh.lock").is_dir()
        assert Path(str(secure) + ".lock").is_dir()
    monkeypatch.setenv("CLAUDE_SECURESTORAGE_CONFIG_DIR", "")  # set but empty: ~/.claude
    assert ClaudeCodeStore(keychains=[]).path == claude_code_path(home)


def test_the_keychain_item_is_named_per_folder_as_claude_code_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")

    def names() -> list[str]:
        return [item.service for item in ClaudeCodeStore().keychains]

    def suffixed(folder: str) -> str:
        return "Claude Code-credentials-" + hashlib.sha256(folder.encode()).hexdigest()[:8]

    assert names() == ["Claude Code-credentials"]
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", "/srv/claude-config")
    assert names() == [suffixed("/srv/claude-config"), "Claude Code-credentials"]
    monkeypatch.setenv("CLAUDE_SECURESTORAGE_CONFIG_DIR", "/srv/claude-secure")
    assert names()[0] == suffixed("/srv/claude-secure")
    monkeypatch.setenv("CLAUDE_SECURESTORAGE_CONFIG_DIR", "")
    assert names() == ["Claude Code-credentials"]


def test_contract_generation_is_kept_beside_claude_codes_object(home: Path) -> None:
    path = claude_code_path(home)
    write_json(path, {"mcpOAuth": {"kept": True}})
    check_generation_is_kept(lambda: ClaudeCodeStore(path, keychains=[]))
    assert read_json(path)["mcpOAuth"] == {"kept": True}
