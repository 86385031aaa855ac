"""The installed `claude-oauth-auth` script: token, refresh, save, logout, every exit code.

Every command and every exit code is checked by running the console script as a subprocess
in the temporary HOME; terminal behaviour is checked with a pseudo-terminal. A few scenarios
whose only subprocess cost is importing the SDK (no credentials, an API-key fallback) call
``cli.main`` in this process instead, to keep the suite fast.
"""

from __future__ import annotations

import json
import logging
import os
import pty
import select
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fakeapi import FakeAnthropic
from helpers import (
    auth_file_path,
    claude_code_path,
    read_json,
    write_auth_file,
    write_claude_code_file,
    write_json,
)

from claude_oauth_auth import cli
from claude_oauth_auth.stores._files import file_lock

SCRIPT = Path(sys.executable).with_name("claude-oauth-auth")
KEY = "sk-ant-api03-" + "k" * 40 + "KEY9"
ACCESS = "sk-ant-oat01-" + "a" * 40 + "ACC9"
REFRESH = "sk-ant-ort01-" + "r" * 40 + "REF9"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    terminal: str = ""  # what the pseudo-terminal showed


def run(*arguments: str, stdin: str | None = None, timeout: float = 60) -> Result:
    """Run the installed script with pipes (no terminal anywhere)."""
    done = subprocess.run(
        [str(SCRIPT), *arguments],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=timeout,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def run_on_terminal(
    *arguments: str,
    stdout: bool = False,
    stderr: bool = False,
    stdin: bool = False,
    typed: str = "",
    type_after: str = "",
    timeout: float = 60,
) -> Result:
    """Run the script with the chosen streams on a pseudo-terminal; the others are pipes."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [str(SCRIPT), *arguments],
        stdin=slave if stdin else subprocess.DEVNULL,
        stdout=slave if stdout else subprocess.PIPE,
        stderr=slave if stderr else subprocess.PIPE,
        env=dict(os.environ),
    )
    os.close(slave)
    shown = bytearray()
    prompted = threading.Event()

    def drain() -> None:
        while True:
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                if process.poll() is not None:
                    return
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every copy of the terminal is closed
                return
            if not chunk:
                return
            shown.extend(chunk)
            if type_after.encode() in shown:
                prompted.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    if typed:
        if type_after:  # wait for the prompt, as a person would
            assert prompted.wait(timeout), bytes(shown)
        os.write(master, typed.encode())
    out, err = process.communicate(timeout=timeout)
    reader.join(timeout=5)
    os.close(master)
    return Result(
        process.returncode,
        (out or b"").decode(),
        (err or b"").decode(),
        shown.decode(errors="replace").replace("\r\n", "\n"),
    )


def assert_no_secret(text: str, secrets: Iterable[str]) -> None:
    """No 8-character piece of any secret (the last 4 characters are allowed)."""
    for secret in secrets:
        for start in range(0, len(secret) - 8):
            assert secret[start : start + 8] not in text, "a piece of a secret leaked"


def assert_explained(result: Result, code: int, *words: str) -> None:
    """Exit code, one error sentence plus its fix on stderr, no traceback."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.terminal
    text = result.stderr + result.terminal
    assert "claude-oauth-auth: error:" in text and "To fix:" in text
    for word in words:
        assert word in text, (word, text)


@pytest.fixture
def in_process(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[..., Result]]:
    """``cli.main`` in this process, checking it leaves the logging configuration as it was."""
    loggers = [logging.getLogger(), logging.getLogger("claude_oauth_auth")]
    before = [(list(logger.handlers), logger.level, logger.propagate) for logger in loggers]

    def invoke(*arguments: str) -> Result:
        code = cli.main(list(arguments))
        out, err = capsys.readouterr()
        after = [(list(logger.handlers), logger.level, logger.propagate) for logger in loggers]
        assert after == before, "cli.main changed the logging configuration"
        return Result(code, out, err)

    yield invoke


@pytest.fixture
def auth_path(home: Path) -> Path:
    return auth_file_path(home)


@pytest.fixture
def tokens(oauth_env: FakeAnthropic, auth_path: Path) -> tuple[str, str]:
    """A valid token pair from the loopback endpoint, saved in our default token file."""
    access, refresh = oauth_env.issue_tokens()
    write_auth_file(auth_path, access, refresh)
    return access, refresh


# ----- every command: help, usage errors ----------------------------------------------------


@pytest.mark.parametrize("command", ["status", "token", "refresh", "save", "logout"])
def test_every_command_has_help_with_examples_and_exit_codes(command: str) -> None:
    result = run(command, "--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout and "Exits 0" in result.stdout


def test_usage_errors_exit_2() -> None:
    commands: tuple[list[str], ...] = (
        ["token", "--bogus"],
        ["refresh", "-x"],
        ["logout", "x"],
        ["save", "--yes"],
        [],
    )
    for arguments in commands:
        result = run(*arguments)
        assert result.returncode == 2, arguments
        assert "Traceback" not in result.stderr


# ----- token --------------------------------------------------------------------------------


def test_token_prints_only_the_token_when_piped(
    oauth_env: FakeAnthropic, tokens: tuple[str, str]
) -> None:
    result = run("token")
    assert result.returncode == 0, result.stderr
    assert result.stdout == tokens[0] + "\n"
    assert result.stderr == ""
    assert oauth_env.token_posts == 0


def test_token_json_adds_expiry_and_source(tokens: tuple[str, str]) -> None:
    result = run("token", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["token"] == tokens[0]
    assert document["auth_method"] == "oauth" and document["kind"] == "oauth"
    assert document["source"] == "auth_file"
    assert 3500 < document["expires_in"] <= 3600
    assert abs(document["expires_at"] - (time.time() + 3600)) < 60


def test_token_refreshes_first_and_says_so_on_a_terminal(
    oauth_env: FakeAnthropic, auth_path: Path
) -> None:
    access, refresh = oauth_env.issue_tokens(expires_in=-10)
    write_auth_file(auth_path, access, refresh, expires_in=-10)
    oauth_env.refresh_latency = 0.5
    result = run_on_terminal("token", stderr=True)
    assert result.returncode == 0, result.terminal
    saved = read_json(auth_path)
    assert result.stdout == saved["access_token"] + "\n" and saved["access_token"] != access
    assert oauth_env.token_posts == 1
    assert "Refreshing" in result.terminal
    assert_no_secret(result.terminal, [access, refresh, saved["refresh_token"]])


def test_token_refuses_a_terminal_unless_show(tokens: tuple[str, str]) -> None:
    refused = run_on_terminal("token", stdout=True)
    assert_explained(refused, 2, "--show")
    assert_no_secret(refused.terminal + refused.stderr, tokens)
    for arguments in (["token", "--show"], ["token", "--show", "--json"]):
        shown = run_on_terminal(*arguments, stdout=True)
        assert shown.returncode == 0 and tokens[0] in shown.terminal


def test_token_prints_the_api_key_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    assert run("token").stdout == KEY + "\n"
    document = json.loads(run("token", "--json").stdout)
    assert document["kind"] == "api_key" and document["source"] == "api_key_env"
    assert document["expires_at"] is None


def test_without_credentials_token_and_refresh_exit_1(
    in_process: Callable[..., Result],
) -> None:
    for command in ("token", "refresh"):
        result = in_process(command)
        assert_explained(result, 1, "no usable Claude credentials", "claude-oauth-auth status")
        assert result.stdout == ""


def test_token_falls_back_to_the_api_key_and_refresh_says_it_failed(
    oauth_env: FakeAnthropic,
    auth_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    in_process: Callable[..., Result],
    caplog: pytest.LogCaptureFixture,
) -> None:
    access, refresh = oauth_env.issue_tokens(expires_in=-10)
    oauth_env.revoke_refresh_token(refresh)
    write_auth_file(auth_path, access, refresh, expires_in=-10)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    result = in_process("token", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["source"] == "api_key_env"
    assert "Traceback" not in result.stderr
    # Logging is configured here (by pytest), so the warning goes there rather than stderr.
    assert "falling back to the API key" in caplog.text
    assert_no_secret(result.stderr + caplog.text, [access, refresh, KEY])
    # `refresh` is about OAuth: a fallback to the key is a failure to refresh.
    refreshed = in_process("refresh")
    assert_explained(refreshed, 1, "could not be refreshed", "refused", "log in again")
    assert_no_secret(refreshed.stdout + refreshed.stderr, [access, refresh, KEY])


def test_configuration_error_exits_1_and_debug_shows_the_traceback(
    tokens: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDE_OAUTH_TOKEN_URL", "http://example.com/token")
    assert_explained(run("token"), 1, "https://")
    debug = run("--debug", "token")
    assert debug.returncode == 1 and "Traceback" in debug.stderr


# ----- refresh ------------------------------------------------------------------------------


def test_refresh_forces_one_post_and_prints_the_expiry_not_the_token(
    oauth_env: FakeAnthropic, tokens: tuple[str, str], auth_path: Path
) -> None:
    result = run("refresh")
    assert result.returncode == 0, result.stderr
    saved = read_json(auth_path)
    assert oauth_env.token_posts == 1
    assert saved["access_token"] != tokens[0] and saved["refresh_token"] != tokens[1]
    assert "Refreshed" in result.stdout and "auth_file" in result.stdout
    assert "(in 60 min)" in result.stdout
    assert_no_secret(result.stdout + result.stderr, [*tokens, saved["access_token"]])
    assert stat.S_IMODE(os.stat(auth_path).st_mode) == 0o600


def test_refresh_json_on_a_terminal_says_refreshing(
    oauth_env: FakeAnthropic, tokens: tuple[str, str], auth_path: Path
) -> None:
    result = run_on_terminal("refresh", "--json", stderr=True)
    assert result.returncode == 0, result.terminal
    document = json.loads(result.stdout)
    assert document["refreshed"] and document["source"] == "auth_file"
    assert document["token_file"] == str(auth_path)
    assert 3500 < document["expires_in"] <= 3600
    assert "Refreshing" in result.terminal
    assert_no_secret(result.stdout, [*tokens, read_json(auth_path)["access_token"]])


def test_refresh_of_an_expired_token_posts_once(
    oauth_env: FakeAnthropic, auth_path: Path, in_process: Callable[..., Result]
) -> None:
    access, refresh = oauth_env.issue_tokens(expires_in=-10)
    write_auth_file(auth_path, access, refresh, expires_in=-10)
    result = in_process("refresh")
    assert result.returncode == 0, result.stderr
    assert oauth_env.token_posts == 1 and oauth_env.invalid_grants == 0
    assert read_json(auth_path)["access_token"] != access


def test_refresh_refused_by_the_endpoint_exits_1(
    oauth_env: FakeAnthropic, tokens: tuple[str, str], auth_path: Path
) -> None:
    oauth_env.revoke_refresh_token(tokens[1])
    before = auth_path.read_bytes()
    result = run("refresh")
    assert_explained(result, 1, "refused", "log in again")
    assert auth_path.read_bytes() == before
    assert_no_secret(result.stdout + result.stderr, tokens)


def test_refresh_without_a_refreshable_source_exits_1(
    auth_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    assert_explained(run("refresh"), 1, "no refreshable OAuth credential", "API key")
    write_auth_file(auth_path, ACCESS, None)
    assert_explained(run("refresh"), 1, "no refresh token")
    monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", ACCESS)
    auth_path.unlink()
    assert_explained(run("refresh"), 1, "without a refresh token", "claude_code_env")


# ----- save ---------------------------------------------------------------------------------


def test_save_writes_0600_in_a_new_0700_folder(auth_path: Path) -> None:
    answer = {
        "access_token": ACCESS,
        "refresh_token": REFRESH,
        "expires_in": 28800,
        "token_type": "Bearer",
        "scope": "user:inference user:profile",
    }
    result = run("save", stdin=json.dumps(answer))
    assert result.returncode == 0, result.stderr
    saved = read_json(auth_path)
    assert saved["access_token"] == ACCESS and saved["refresh_token"] == REFRESH
    assert abs(saved["token_expiry"] - (time.time() + 28800)) < 60
    assert saved["scopes"] == ["user:inference", "user:profile"]
    assert "token_type" not in saved
    assert stat.S_IMODE(os.stat(auth_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(auth_path.parent).st_mode) == 0o700
    assert str(auth_path) in result.stdout and "ACC9" in result.stdout
    assert_no_secret(result.stdout + result.stderr, [ACCESS, REFRESH])
    # The library reads what was saved.
    token = run("token")
    assert token.stdout == ACCESS + "\n"


def test_save_honours_claude_auth_file_and_replaces_the_old_pair(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = home / "elsewhere" / "tokens.json"
    monkeypatch.setenv("CLAUDE_AUTH_FILE", str(target))
    write_auth_file(target, "old-access-token-000", "old-refresh-token-000", client_id="mine")
    expiry = int(time.time()) + 3600
    result = run("save", stdin=json.dumps({"access_token": ACCESS, "token_expiry": expiry}))
    assert result.returncode == 0, result.stderr
    saved = read_json(target)
    assert saved == {"access_token": ACCESS, "token_expiry": expiry, "client_id": "mine"}
    assert "cannot be renewed" in result.stdout
    assert not auth_file_path(home).exists()


INVALID_INPUTS = {
    "empty": "",
    "not json": '{"access_token": "' + ACCESS + '"',
    "a list": json.dumps([ACCESS]),
    "no access token": json.dumps({"refresh_token": REFRESH, "expires_in": 60}),
    "number token": json.dumps({"access_token": 12345, "expires_in": 60}),
    "spaces in token": json.dumps({"access_token": "two words", "expires_in": 60}),
    "both expiries": json.dumps({"access_token": ACCESS, "expires_in": 60, "token_expiry": 9}),
    "no expiry": json.dumps({"access_token": ACCESS, "refresh_token": REFRESH}),
    "milliseconds": json.dumps({"access_token": ACCESS, "token_expiry": time.time() * 1000}),
    "string expiry": json.dumps({"access_token": ACCESS, "expires_in": "soon"}),
    "expired, no refresh": json.dumps({"access_token": ACCESS, "token_expiry": 1000}),
    "claude code shape": json.dumps({"claudeAiOauth": {"accessToken": ACCESS}}),
    "http token url": json.dumps(
        {"access_token": ACCESS, "expires_in": 60, "token_url": "http://example.com/t"}
    ),
    "bad scopes": json.dumps({"access_token": ACCESS, "expires_in": 60, "scopes": [1]}),
}


@pytest.mark.parametrize("name", list(INVALID_INPUTS))
def test_save_rejects_invalid_input_and_leaves_the_file_alone(name: str, auth_path: Path) -> None:
    write_auth_file(auth_path, "existing-access-0000", "existing-refresh-000")
    before, mtime = auth_path.read_bytes(), auth_path.stat().st_mtime_ns
    result = run("save", stdin=INVALID_INPUTS[name])
    assert_explained(result, 1, "nothing was saved")
    assert len(result.stderr.strip().splitlines()) == 2  # one sentence, then the fix
    assert auth_path.read_bytes() == before and auth_path.stat().st_mtime_ns == mtime
    assert_no_secret(result.stdout + result.stderr, [ACCESS, REFRESH])


def test_save_from_a_terminal_does_not_echo_the_tokens(auth_path: Path) -> None:
    document = json.dumps({"access_token": ACCESS, "refresh_token": REFRESH, "expires_in": 60})
    result = run_on_terminal(
        "save", stdin=True, stderr=True, typed=document + "\n\x04", type_after="Ctrl-D"
    )
    assert result.returncode == 0, result.terminal
    assert read_json(auth_path)["refresh_token"] == REFRESH
    assert "Paste the token JSON" in result.terminal
    assert_no_secret(result.terminal + result.stdout, [ACCESS, REFRESH])


def test_save_waits_for_the_refresh_lock(auth_path: Path) -> None:
    document = json.dumps({"access_token": ACCESS, "refresh_token": REFRESH, "expires_in": 60})
    with file_lock(auth_path):
        process = subprocess.Popen(
            [str(SCRIPT), "save"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ),
        )
        assert process.stdin is not None
        process.stdin.write(document.encode())
        process.stdin.close()
        time.sleep(1.0)
        assert process.poll() is None and not auth_path.exists()
    assert process.wait(timeout=30) == 0
    assert read_json(auth_path)["access_token"] == ACCESS


def test_save_and_logout_refuse_claude_codes_store(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    theirs = write_claude_code_file(claude_code_path(home), ACCESS, REFRESH)
    before = theirs.read_bytes()
    monkeypatch.setenv("CLAUDE_AUTH_FILE", str(theirs))
    stdin = json.dumps({"access_token": "new-access-token-0000", "expires_in": 60})
    assert_explained(run("save", stdin=stdin), 1, "Claude Code's credentials")
    assert_explained(run("logout", "--yes"), 1, "Claude Code's credentials")
    # A file in Claude Code's shape elsewhere is refused too.
    copy = write_json(home / "copy.json", json.loads(before))
    monkeypatch.setenv("CLAUDE_AUTH_FILE", str(copy))
    assert_explained(run("logout", "--yes"), 1, "Claude Code's credentials")
    assert theirs.read_bytes() == before and copy.exists()


# ----- logout -------------------------------------------------------------------------------


def test_logout_yes_deletes_only_our_file(home: Path, auth_path: Path) -> None:
    write_auth_file(auth_path, ACCESS, REFRESH)
    theirs = write_claude_code_file(claude_code_path(home), ACCESS, REFRESH)
    before = theirs.read_bytes()
    result = run("logout", "--yes")
    assert result.returncode == 0, result.stderr
    assert not auth_path.exists() and theirs.read_bytes() == before
    assert "Deleted" in result.stdout and "not touched" in result.stdout
    again = run("logout", "--yes")
    assert again.returncode == 0 and "nothing to delete" in again.stdout
    assert theirs.read_bytes() == before


def test_logout_without_a_terminal_or_yes_exits_2(auth_path: Path) -> None:
    write_auth_file(auth_path, ACCESS, REFRESH)
    assert_explained(run("logout"), 2, "--yes")
    assert auth_path.exists()


@pytest.mark.parametrize(("answer", "code"), [("y\n", 0), ("n\n", 1)])
def test_logout_asks_on_a_terminal(answer: str, code: int, auth_path: Path) -> None:
    write_auth_file(auth_path, ACCESS, REFRESH)
    result = run_on_terminal("logout", stdin=True, typed=answer)
    assert result.returncode == code, result.stderr
    assert "Delete " in result.stderr and "[y/N]" in result.stderr
    assert auth_path.exists() is (code != 0)


def test_python_dash_m_runs_the_same_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    result = subprocess.run(
        [sys.executable, "-m", "claude_oauth_auth", "token"], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout == KEY + "\n"


# ----- token --header: the exact header lines, for curl ------------------------------------


def sdk_headers(**credential: str) -> dict[str, str]:
    import anthropic

    return dict(anthropic.Anthropic(**credential, base_url="http://127.0.0.1").auth_headers)


def test_token_header_for_oauth_is_bearer_plus_the_oauth_beta(tokens: tuple[str, str]) -> None:
    result = run("token", "--header")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"Authorization: Bearer {tokens[0]}",
        "anthropic-beta: oauth-2025-04-20",
    ]


@pytest.mark.parametrize("variable", ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"])
def test_token_header_for_a_key_or_bearer_is_what_the_sdk_sends(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, KEY)
    result = run("token", "--header")
    assert result.returncode == 0, result.stderr
    option = "api_key" if variable == "ANTHROPIC_API_KEY" else "auth_token"
    expected = [f"{name}: {value}" for name, value in sdk_headers(**{option: KEY}).items()]
    assert result.stdout.splitlines() == expected
    assert run("token", "--header", "--json").returncode == 2


CURL = shutil.which("curl")


@pytest.mark.skipif(CURL is None, reason="needs curl")
@pytest.mark.parametrize("kind", ["oauth", "api_key"])
def test_curl_with_token_header_works_for_every_kind(
    kind: str, oauth_env: FakeAnthropic, auth_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if kind == "oauth":
        write_auth_file(auth_path, *oauth_env.issue_tokens())
    else:
        monkeypatch.setenv("ANTHROPIC_API_KEY", oauth_env.add_api_key())
    url = f"{oauth_env.base_url}/v1/models"
    for recipe in (
        f'curl -sf -H "$("{SCRIPT}" token --header)" -H "anthropic-version: 2023-06-01" {url}',
        f'"{SCRIPT}" token --header | curl -sf -H @- -H "anthropic-version: 2023-06-01" {url}',
    ):
        done = subprocess.run(["bash", "-c", recipe], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (recipe, done.stderr)
        assert json.loads(done.stdout)["data"], done.stdout
    assert {request.auth_kind for request in oauth_env.api_requests} == {kind}


# ----- one way to say a duration; one message for one failure --------------------------------


def test_save_and_status_print_durations_the_same_way(auth_path: Path) -> None:
    saved = run("save", stdin=json.dumps({"access_token": ACCESS, "expires_in": 86400}))
    assert saved.returncode == 0, saved.stderr
    assert "(in 24 h)" in saved.stdout and "1440 min" not in saved.stdout
    shown = run("status")
    assert "expires in 24 h" in shown.stdout and "(in 24 h)" in shown.stdout
    assert "24.0 h" not in shown.stdout


def test_a_transient_refresh_failure_prints_one_message(
    auth_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_auth_file(auth_path, ACCESS, REFRESH, expires_in=-60)
    monkeypatch.setenv("CLAUDE_OAUTH_TOKEN_URL", "http://127.0.0.1:9/v1/oauth/token")
    result = run("token")
    assert_explained(result, 1, "could not reach the token endpoint")
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("  To fix:"), result.stderr
