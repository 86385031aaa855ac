"""Where `save`, `logout` and `keep-fresh` act: the place clients look first, said out loud.

Without ``--store`` they follow the cascade's order among our own places: CLAUDE_AUTH_FILE,
then CLAUDE_TOKEN_STORE, then auth.json; an explicit ``--store`` wins over the environment.
`logout` (and `move`) leave nothing of a deleted login beside its file: no lock, no state.
All through the installed console script, in the temporary HOME.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import pytest
from fakeapi import FakeAnthropic
from helpers import auth_file_path, read_json, write_auth_file
from helpers import run_cli as run
from secret_service import SecretServiceSession

from claude_oauth_auth.stores import KeyringStore

SCRIPT = Path(sys.executable).with_name("claude-oauth-auth")
ACCESS = "sk-ant-oat01-" + "n" * 40 + "NEW1"
REFRESH = "sk-ant-ort01-" + "m" * 40 + "NEW2"
NEW_LOGIN = json.dumps({"access_token": ACCESS, "refresh_token": REFRESH, "expires_in": 3600})


def assert_no_secret(text: str, secrets: Iterable[str]) -> None:
    """No 8-character piece of any secret (the last 4 characters are allowed)."""
    for secret in secrets:
        for start in range(len(secret) - 8):
            assert secret[start : start + 8] not in text, f"a piece of a secret leaked: {text}"


def beside(path: Path) -> list[str]:
    """The files next to a token file that belong to it (``<name>`` and ``<name>.*``)."""
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name))


@pytest.fixture
def other(oauth_env: FakeAnthropic, home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """CLAUDE_TOKEN_STORE names a file that holds the login in use; auth.json holds another."""
    path = write_auth_file(home / "stores" / "other.json", *oauth_env.issue_tokens())
    write_auth_file(auth_file_path(home), *oauth_env.issue_tokens())
    monkeypatch.setenv("CLAUDE_TOKEN_STORE", f"file://{path}")
    return path


def test_save_writes_the_store_claude_token_store_names_and_says_so(
    other: Path, home: Path
) -> None:
    before = auth_file_path(home).read_bytes()
    saved = run("save", stdin=NEW_LOGIN)
    assert saved.returncode == 0, saved.stderr
    assert f"to {other} (CLAUDE_TOKEN_STORE)" in saved.stdout and "...NEW1" in saved.stdout
    assert read_json(other)["refresh_token"] == REFRESH
    assert auth_file_path(home).read_bytes() == before  # not the file clients no longer read
    # What was saved is the login clients use now.
    assert run("token").stdout == ACCESS + "\n"
    status = json.loads(run("status", "--json").stdout)
    assert (status["source"], status["credential"]["hint"]) == ("token_store_env", "...NEW1")
    assert_no_secret(saved.stdout + saved.stderr, [ACCESS, REFRESH])


def test_logout_deletes_the_store_claude_token_store_names_and_says_so(
    other: Path, home: Path
) -> None:
    before = auth_file_path(home).read_bytes()
    result = run("logout", "--yes")
    assert result.returncode == 0, result.stderr
    assert f"Deleted {other} (CLAUDE_TOKEN_STORE)." in result.stdout
    assert beside(other) == [] and auth_file_path(home).read_bytes() == before
    again = run("logout", "--yes")
    assert again.returncode == 0 and f"No token file at {other}" in again.stdout


def test_an_explicit_store_wins_over_claude_token_store_with_a_note(
    other: Path, tmp_path: Path
) -> None:
    explicit = tmp_path / "explicit.json"
    before = other.read_bytes()
    saved = run("save", "--store", f"file://{explicit}", stdin=NEW_LOGIN)
    assert saved.returncode == 0, saved.stderr
    assert f"to {explicit};" in saved.stdout
    assert read_json(explicit)["access_token"] == ACCESS and other.read_bytes() == before
    assert (
        "note: clients use this store only when CLAUDE_TOKEN_STORE names it; now they look in "
        f"{other} (CLAUDE_TOKEN_STORE)"
    ) in saved.stderr
    logout = run("logout", "--yes", "--store", f"file://{explicit}")
    assert logout.returncode == 0 and f"Deleted {explicit}." in logout.stdout
    assert not explicit.exists() and other.read_bytes() == before


def test_claude_auth_file_comes_before_claude_token_store_as_in_the_cascade(
    other: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    named = tmp_path / "named.json"
    monkeypatch.setenv("CLAUDE_AUTH_FILE", str(named))
    before = other.read_bytes()
    saved = run("save", stdin=NEW_LOGIN)
    assert saved.returncode == 0, saved.stderr
    assert f"to {named} (CLAUDE_AUTH_FILE)" in saved.stdout and other.read_bytes() == before
    assert run("token").stdout == ACCESS + "\n"
    logout = run("logout", "--yes", "--json")
    assert json.loads(logout.stdout) == {
        "deleted": True,
        "location": str(named),
        "chosen_by": "CLAUDE_AUTH_FILE",
    }
    assert not named.exists() and other.read_bytes() == before


def test_logout_leaves_no_lock_or_refresh_state_beside_the_file(
    oauth_env: FakeAnthropic, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = home / "stores" / "other.json"
    access, refresh = oauth_env.issue_tokens(expires_in=-5)
    oauth_env.revoke_refresh_token(refresh)
    write_auth_file(path, access, refresh, expires_in=-5)
    monkeypatch.setenv("CLAUDE_TOKEN_STORE", f"file://{path}")
    assert run("refresh").returncode == 1  # refused: recorded in the state file, under the lock
    assert beside(path) == ["other.json", "other.json.oauth.lock", "other.json.oauth.state"]
    result = run("logout", "--yes")
    assert result.returncode == 0, result.stderr
    assert beside(path) == []
    # A new login saved there is the one in use.
    assert run("save", stdin=NEW_LOGIN).returncode == 0
    assert run("token").stdout == ACCESS + "\n"


def test_move_leaves_no_lock_or_refresh_state_beside_the_source(
    oauth_env: FakeAnthropic, home: Path, tmp_path: Path
) -> None:
    source = write_auth_file(auth_file_path(home), *oauth_env.issue_tokens(expires_in=-5))
    assert run("refresh").returncode == 0
    assert beside(source) == ["auth.json", "auth.json.oauth.lock", "auth.json.oauth.state"]
    target = tmp_path / "moved.json"
    moved = run("move", "--from", str(source), "--to", f"file://{target}", "--json")
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout)["to"] == str(target)
    assert beside(source) == [] and target.exists()


def test_keep_fresh_refreshes_where_clients_look_first(
    oauth_env: FakeAnthropic, other: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    oauth_env.access_token_lifetime = 3600
    tokens = oauth_env.issue_tokens(expires_in=30)
    named = write_auth_file(tmp_path / "named.json", *tokens, expires_in=30)
    monkeypatch.setenv("CLAUDE_AUTH_FILE", str(named))
    before = (read_json(named)["refresh_token"], other.read_bytes())
    process = subprocess.Popen(
        [str(SCRIPT), "keep-fresh", "--ahead", "60", "--jitter", "0", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        deadline = time.monotonic() + 30
        while read_json(named)["refresh_token"] == before[0] and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        process.terminate()
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert read_json(named)["refresh_token"] != before[0] and other.read_bytes() == before[1]
    lines = [json.loads(line) for line in out.splitlines()]
    assert all(set(line) == {"time", "message"} for line in lines) and len(lines) >= 3
    assert str(named) in lines[0]["message"] and "refreshed" in lines[1]["message"]


def test_save_and_logout_with_claude_token_store_keyring(
    oauth_env: FakeAnthropic,
    secret_service: SecretServiceSession,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The issue's case: CLAUDE_TOKEN_STORE=keyring:…, as docs/storage.md shows."""
    if not secret_service.real:  # the script runs in another process: it needs the D-Bus one
        pytest.skip(f"no Secret Service: {secret_service.why_not_real}")
    service = f"claude-oauth-auth-test-{uuid.uuid4().hex[:8]}"
    store = KeyringStore(service, "default")
    monkeypatch.setenv("CLAUDE_TOKEN_STORE", f"keyring://{service}")
    try:
        saved = run("save", stdin=NEW_LOGIN)
        assert saved.returncode == 0, saved.stderr
        assert f"{store.location} (CLAUDE_TOKEN_STORE)" in saved.stdout
        assert not auth_file_path(home).exists()
        kept = store.load()
        assert kept is not None and kept.refresh_token == REFRESH
        assert run("token").stdout == ACCESS + "\n"
        logout = run("logout", "--yes")
        assert logout.returncode == 0, logout.stderr
        assert f"Deleted {store.location} (CLAUDE_TOKEN_STORE)" in logout.stdout
        assert store.load() is None
    finally:
        store.delete()
