"""macOS Keychain support, exercised on any OS through a stub `security` command on PATH."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest
from fakeapi import FakeAnthropic
from helpers import read_json, write_claude_code_file

from claude_oauth_auth import OAuthTokenManager, UnifiedAuthManager
from claude_oauth_auth.stores import ClaudeCodeStore
from claude_oauth_auth.stores._keychain import Keychain

STUB = '''#!{python}
"""A stand-in for macOS `security`: items live in a JSON file; every argv is logged."""
import json, os, shlex, sys
store_path = os.environ["KEYCHAIN_STUB_FILE"]
with open(store_path + ".argv", "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
store = json.load(open(store_path)) if os.path.exists(store_path) else {{}}
if os.environ.get("KEYCHAIN_STUB_LOCKED"):
    print("security: User interaction is not allowed.", file=sys.stderr)
    sys.exit(36)
args = sys.argv[1:]
if args[:1] == ["-i"]:
    line = sys.stdin.read().strip()
    args = shlex.split(line)
    if args[0] != "add-generic-password":
        sys.exit(2)
    service = args[args.index("-s") + 1]
    account = args[args.index("-a") + 1]
    store[service + "/" + account] = bytes.fromhex(args[args.index("-X") + 1]).decode()
    json.dump(store, open(store_path, "w"))
    sys.exit(0)
if args[0] == "find-generic-password":
    key = args[args.index("-s") + 1] + "/" + args[args.index("-a") + 1]
    if key not in store:
        print("security: The specified item could not be found in the keychain.", file=sys.stderr)
        sys.exit(44)
    print(store[key])
    sys.exit(0)
sys.exit(2)
'''


@pytest.fixture
def keychain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put the stub `security` first on PATH; return its store file."""
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "security"
    script.write_text(STUB.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("USER", "tester")
    store = tmp_path / "keychain.json"
    monkeypatch.setenv("KEYCHAIN_STUB_FILE", str(store))
    return store


def put_item(store: Path, access: str, refresh: str, expires_in: float, **extra: object) -> None:
    document = {
        "claudeAiOauth": {
            "accessToken": access,
            "refreshToken": refresh,
            "expiresAt": int((time.time() + expires_in) * 1000),
            "scopes": ["user:inference"],
            "subscriptionType": "pro",
        },
        **extra,
    }
    items = json.loads(store.read_text()) if store.exists() else {}
    items["Claude Code-credentials/tester"] = json.dumps(document)
    store.write_text(json.dumps(items))


def get_item(store: Path) -> dict[str, object]:
    document: dict[str, object] = json.loads(
        json.loads(store.read_text())["Claude Code-credentials/tester"]
    )
    return document


def test_keychain_round_trip_keeps_unknown_keys_and_never_passes_secrets_as_arguments(
    keychain: Path, server: FakeAnthropic, home: Path
) -> None:
    access, refresh = server.issue_tokens(expires_in=-5)
    put_item(keychain, access, refresh, -5, mcpOAuth={"x": 1})
    manager = OAuthTokenManager(
        store=ClaudeCodeStore(
            home / ".claude" / ".credentials.json", keychains=Keychain.candidates(None)
        ),
        token_url=server.token_url,
    )
    assert manager.access_token == access
    new_access = manager.get_valid_token()
    assert new_access != access and server.token_posts == 1
    saved = get_item(keychain)
    inner = saved["claudeAiOauth"]
    assert isinstance(inner, dict)
    assert inner["accessToken"] == new_access
    assert inner["refreshToken"] == manager.refresh_token
    assert inner["subscriptionType"] == "pro" and saved["mcpOAuth"] == {"x": 1}
    assert not (home / ".claude" / ".credentials.json").exists()  # no file was invented
    argv_log = Path(str(keychain) + ".argv").read_text()
    for secret in (access, refresh, new_access, manager.refresh_token or ""):
        assert secret not in argv_log
        assert secret.encode().hex() not in argv_log


def test_fresher_of_keychain_and_file_wins(
    keychain: Path, server: FakeAnthropic, home: Path
) -> None:
    path = home / ".claude" / ".credentials.json"
    old_access, old_refresh = server.issue_tokens(expires_in=600)
    new_access, new_refresh = server.issue_tokens(expires_in=7200)
    write_claude_code_file(path, old_access, old_refresh, expires_in=600)
    put_item(keychain, new_access, new_refresh, 7200)
    manager = OAuthTokenManager(store=ClaudeCodeStore(path, keychains=Keychain.candidates(None)))
    assert manager.access_token == new_access
    put_item(keychain, old_access, old_refresh, 600)
    write_claude_code_file(path, new_access, new_refresh, expires_in=7200)
    manager = OAuthTokenManager(store=ClaudeCodeStore(path, keychains=Keychain.candidates(None)))
    assert manager.access_token == new_access
    assert read_json(path)["claudeAiOauth"]["accessToken"] == new_access


def test_claude_code_source_reads_the_keychain_on_macos(
    keychain: Path, server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    access, refresh = server.issue_tokens()
    put_item(keychain, access, refresh, 3600)
    monkeypatch.setattr(sys, "platform", "darwin")
    auth = UnifiedAuthManager()
    assert auth.source == "claude_code"
    assert auth.token_manager is not None and auth.token_manager.access_token == access
    report = next(r for r in auth.reports if r.name == "claude_code")
    assert "Keychain" in report.detail and access not in report.detail


def test_config_dir_suffixed_item_name_is_looked_up_first(
    keychain: Path, monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    names = [item.service for item in Keychain.candidates(str(home / "cfg"))]
    assert names[1] == "Claude Code-credentials"
    assert names[0].startswith("Claude Code-credentials-")
    assert len(names[0]) == len("Claude Code-credentials-") + 8


def test_locked_keychain_is_reported_as_unavailable(
    keychain: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYCHAIN_STUB_LOCKED", "1")
    monkeypatch.setattr(sys, "platform", "darwin")
    from claude_oauth_auth import get_auth_status

    status = get_auth_status()
    entry = next(s for s in status["sources"] if s["name"] == "claude_code")
    assert entry["state"] == "absent"
    assert "locked" in entry["detail"]
