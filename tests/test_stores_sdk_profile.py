"""SdkProfileStore: the store contract, the SDK's file shape and refusals, one refresh for many
processes on one expired ``user_oauth`` profile."""

from __future__ import annotations

import functools
import os
import stat
import time
from pathlib import Path

import anthropic
import pytest
from fakeapi import FakeAnthropic
from helpers import fork_processes, read_json, write_json
from store_contract import (
    check_generation_is_kept,
    check_lock_is_exclusive_across_processes,
    check_round_trip_and_compare_and_set,
    same_tokens,
    token_set,
)

from claude_oauth_auth import ClaudeClient, TokenFileError
from claude_oauth_auth.stores import SdkProfileStore, TokenStore

ACCESS = "sk-ant-oat01-" + "a" * 40 + "WXYZ"
REFRESH = "sk-ant-ort01-" + "r" * 40 + "RRRR"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"


def credentials(path: Path, **fields: object) -> Path:
    document = {
        "version": "1.0",
        "type": "oauth_token",
        "access_token": ACCESS,
        "refresh_token": REFRESH,
        "expires_at": int(time.time()) + 3600,
        **fields,
    }
    return write_json(path, {k: v for k, v in document.items() if v is not None})


def test_contract_round_trip_and_compare_and_set(tmp_path: Path) -> None:
    make = functools.partial(SdkProfileStore, tmp_path / "credentials" / "default.json")
    check_round_trip_and_compare_and_set(make)


def test_contract_lock_is_exclusive_across_processes(tmp_path: Path) -> None:
    make = functools.partial(SdkProfileStore, tmp_path / "credentials" / "default.json")
    check_lock_is_exclusive_across_processes(make)


def test_reads_the_sdks_shape_with_expires_at_in_seconds(tmp_path: Path) -> None:
    path = credentials(tmp_path / "default.json", expires_at=1_900_000_000)
    store = SdkProfileStore(path)
    assert isinstance(store, TokenStore)
    tokens = store.load()
    assert tokens is not None
    assert (tokens.access_token, tokens.refresh_token) == (ACCESS, REFRESH)
    assert tokens.expires_at == 1_900_000_000.0
    assert ACCESS not in repr(store) and ACCESS not in repr(tokens)


def test_a_save_keeps_type_and_every_other_key_and_writes_seconds(tmp_path: Path) -> None:
    path = credentials(tmp_path / "default.json", scope="user:inference", note={"kept": 1})
    store = SdkProfileStore(path)
    new = token_set(7)
    store.save(new, expected_version=store.version())
    written = read_json(path)
    assert written["type"] == "oauth_token" and written["version"] == "1.0"
    assert written["scope"] == "user:inference" and written["note"] == {"kept": 1}
    assert written["expires_at"] == int(new.expires_at or 0)
    assert isinstance(written["expires_at"], int)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert same_tokens(store.load(), new)


def test_without_client_id_the_refresh_token_is_hidden_and_kept(tmp_path: Path) -> None:
    path = credentials(tmp_path / "default.json")
    store = SdkProfileStore(path, refreshable=False)
    tokens = store.load()
    assert tokens is not None and tokens.refresh_token is None
    store.save(tokens, expected_version=store.version())
    assert read_json(path)["refresh_token"] == REFRESH  # never dropped


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_file_others_may_read_is_refused_like_the_sdk(tmp_path: Path, mode: int) -> None:
    path = credentials(tmp_path / "default.json")
    os.chmod(path, mode)
    with pytest.raises(TokenFileError, match="chmod 600"):
        SdkProfileStore(path).load()


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_a_symlink_is_refused_like_the_sdk(tmp_path: Path) -> None:
    real = credentials(tmp_path / "real.json")
    link = tmp_path / "default.json"
    link.symlink_to(real)
    with pytest.raises(TokenFileError, match="symlink"):
        SdkProfileStore(link).load()


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"type": "private_key"}, "expected 'oauth_token'"),
        ({"access_token": None}, "access_token"),
        ({"expires_at": "soon"}, "unix timestamp in seconds"),
        ({"refresh_token": 5}, "must be a string"),
    ],
)
def test_bad_contents_say_what_is_wrong(
    tmp_path: Path, fields: dict[str, object], reason: str
) -> None:
    path = credentials(tmp_path / "default.json", **fields)
    with pytest.raises(TokenFileError, match=reason) as caught:
        SdkProfileStore(path).load()
    assert ACCESS not in str(caught.value) and REFRESH not in str(caught.value)


def test_absent_file_is_empty(tmp_path: Path) -> None:
    store = SdkProfileStore(tmp_path / "none.json")
    assert store.load() is None and store.version() is None


def test_8_processes_on_one_expired_profile_make_one_refresh(
    home: Path, server: FakeAnthropic
) -> None:
    server.refresh_latency = 0.5
    access, refresh = server.issue_tokens(expires_in=-5)
    folder = home / ".config" / "anthropic"
    config = {"base_url": server.base_url, "authentication": {"type": "user_oauth"}}
    config["authentication"]["client_id"] = CLIENT_ID  # type: ignore[index]
    write_json(folder / "configs" / "default.json", config, mode=0o644)
    path = credentials(
        folder / "credentials" / "default.json",
        access_token=access,
        refresh_token=refresh,
        expires_at=int(time.time()) - 5,
    )

    def build_and_send() -> str:  # in each process, all released together
        client = ClaudeClient(max_retries=0)
        client.messages.create(
            model="claude-test-1", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
        return client.auth_source

    assert fork_processes(lambda: build_and_send, 8) == ["anthropic_profile_active"] * 8
    assert (server.token_posts, server.invalid_grants) == (1, 0)

    # The SDK itself carries on with the file we wrote, and the stored refresh token is live.
    server.reset_counters()
    server.refresh_latency = 0.0
    sdk = anthropic.Anthropic(max_retries=0)
    sdk.messages.create(
        model="claude-test-1", max_tokens=5, messages=[{"role": "user", "content": "x"}]
    )
    assert server.token_posts == 0
    assert server.api_requests[-1].token == read_json(path)["access_token"]
    forced = sdk.credentials(force_refresh=True)  # type: ignore[misc]
    assert forced.token and server.invalid_grants == 0


def test_contract_generation_is_kept(tmp_path: Path) -> None:
    check_generation_is_kept(functools.partial(SdkProfileStore, tmp_path / "default.json"))
