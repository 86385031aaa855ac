"""KeyringStore against a real Secret Service (a private gnome-keyring-daemon on its own bus)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import stat
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import keyring
import pytest
from secret_service import SecretServiceSession
from store_contract import (
    SECRET_ACCESS,
    SECRET_REFRESH,
    check_generation_is_kept,
    check_lock_is_exclusive_across_processes,
    check_round_trip_and_compare_and_set,
    token_set,
)

from claude_oauth_auth.stores import KeyringStore, StoreError


@pytest.fixture
def service(secret_service: SecretServiceSession, request: pytest.FixtureRequest) -> str:
    """A service name no other test uses, so tests never see each other's secrets."""
    return f"claude-oauth-auth-test-{request.node.name}-{uuid.uuid4().hex[:8]}"


def test_real_secret_service_available(secret_service: SecretServiceSession) -> None:
    if secret_service.real:
        return
    message = (
        f"no Secret Service could start ({secret_service.why_not_real}); "
        "the keyring tests ran against keyrings.alt"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message + " — CI installs gnome-keyring, so this must work there")
    pytest.skip(message)


def test_round_trip_and_compare_and_set(service: str) -> None:
    check_round_trip_and_compare_and_set(functools.partial(KeyringStore, service))


def test_lock_is_exclusive_across_processes(service: str) -> None:
    check_lock_is_exclusive_across_processes(functools.partial(KeyringStore, service, "counter"))


def test_location_and_repr(service: str, secret_service: SecretServiceSession) -> None:
    store = KeyringStore(service, "alice")
    assert store.location == f"keyring://{service}/alice"
    assert repr(store) == f"KeyringStore(service={service!r}, username='alice')"
    assert store.writable
    assert KeyringStore.poll_interval == 5.0  # one Secret Service read costs milliseconds


@pytest.mark.parametrize(
    "secret",
    [
        f"not json {SECRET_REFRESH}",
        json.dumps({"refresh_token": SECRET_REFRESH}),  # no access token
        json.dumps([SECRET_ACCESS, SECRET_REFRESH]),
        json.dumps({"claudeAiOauth": {"accessToken": SECRET_ACCESS}}),  # Claude Code's shape
    ],
    ids=["not-json", "no-access-token", "a-list", "claude-code-shape"],
)
def test_malformed_secret_names_the_location_not_the_secret(service: str, secret: str) -> None:
    keyring.set_password(service, "default", secret)
    store = KeyringStore(service)
    with pytest.raises(StoreError) as caught:
        store.load()
    message = str(caught.value)
    assert message.startswith(f"keyring://{service}/default: the stored secret ")
    assert SECRET_ACCESS not in message and SECRET_REFRESH not in message
    assert caught.value.location == store.location
    # A new login replaces the unusable secret (compare-and-set against what is there).
    version = store.version()
    assert version is not None
    with store.lock(timeout=5):
        store.save(token_set(1), expected_version=version)
    loaded = store.load()
    assert loaded is not None and loaded.access_token == token_set(1).access_token
    store.delete()


def test_save_keeps_keys_it_does_not_own(service: str) -> None:
    document = {
        "access_token": "old-access-token-value",
        "refresh_token": "old-refresh-token-value",
        "token_expiry": 1,
        "client_id": "my-client",
        "note": "kept",
    }
    keyring.set_password(service, "default", json.dumps(document))
    store = KeyringStore(service)
    store.save(token_set(7), expected_version=store.version())
    saved = json.loads(keyring.get_password(service, "default") or "")
    assert saved["access_token"] == token_set(7).access_token
    assert (saved["client_id"], saved["note"]) == ("my-client", "kept")
    loaded = store.load()
    assert loaded is not None and loaded.extra == {"client_id": "my-client"}
    store.delete()


def test_delete_when_absent_is_quiet(service: str) -> None:
    store = KeyringStore(service)
    store.delete()
    store.delete()
    assert store.load() is None


def test_lock_file_is_private(service: str, home: Path) -> None:
    store = KeyringStore(service, "bob/with spaces")
    with store.lock(timeout=5):
        path = store.lock_path
        assert path.parent == home / ".config" / "claude-oauth-auth"
        assert path.name.startswith(f"keyring-{service}-bob_with_spaces-")
        assert path.name.endswith(".lock")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        # A second holder times out with an error that names the lock file.
        second = KeyringStore(service, "bob/with spaces")
        with pytest.raises(StoreError) as caught, second.lock(timeout=0.2):
            pass
        assert str(path) in str(caught.value)
        assert caught.value.location == store.location
    with KeyringStore(service, "bob/with spaces").lock(timeout=1):
        pass  # released


def test_unreachable_dbus_is_a_store_error(
    service: str, secret_service: SecretServiceSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not secret_service.real:
        pytest.skip("needs the Secret Service backend (see test_real_secret_service_available)")
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/claude-oauth-auth-bus")
    store = KeyringStore(service)
    for action in (store.load, store.version, store.delete):
        with pytest.raises(StoreError) as caught:
            action()
        assert "D-Bus" in caught.value.reason
        assert "DBUS_SESSION_BUS_ADDRESS" in (caught.value.fix or "")
    with pytest.raises(StoreError) as caught:
        store.save(token_set(1), expected_version=None)
    assert SECRET_ACCESS not in str(caught.value) and SECRET_REFRESH not in str(caught.value)


def test_locked_collection_is_a_store_error(
    service: str, secret_service: SecretServiceSession
) -> None:
    if not secret_service.real:
        pytest.skip("needs the Secret Service backend (see test_real_secret_service_available)")
    import secretstorage
    from secret_service import unlock_default_collection

    store = KeyringStore(service)
    store.save(token_set(1), expected_version=None)
    with contextlib.closing(secretstorage.dbus_init()) as connection:
        secretstorage.get_default_collection(connection).lock()
    try:
        with pytest.raises(StoreError) as caught:
            store.load()  # the unlock prompt cannot be shown here, so it is dismissed
        assert "locked" in caught.value.reason
        assert "unlock your login keyring" in (caught.value.fix or "")
    finally:
        unlock_default_collection()
    store.delete()


def _run(code: str, **environment: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **environment}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_missing_keyring_library_says_how_to_install_it() -> None:
    result = _run(
        """
        import sys
        sys.modules["keyring"] = None  # as if it were not installed
        from claude_oauth_auth.stores import KeyringStore, StoreError
        store = KeyringStore()
        assert not store.writable
        try:
            store.load()
        except StoreError as error:
            print(error)
        """
    )
    assert result.returncode == 0, result.stderr
    clone = Path(__file__).parents[1]
    assert result.stdout.strip() == (
        "keyring://claude-oauth-auth/default: the keyring library is not installed "
        f"(pip install 'keyring>=24', or pip install -e '{clone}[keyring]')"
    )


def test_keyring_is_imported_only_when_used() -> None:
    result = _run(
        """
        import sys
        import claude_oauth_auth, claude_oauth_auth.stores
        from claude_oauth_auth.stores import KeyringStore
        store = KeyringStore()
        print(store.location, repr(store), store.lock_path.name)
        assert "keyring" not in sys.modules, "imported by the package or the constructor"
        assert store.version() is None  # the null backend: nothing is stored
        assert "keyring" in sys.modules
        assert not store.writable  # the null backend would silently drop a save
        """,
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
    )
    assert result.returncode == 0, result.stderr


def test_no_backend_is_a_store_error() -> None:
    result = _run(
        """
        from claude_oauth_auth.stores import KeyringStore, StoreError
        store = KeyringStore("svc", "me")
        assert not store.writable
        try:
            store.load()
        except StoreError as error:
            print(error.reason)
            print(error.fix)
        """,
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
    )
    assert result.returncode == 0, result.stderr
    reason, fix = result.stdout.splitlines()
    assert reason == "no OS secret store was found (keyring has no usable backend)"
    assert "Secret Service" in fix


def test_generation_is_kept(service: str) -> None:
    check_generation_is_kept(functools.partial(KeyringStore, service))
