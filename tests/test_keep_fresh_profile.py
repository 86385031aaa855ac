"""``keep-fresh --to-profile NAME``: plain SDK processes on one login, never refreshing it.

The sidecar publishes the access token it keeps fresh as the SDK profile NAME (a
``user_oauth`` profile without a ``client_id``, which the SDK re-reads instead of
refreshing); ``anthropic.Anthropic(profile=NAME)`` in any number of processes then uses it.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fakeapi import FakeAnthropic
from helpers import read_json, write_auth_file, write_json
from test_keep_fresh import Sidecar

from claude_oauth_auth import cli
from claude_oauth_auth.cli._published_profile import (
    SDK_MANDATORY_SECONDS,
    SDK_REFRESH_LEAD_SECONDS,
    PublishedProfile,
)

LIFETIME = 5.0  # seconds a token from the fake endpoint lives
AHEAD, JITTER = 3.0, 0.5  # the sidecar refreshes 2.5 to 3 s before expiry
PROCESSES = 16

PLAIN_SDK_PROCESSES = """
import os, sys, time, traceback
import anthropic  # once, before the fork: 16 imports would take longer than the test

processes, seconds = int(sys.argv[1]), float(sys.argv[2])
children = []
for _ in range(processes):
    child = os.fork()
    if child == 0:
        code = 0
        try:
            client = anthropic.Anthropic(profile="shared")
            deadline, done = time.time() + seconds, 0
            while time.time() < deadline:
                client.messages.create(
                    model="claude-sonnet-4-6",
                    max_tokens=8,
                    messages=[{"role": "user", "content": "hi"}],
                )
                done += 1
                time.sleep(0.2)
            os.write(1, f"{done}\\n".encode())  # one write: lines of 16 children never mix
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            code = 1
        os._exit(code)
    children.append(child)
sys.exit(max(os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) for child in children))
"""


def profile_files(home: Path, name: str = "shared") -> tuple[Path, Path]:
    folder = home / ".config" / "anthropic"
    return folder / "configs" / f"{name}.json", folder / "credentials" / f"{name}.json"


def plain_sdk_environment() -> dict[str, str]:
    """The test's HOME, without our variables or the API host: the profile names the host."""
    environment = dict(os.environ)
    for name in ("ANTHROPIC_BASE_URL", "CLAUDE_OAUTH_TOKEN_URL", "CLAUDE_TOKEN_STORE"):
        environment.pop(name, None)
    return environment


class ProfileWatch:
    """Reads the profile's files every few milliseconds: what each ever held, as text."""

    def __init__(self, *paths: Path) -> None:
        self.paths = paths
        self.seen: set[str] = set()
        self.modes: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            for path in self.paths:
                try:
                    self.seen.add(path.read_text())
                    self.modes.add(stat.S_IMODE(os.stat(path).st_mode))
                except FileNotFoundError:
                    continue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def test_the_refresh_lead_is_the_sdks_own() -> None:
    """The --ahead warning rests on the SDK's TokenCache thresholds: fail when they move."""
    from anthropic.lib.credentials import _constants

    assert _constants.ADVISORY_REFRESH_SECONDS == SDK_REFRESH_LEAD_SECONDS
    assert _constants.MANDATORY_REFRESH_SECONDS == SDK_MANDATORY_SECONDS


@pytest.mark.slow
def test_sixteen_plain_sdk_processes_make_no_token_post_across_two_expiries(
    oauth_env: FakeAnthropic, home: Path, tmp_path: Path
) -> None:
    oauth_env.access_token_lifetime = LIFETIME
    access, refresh = oauth_env.issue_tokens(expires_in=LIFETIME)
    token_file = write_auth_file(tmp_path / "login" / "auth.json", access, refresh, LIFETIME)
    config, credentials = profile_files(home)
    watch = ProfileWatch(config, credentials)
    sidecar = Sidecar(
        *("--store", f"file://{token_file}", "--ahead", str(AHEAD), "--jitter", str(JITTER)),
        *("--to-profile", "shared"),
    )
    try:
        deadline = time.monotonic() + 15
        while not config.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert config.exists(), sidecar.lines
        seconds = 2 * LIFETIME + 1  # the first token's expiry and the next one's fall inside
        sdk = subprocess.run(
            [sys.executable, "-c", PLAIN_SDK_PROCESSES, str(PROCESSES), str(seconds)],
            capture_output=True,
            text=True,
            env=plain_sdk_environment(),
            timeout=90,
            check=False,
        )
    finally:
        code, stderr = sidecar.stop()
        watch.stop()
    assert code == 0, stderr
    assert sdk.returncode == 0, sdk.stderr
    counts = [int(line) for line in sdk.stdout.split()]
    assert len(counts) == PROCESSES and min(counts) >= 10, counts
    requests = sum(counts)

    # Every token POST was the sidecar's: the 16 processes made none.
    assert sidecar.refreshes >= 3, sidecar.lines
    assert oauth_env.token_posts == sidecar.refreshes
    assert oauth_env.invalid_grants == 0
    # Every request succeeded at once (no 401 and retry), over at least three tokens.
    statuses = [recorded.status for recorded in oauth_env.api_requests]
    assert statuses == [200] * requests
    assert len({recorded.token for recorded in oauth_env.api_requests}) >= 3

    # The profile never held a refresh token, nor a client_id; both files stayed private.
    assert watch.seen and watch.modes == {0o600}
    for text in watch.seen:
        assert "refresh_token" not in text and "sk-ant-ort" not in text
        assert "client_id" not in text
    assert read_json(config) == {
        "version": "1.0",
        "base_url": oauth_env.base_url,
        "authentication": {"type": "user_oauth"},
    }
    assert set(read_json(credentials)) == {"version", "type", "access_token", "expires_at"}
    assert stat.S_IMODE(os.stat(config.parent).st_mode) == 0o700
    assert any("not above the SDK's own refresh lead (120 s)" in line for line in sidecar.lines)
    assert sum("keep-fresh: published" in line for line in sidecar.lines) >= sidecar.refreshes
    for line in sidecar.lines:
        assert "sk-ant-o" not in line
    print(
        f"\nkeep-fresh --to-profile: {requests} requests by {PROCESSES} plain SDK processes over "
        f"{seconds:g} s, {sidecar.refreshes} sidecar refreshes, SDK token POSTs "
        f"{oauth_env.token_posts - sidecar.refreshes}, tokens used "
        f"{len({recorded.token for recorded in oauth_env.api_requests})}"
    )


def test_a_published_profile_is_what_the_sdk_reads(
    oauth_env: FakeAnthropic, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK's own provider reads the published token and its expiry, and never refreshes."""
    import anthropic
    from anthropic.lib.credentials import CredentialsFile

    access, _refresh = oauth_env.issue_tokens(expires_in=600)
    expires_at = time.time() + 600.7
    published = PublishedProfile("shared")
    published.prepare()
    assert published.publish(access, expires_at)
    assert not published.publish(access, expires_at)  # unchanged: not written again
    token = CredentialsFile("shared")(force_refresh=True)
    assert (token.token, token.expires_at) == (access, int(expires_at))
    monkeypatch.delenv("ANTHROPIC_BASE_URL")
    client = anthropic.Anthropic(profile="shared")
    client.messages.create(
        model="claude-sonnet-4-6", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
    )
    assert oauth_env.api_requests[-1].token == access
    assert oauth_env.token_posts == 0


def test_keep_fresh_publishes_at_start_without_a_warning_at_the_default_ahead(
    oauth_env: FakeAnthropic, home: Path, tmp_path: Path
) -> None:
    """The first token is published before any refresh; 600 s less 60 s is above the SDK's
    120 s lead, so no warning."""
    from claude_oauth_auth.cli._command_keep_fresh import KeepFresh
    from claude_oauth_auth.stores import FileStore

    access, refresh = oauth_env.issue_tokens(expires_in=3600)
    token_file = write_auth_file(tmp_path / "login" / "auth.json", access, refresh, 3600)
    profile = PublishedProfile("shared")
    profile.prepare()
    lines: list[str] = []
    keeper = KeepFresh(
        FileStore(token_file), ahead=600, jitter=60, say=lines.append, profile=profile
    )
    stop = threading.Event()
    runner = threading.Thread(target=keeper.run, args=(stop,))
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while not any("published" in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        runner.join(10)
    _config, credentials = profile_files(home)
    assert read_json(credentials)["access_token"] == access
    assert not any("warning" in line for line in lines), lines
    assert any(f"published the access token (...{access[-4:]})" in line for line in lines)
    assert keeper.refreshes == oauth_env.token_posts == 0


def test_an_existing_sidecar_profile_is_reused_as_it_is(
    oauth_env: FakeAnthropic, home: Path
) -> None:
    """A profile without a client_id (another sidecar's, or one written by hand) is kept: only
    its credentials file is written, where its credentials_path says."""
    config, _credentials = profile_files(home)
    elsewhere = home / "tokens" / "shared.json"
    document = {
        "authentication": {"type": "user_oauth", "credentials_path": str(elsewhere)},
        "workspace_id": "wrkspc_01example",
    }
    write_json(config, document)
    access, _refresh = oauth_env.issue_tokens(expires_in=600)
    published = PublishedProfile("shared")
    published.prepare()
    assert published.publish(access, time.time() + 600)
    assert read_json(config) == document
    assert read_json(elsewhere)["access_token"] == access


def keep_fresh_to(
    profile: str, token_file: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    store = f"file://{token_file}"
    code = cli.main(["keep-fresh", "--store", store, "--ahead", "600", "--to-profile", profile])
    out, err = capsys.readouterr()
    return code, out + err


@pytest.fixture
def login(oauth_env: FakeAnthropic, tmp_path: Path) -> Path:
    """A login the sidecar would keep fresh (already due, so it would refresh at once)."""
    access, refresh = oauth_env.issue_tokens(expires_in=30)
    return write_auth_file(tmp_path / "login" / "auth.json", access, refresh, expires_in=30)


@pytest.mark.parametrize(
    ("config", "credentials", "words"),
    [
        (
            {"authentication": {"type": "user_oauth", "client_id": "11111111-2222"}},
            None,
            "has a client_id: it is a login of its own",
        ),
        (
            {"authentication": {"type": "user_oauth"}},
            {"access_token": "sk-ant-oat01-x", "refresh_token": "sk-ant-ort01-y"},
            "holds a refresh token: it is a login of its own",
        ),
        (
            None,
            {"access_token": "sk-ant-oat01-x", "refresh_token": "sk-ant-ort01-y"},
            "holds a refresh token: it is a login of its own",
        ),
        (
            {"authentication": {"type": "oidc_federation"}},
            None,
            "is an oidc_federation profile",
        ),
    ],
)
def test_someones_own_profile_is_refused_before_a_token_is_spent(
    config: dict[str, object] | None,
    credentials: dict[str, object] | None,
    words: str,
    login: Path,
    home: Path,
    oauth_env: FakeAnthropic,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config_path, credentials_path = profile_files(home, "work")
    if config is not None:
        write_json(config_path, config)
    if credentials is not None:
        write_json(credentials_path, credentials)
    before = [path.read_bytes() for path in (config_path, credentials_path) if path.exists()]
    code, text = keep_fresh_to("work", login, capsys)
    assert code == 1, text
    assert words in text and "choose another profile name" in text
    assert "sk-ant-ort01-y" not in text
    after = [path.read_bytes() for path in (config_path, credentials_path) if path.exists()]
    assert after == before
    assert oauth_env.token_posts == 0


def test_a_profile_name_that_is_not_a_file_name_is_a_usage_error(
    login: Path, oauth_env: FakeAnthropic, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = keep_fresh_to("team/shared", login, capsys)
    assert code == 2, text
    assert "must not contain path separators" in text
    assert oauth_env.token_posts == 0
