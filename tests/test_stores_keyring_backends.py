"""Which keyring backend the ``keyring:`` store will use: never a plain file by accident, and a
Secret Service that cannot be reached is an unavailable store, not a crash.

Each case runs the console script or a child interpreter in a temporary HOME, with the
environment a user would have (no D-Bus session, or a backend chosen on purpose).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakeapi import FakeAnthropic

SCRIPT = Path(sys.executable).with_name("claude-oauth-auth")
TOKENS = json.dumps(
    {"access_token": "sk-ant-oat01-abcd", "refresh_token": "sk-ant-ort01-efgh", "expires_in": 3600}
)
PLAINTEXT = "keyrings.alt.file.PlaintextKeyring"


def have_keyrings_alt() -> bool:
    try:
        import keyrings.alt.file  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return False
    return True


def no_session_bus(home: Path, **extra: str) -> dict[str, str]:
    """The environment of an ssh or cron session: no D-Bus, no backend chosen."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DBUS_SESSION_BUS_ADDRESS", "PYTHON_KEYRING_BACKEND")
    }
    environment["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={home}/no-bus"
    environment.update(extra)
    return environment


def save(store: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), "save", "--store", store],
        input=TOKENS,
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )


def plaintext_files(home: Path) -> list[Path]:
    return [path for path in home.rglob("*.cfg") if "python_keyring" in str(path)]


@pytest.mark.skipif(not have_keyrings_alt(), reason="needs keyrings.alt (the [dev] extra)")
def test_save_refuses_a_plaintext_backend_nobody_chose(home: Path) -> None:
    done = save("keyring:", no_session_bus(home))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "plain" in done.stderr and "PYTHON_KEYRING_BACKEND" in done.stderr, done.stderr
    assert "Secret Service" in done.stderr  # what to install or start
    assert plaintext_files(home) == []
    assert "sk-ant" not in done.stdout + done.stderr


@pytest.mark.skipif(not have_keyrings_alt(), reason="needs keyrings.alt (the [dev] extra)")
@pytest.mark.parametrize("how", ["variable", "url"])
def test_a_plaintext_backend_chosen_on_purpose_is_used(how: str, home: Path) -> None:
    if how == "variable":
        done = save("keyring:", no_session_bus(home, PYTHON_KEYRING_BACKEND=PLAINTEXT))
    else:
        done = save(f"keyring:?backend={PLAINTEXT}", no_session_bus(home))
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(plaintext_files(home)) == 1


def test_an_unknown_keyring_url_option_is_refused(home: Path) -> None:
    done = save("keyring:?backnd=x", no_session_bus(home))
    assert done.returncode in (1, 2) and "'backnd'" in done.stderr, done.stderr


def test_a_secret_service_with_no_bus_is_unavailable_and_the_client_moves_on(
    oauth_env: FakeAnthropic, home: Path
) -> None:
    """The SecretService backend chosen, but no session bus: keyring raises RuntimeError when
    it starts; the store is unavailable with a reason, and the API key is used."""
    environment = no_session_bus(
        home,
        PYTHON_KEYRING_BACKEND="keyring.backends.SecretService.Keyring",
        DBUS_SESSION_BUS_ADDRESS="",
        CLAUDE_TOKEN_STORE="keyring:",
        ANTHROPIC_API_KEY=oauth_env.add_api_key(),
    )
    code = (
        "from claude_oauth_auth import ClaudeClient, get_auth_status\n"
        "client = ClaudeClient()\n"
        "print(client.auth_source)\n"
        "row = [r for r in get_auth_status()['sources'] if r['name'] == 'token_store_env'][0]\n"
        "print(row['state'], '|', row['detail'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=60
    )
    assert done.returncode == 0, done.stderr
    source, row = done.stdout.splitlines()
    assert source == "api_key_env"
    assert row.startswith("invalid | CLAUDE_TOKEN_STORE: keyring://"), row
    assert "Secret Service" in row
