"""Never lose a login: shared backoff, other writers, killed writers, forks, leaky tracebacks.

Each test drives the real manager through real files, real processes and the loopback token
endpoint, and checks what a user would see: the login works afterwards, the file's contents,
the number of token POSTs, and no secret in any output.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic
import pytest
from conftest import Clock
from fakeapi import FakeAnthropic, Fault
from helpers import read_json, write_auth_file, write_claude_code_file, write_json

from claude_oauth_auth import (
    AsyncClaudeClient,
    ClaudeClient,
    OAuthTokenManager,
    TokenFileError,
    TokenRefreshError,
)
from claude_oauth_auth.lifecycle import _grant as grant_module


@pytest.fixture
def token_path(home: Path) -> Path:
    return home / ".config" / "claude" / "auth.json"


def expired_login(server: FakeAnthropic, path: Path) -> tuple[str, str]:
    access, refresh = server.issue_tokens(expires_in=-5)
    write_auth_file(path, access, refresh, expires_in=-5)
    return access, refresh


def login_alive(server: FakeAnthropic, path: Path) -> bool:
    """The refresh token on disk is accepted (spending it; the new pair is saved)."""
    before = server.invalid_grants
    OAuthTokenManager(token_file=path, token_url=server.token_url).refresh()
    return server.invalid_grants == before


# ----- 3. one attempt, shared by every waiter --------------------------------------------------


def test_50_waiters_share_one_hanging_attempt_and_its_timeout(
    server: FakeAnthropic, token_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(grant_module, "REFRESH_TIMEOUT_SECONDS", 0.5)
    expired_login(server, token_path)
    server.token_faults.append(Fault(200, {}, delay=3.0))  # hangs past the timeout
    manager = OAuthTokenManager(token_file=token_path, token_url=server.token_url)
    barrier = threading.Barrier(50)

    def one(_: int) -> float:
        barrier.wait()
        started = time.monotonic()
        with pytest.raises(TokenRefreshError):
            manager.get_valid_token()
        return time.monotonic() - started

    with ThreadPoolExecutor(max_workers=50) as pool:
        waits = list(pool.map(one, range(50)))
    longest = max(waits)
    print(f"\n50 waiters, hanging endpoint: {server.token_posts} POST, longest {longest:.2f} s")
    assert server.token_posts == 1
    assert max(waits) < 2.5  # one 0.5 s timeout for all, not 50 of them (25 s)


def test_200_coroutines_in_an_outage_make_one_post(server: FakeAnthropic, token_path: Path) -> None:
    expired_login(server, token_path)
    server.token_faults.extend([Fault(500, {"error": "server_error"})] * 5)
    manager = OAuthTokenManager(token_file=token_path, token_url=server.token_url)

    async def main() -> list[BaseException | str]:
        calls = (manager.async_get_valid_token() for _ in range(200))
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert all(isinstance(outcome, TokenRefreshError) for outcome in outcomes)
    assert server.token_posts == 1


def test_a_still_valid_token_is_served_during_the_backoff(
    server: FakeAnthropic, token_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    access, refresh = server.issue_tokens(expires_in=100)
    write_auth_file(token_path, access, refresh, expires_in=100)
    server.token_faults.extend([Fault(500, {"error": "server_error"})] * 5)
    manager = OAuthTokenManager(token_file=token_path, token_url=server.token_url, clock=clock)
    with caplog.at_level(logging.WARNING, logger="claude_oauth_auth"):
        assert {manager.get_valid_token() for _ in range(20)} == {access}
        assert server.token_posts == 1
        clock.advance(manager.retry_in + 0.01)
        assert manager.get_valid_token() == access
        assert server.token_posts == 2  # the next step: one more attempt, then waiting again
        assert 1.0 <= manager.retry_in <= 2.0  # exponential: the second wait is longer
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


# ----- 5. a threshold at or above the lifetime -------------------------------------------------


def test_a_threshold_above_the_lifetime_refreshes_once_per_half_lifetime(
    server: FakeAnthropic, token_path: Path, clock: Clock
) -> None:
    server.access_token_lifetime = 600
    expired_login(server, token_path)
    manager = OAuthTokenManager(
        token_file=token_path, token_url=server.token_url, refresh_threshold=3600, clock=clock
    )
    first = {manager.get_valid_token() for _ in range(100)}
    assert len(first) == 1 and server.token_posts == 1
    clock.advance(290)
    assert {manager.get_valid_token() for _ in range(100)} == first
    assert server.token_posts == 1
    clock.advance(20)  # past half the 600 s lifetime
    assert manager.get_valid_token() not in first
    assert server.token_posts == 2 and server.invalid_grants == 0


def test_a_threshold_below_the_lifetime_is_used_as_given(
    server: FakeAnthropic, token_path: Path, clock: Clock
) -> None:
    server.access_token_lifetime = 600
    expired_login(server, token_path)
    manager = OAuthTokenManager(
        token_file=token_path, token_url=server.token_url, refresh_threshold=500, clock=clock
    )
    first = manager.get_valid_token()
    clock.advance(90)  # 510 s left: more than the threshold, though past no half-lifetime cap
    assert manager.get_valid_token() == first and server.token_posts == 1
    clock.advance(20)  # 490 s left: inside the 500 s threshold the caller asked for
    assert manager.get_valid_token() != first
    assert server.token_posts == 2 and server.invalid_grants == 0


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_threshold_equal_to_the_lifetime_refreshes_once_for_a_burst_of_requests(
    mode: str, oauth_env: FakeAnthropic, token_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``CLAUDE_TOKEN_REFRESH_THRESHOLD=3600`` with tokens that live 3600 s, as observed:
    10 requests in a second make one token POST, not one each."""
    monkeypatch.setenv("CLAUDE_TOKEN_REFRESH_THRESHOLD", "3600")
    oauth_env.access_token_lifetime = 3600
    access, refresh = oauth_env.issue_tokens(expires_in=3600)
    write_auth_file(token_path, access, refresh, expires_in=3600)
    message: dict[str, Any] = {
        "model": "claude-test-1",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}],
    }
    if mode == "sync":
        client = ClaudeClient()
        for _ in range(10):
            client.messages.create(**message)
    else:

        async def burst() -> None:
            client = AsyncClaudeClient()
            for _ in range(10):
                await client.messages.create(**message)

        asyncio.run(burst())
    assert len(oauth_env.api_requests) == 10
    assert oauth_env.token_posts == 1 and oauth_env.invalid_grants == 0


# ----- 9. merge, don't overwrite; a stale write-back is not adopted ----------------------------


def test_keys_another_program_adds_during_a_refresh_survive(
    server: FakeAnthropic, token_path: Path
) -> None:
    expired_login(server, token_path)
    server.refresh_latency = 0.5
    manager = OAuthTokenManager(token_file=token_path, token_url=server.token_url)
    worker = threading.Thread(target=manager.get_valid_token)
    worker.start()
    while server.token_posts == 0:
        time.sleep(0.005)
    document = read_json(token_path)
    document["added_meanwhile"] = {"by": "another program"}
    write_json(token_path, document)  # without our lock, while the POST is in flight
    worker.join()
    saved = read_json(token_path)
    assert saved["added_meanwhile"] == {"by": "another program"}
    assert saved["refresh_token"] == manager.refresh_token and saved["access_token"]
    assert login_alive(server, token_path)


def test_a_stale_write_back_is_not_adopted_and_our_tokens_are_written_back(
    server: FakeAnthropic, token_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    expired_login(server, token_path)
    stale = token_path.read_bytes()
    manager = OAuthTokenManager(token_file=token_path, token_url=server.token_url, clock=clock)
    ours = manager.get_valid_token()
    token_path.write_bytes(stale)  # another program writes back the tokens it read earlier
    clock.advance(1.1)
    with caplog.at_level(logging.WARNING, logger="claude_oauth_auth"):
        assert manager.get_valid_token() == ours
    assert read_json(token_path)["refresh_token"] == manager.refresh_token
    assert any("stale write-back" in r.getMessage() for r in caplog.records)
    assert server.token_posts == 1 and login_alive(server, token_path)


STALE_WRITE_BACK_CHILD = textwrap.dedent(
    """
    import sys
    from claude_oauth_auth import ClaudeClient
    message = dict(
        model="claude-test-1", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    )
    client = ClaudeClient()
    client.messages.create(**message)  # refreshes the expired login
    print("refreshed", flush=True)
    sys.stdin.readline()  # meanwhile another program writes the old tokens back
    for _ in range(3):
        client.messages.create(**message)
    print("done", flush=True)
    """
)


def test_a_stale_write_back_just_before_exit_does_not_lose_the_login(
    oauth_env: FakeAnthropic, token_path: Path
) -> None:
    """As observed: our requests keep working after the stale write-back, then the process
    exits; the file must hold our newer login, not the spent refresh token."""
    expired_login(oauth_env, token_path)
    stale = token_path.read_bytes()
    child = subprocess.Popen(
        [sys.executable, "-c", STALE_WRITE_BACK_CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    assert child.stdout.readline().strip() == "refreshed"
    token_path.write_bytes(stale)  # without our lock, as another program would
    child.stdin.write("go\n")
    child.stdin.flush()
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0 and out.strip() == "done", err
    assert oauth_env.token_posts == 1
    assert read_json(token_path)["refresh_token"] != json.loads(stale)["refresh_token"]
    assert login_alive(oauth_env, token_path)


def test_a_stale_write_back_of_a_token_another_process_spent_is_not_adopted(
    server: FakeAnthropic, token_path: Path, clock: Clock
) -> None:
    access, refresh = server.issue_tokens()
    write_auth_file(token_path, access, refresh)
    stale = token_path.read_bytes()
    manager = OAuthTokenManager(token_file=token_path, token_url=server.token_url, clock=clock)
    refresh_elsewhere = (
        "from claude_oauth_auth import OAuthTokenManager; import sys; "
        "OAuthTokenManager(token_file=sys.argv[1], token_url=sys.argv[2]).refresh()"
    )
    subprocess.run(
        [sys.executable, "-c", refresh_elsewhere, str(token_path), server.token_url], check=True
    )
    clock.advance(1.1)
    rotated = manager.get_valid_token()  # adopted from the other process, no POST
    assert rotated != access and server.token_posts == 1
    token_path.write_bytes(stale)
    clock.advance(1.1)
    assert manager.get_valid_token() == rotated
    assert read_json(token_path)["access_token"] == rotated
    assert login_alive(server, token_path)


# ----- 10. give a concurrent writer a moment ---------------------------------------------------

ROTATOR = textwrap.dedent(
    """
    import json, os, sys, time, urllib.request
    path, url = sys.argv[1:3]
    refresh = sys.stdin.readline().strip()
    body = {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": "other"}
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    answer = json.load(urllib.request.urlopen(request))
    time.sleep(0.3)  # rotated, not written yet: it does not take our lock
    with open(path) as handle:
        document = json.load(handle)
    document.update(
        access_token=answer["access_token"],
        refresh_token=answer["refresh_token"],
        token_expiry=time.time() + answer["expires_in"],
    )
    with open(path + ".other", "w") as handle:
        json.dump(document, handle)
    os.chmod(path + ".other", 0o600)
    os.replace(path + ".other", path)
    print(answer["access_token"], flush=True)
    """
)


def test_invalid_grant_waits_for_a_program_that_rotated_without_our_lock(
    server: FakeAnthropic, token_path: Path
) -> None:
    _, refresh = expired_login(server, token_path)
    manager = OAuthTokenManager(token_file=token_path, token_url=server.token_url)
    other = subprocess.Popen(
        [sys.executable, "-c", ROTATOR, str(token_path), server.token_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert other.stdin is not None and other.stdout is not None
    other.stdin.write(refresh + "\n")
    other.stdin.close()
    deadline = time.monotonic() + 10
    while server.token_posts == 0 and time.monotonic() < deadline:
        time.sleep(0.002)
    token = manager.get_valid_token()  # spends the same refresh token: invalid_grant
    theirs = other.stdout.readline().strip()
    other.wait(timeout=10)
    assert token == theirs
    assert server.invalid_grants == 1 and manager.permanent_failure is None
    assert login_alive(server, token_path)


# ----- 11. recover from a killed writer --------------------------------------------------------


def interrupted_save(server: FakeAnthropic, path: Path, spent: str, name: str) -> tuple[str, str]:
    """What a save killed between writing its temp file and renaming it leaves behind."""
    access, refresh = server.issue_tokens()
    server.revoke_refresh_token(spent)
    document = read_json(path)
    document.update(access_token=access, refresh_token=refresh, token_expiry=time.time() + 3600)
    write_json(path.parent / name, document)
    return access, refresh


@pytest.mark.parametrize("shape", ["ours", "claude_code"])
def test_a_temp_file_left_by_a_killed_save_is_adopted(
    shape: str, server: FakeAnthropic, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old_access, spent = server.issue_tokens(expires_in=-5)
    if shape == "ours":
        path = home / ".config" / "claude" / "auth.json"
        write_auth_file(path, old_access, spent, expires_in=-5)
        access, refresh = interrupted_save(server, path, spent, ".auth.json.k1ll3d.tmp")
    else:
        path = home / ".claude" / ".credentials.json"
        write_claude_code_file(path, old_access, spent, expires_in=-5)
        access, refresh = server.issue_tokens()
        server.revoke_refresh_token(spent)
        document = read_json(path)
        document["claudeAiOauth"].update(
            accessToken=access, refreshToken=refresh, expiresAt=int((time.time() + 3600) * 1000)
        )
        write_json(path.parent / f".{path.name}.k1ll3d.tmp", document)
    half = path.parent / f".{path.name}.h4lf.tmp"
    half.write_text('{"access_token": "sk-ant-oat01-trunc')
    half.chmod(0o600)
    manager = OAuthTokenManager(token_file=path, token_url=server.token_url)
    with caplog.at_level(logging.WARNING, logger="claude_oauth_auth"):
        assert manager.get_valid_token() == access  # adopted: no POST of a spent token
    assert server.token_posts == 0 and server.invalid_grants == 0
    assert any("interrupted" in r.getMessage() for r in caplog.records)
    assert half.exists() and not (path.parent / f".{path.name}.k1ll3d.tmp").exists()
    assert refresh in path.read_text()
    if shape == "claude_code":
        assert read_json(path)["mcpOAuth"] == {"server": {"token": "keep-me"}}
    assert login_alive(server, path)


@pytest.mark.parametrize("flaw", ["older", "not_private", "other_owner", "other_shape"])
def test_a_temp_file_that_is_not_a_newer_save_of_ours_is_left_alone(
    flaw: str, server: FakeAnthropic, token_path: Path
) -> None:
    if flaw == "other_owner" and os.geteuid() != 0:
        pytest.skip("needs root to chown")
    access, refresh = expired_login(server, token_path)
    other_access, other_refresh = server.issue_tokens()
    if flaw == "other_shape":
        document: dict[str, Any] = {
            "claudeAiOauth": {"accessToken": other_access, "refreshToken": other_refresh}
        }
    else:
        expiry = time.time() - 60 if flaw == "older" else time.time() + 3600
        document = {
            "access_token": other_access,
            "refresh_token": other_refresh,
            "token_expiry": expiry,
        }
    temp = write_json(token_path.parent / ".auth.json.0ther.tmp", document)
    if flaw == "not_private":
        temp.chmod(0o644)
    if flaw == "other_owner":
        os.chown(temp, 4321, 4321)
    manager = OAuthTokenManager(token_file=token_path, token_url=server.token_url)
    assert manager.get_valid_token() not in (access, other_access)  # a normal refresh
    assert server.token_posts == 1 and server.token_requests[0]["refresh_token"] == refresh
    assert temp.exists()


# ----- 13. fork safety -------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_forked_during_a_refresh_does_not_inherit_the_held_lock(
    server: FakeAnthropic, token_path: Path
) -> None:
    old_access, _ = expired_login(server, token_path)
    server.refresh_latency = 1.0
    manager = OAuthTokenManager(token_file=token_path, token_url=server.token_url)
    worker = threading.Thread(target=manager.get_valid_token)
    worker.start()
    while server.token_posts == 0:
        time.sleep(0.005)  # the worker holds the manager's lock, its POST in flight
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if manager.get_valid_token() != old_access else 2
        finally:
            os._exit(code)
    worker.join()
    deadline = time.monotonic() + 15
    status = None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.02)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung on a lock held by its parent's thread")
    assert status is not None and os.waitstatus_to_exitcode(status) == 0
    assert server.token_posts == 1  # the child adopted the parent's rotation
    assert login_alive(server, token_path)


# ----- 14. no secret in tracebacks that record locals ------------------------------------------


def with_locals(error: BaseException) -> str:
    """What an error tracker sends: every frame of the chain below the test, with the repr of
    its locals, and every message."""
    parts: list[str] = []
    pending = [traceback.TracebackException.from_exception(error, capture_locals=True)]
    while pending:
        exception = pending.pop()
        parts += exception.format_exception_only()
        for frame in exception.stack:
            if Path(frame.filename).parent != Path(__file__).parent:
                parts.append(f"{frame.filename}:{frame.name} {frame.locals}")
        pending += [e for e in (exception.__cause__, exception.__context__) if e is not None]
    return "\n".join(parts)


SCENARIOS = ["transient_echoing_the_token", "invalid_grant", "partial_answer", "unreachable"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_tracebacks_with_locals_hold_no_secret(
    scenario: str,
    server: FakeAnthropic,
    token_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clock: Clock,
) -> None:
    access, refresh = expired_login(server, token_path)
    secrets = [access, refresh]
    url = server.token_url
    if scenario == "transient_echoing_the_token":
        server.token_faults.append(Fault(500, {"error": refresh, "error_description": refresh}))
    elif scenario == "invalid_grant":
        server.revoke_refresh_token(refresh)
    elif scenario == "partial_answer":
        new_access, new_refresh = server.issue_tokens()
        secrets += [new_access, new_refresh]
        server.token_faults.append(Fault(200, {"refresh_token": new_refresh}))
    else:
        url = "http://127.0.0.1:9/v1/oauth/token"
    monkeypatch.setenv("CLAUDE_OAUTH_TOKEN_URL", url)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
    # A clock that stands still: the request below comes within the first failure's backoff
    # however slowly the machine runs (past it, a transient failure would have healed).
    manager = OAuthTokenManager(token_file=token_path, clock=clock)
    with pytest.raises(Exception) as direct:
        manager.get_valid_token()
    with pytest.raises(anthropic.APIError) as through_the_sdk:
        client = ClaudeClient(max_retries=0, oauth_manager=manager)
        client.messages.create(
            model="claude-test-1", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    for error in (direct.value, through_the_sdk.value):
        text = with_locals(error)
        assert "claude_oauth_auth" in text  # our frames are in it, with their locals
        for secret in secrets:
            leaked = [piece for piece in slices(secret) if piece in text]
            assert not leaked, f"a piece of a secret in a traceback of {type(error).__name__}"


def slices(secret: str, size: int = 20) -> list[str]:
    """Every ``size``-character piece of ``secret``: a tracker shows what a repr cut short."""
    return [secret[start : start + size] for start in range(len(secret) - size + 1)]


@pytest.mark.parametrize("scenario", ["server_error", "invalid_grant"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_no_slice_of_a_token_in_a_traceback_with_locals_after_a_failed_refresh(
    scenario: str, mode: str, oauth_env: FakeAnthropic, token_path: Path
) -> None:
    """What an error tracker sends after a request whose refresh got a 500 or invalid_grant:
    no 20-character piece of the access or the refresh token, in any frame of the chain."""
    access, refresh = oauth_env.issue_tokens()
    write_auth_file(token_path, access, refresh)
    client: Any = ClaudeClient() if mode == "sync" else AsyncClaudeClient()  # SDK retries on
    oauth_env.revoke_access_token(access)  # the API refuses it: the request refreshes
    if scenario == "server_error":
        oauth_env.token_faults.append(Fault(500, {"error": "server_error"}))
    else:
        oauth_env.revoke_refresh_token(refresh)
    message: dict[str, Any] = {
        "model": "claude-test-1",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with pytest.raises(anthropic.APIError) as caught:
        if mode == "sync":
            client.messages.create(**message)
        else:
            asyncio.run(client.messages.create(**message))
    text = with_locals(caught.value)
    assert "claude_oauth_auth" in text
    for name, secret in (("access", access), ("refresh", refresh)):
        leaked = [piece for piece in slices(secret) if piece in text]
        assert not leaked, f"a piece of the {name} token in a traceback: {leaked[:1]}"


def test_a_broken_token_file_error_has_no_secret_in_its_traceback(token_path: Path) -> None:
    secret = "sk-ant-oat01-" + "S" * 40
    token_path.parent.mkdir(parents=True)
    token_path.write_text('{"access_token": "' + secret + '", "refresh_token": oops}')
    token_path.chmod(0o600)
    with pytest.raises(TokenFileError) as caught:
        OAuthTokenManager(token_file=token_path)
    text = with_locals(caught.value)
    assert not [piece for piece in slices(secret) if piece in text]


# ----- 15. control characters in a stored token ------------------------------------------------


@pytest.mark.parametrize("bad", ["\r\nX-Injected: 1", "\n", "\x00"], ids=["crlf", "lf", "nul"])
@pytest.mark.parametrize("shape", ["ours", "claude_code"])
def test_a_token_with_control_characters_is_refused_with_its_path(
    bad: str, shape: str, server: FakeAnthropic, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    access, refresh = server.issue_tokens()
    poisoned = access[:20] + bad + access[20:]
    if shape == "ours":
        path = write_auth_file(home / ".config" / "claude" / "auth.json", poisoned, refresh)
        field = "access_token"
    else:
        path = write_claude_code_file(home / ".claude" / ".credentials.json", poisoned, refresh)
        field = "accessToken"
    with pytest.raises(TokenFileError) as caught:
        OAuthTokenManager(token_file=path)
    message = str(caught.value)
    assert str(path) in message and f'"{field}" contains control characters' in message
    assert access[:20] not in message and access[20:] not in with_locals(caught.value)
    # In the cascade the source is invalid and skipped: the header never carries it.
    key = server.add_api_key()
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
    client = ClaudeClient(max_retries=0)
    client.messages.create(
        model="claude-test-1", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    )
    assert [r.auth_kind for r in server.api_requests] == ["api_key"]


def test_explicit_tokens_with_control_characters_are_refused() -> None:
    with pytest.raises(ValueError, match="control characters"):
        OAuthTokenManager("sk-ant-oat01-abc\r\nX: 1", "r")


# ----- 16. token URLs with credentials ---------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://alice:hunter2@example.com/v1/oauth/token",
        "https://hunter2@example.com/v1/oauth/token",
        "http://alice:hunter2@127.0.0.1:8/token",
    ],
)
def test_a_token_url_with_credentials_is_refused_without_echoing_them(
    url: str, token_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="user name or password") as caught:
        OAuthTokenManager("a", "b", token_url=url)
    assert "hunter2" not in str(caught.value)
    monkeypatch.setenv("CLAUDE_OAUTH_TOKEN_URL", url)
    with pytest.raises(ValueError) as from_env:
        OAuthTokenManager("a", "b")
    assert "hunter2" not in str(from_env.value)
    monkeypatch.delenv("CLAUDE_OAUTH_TOKEN_URL")
    write_auth_file(token_path, "sk-ant-oat01-" + "a" * 30, "r", token_url=url)
    with pytest.raises(ValueError) as from_file:
        OAuthTokenManager(token_file=token_path)
    assert "hunter2" not in str(from_file.value) and "***@" in str(from_file.value)


def test_odd_token_urls_are_refused_with_a_clear_reason() -> None:
    for url in ("https://example.com:99999/token", "https://exa mple.com/token", "ftp://x/y"):
        with pytest.raises(ValueError, match="token URL"):
            OAuthTokenManager("a", "b", token_url=url)


def test_state_file_beside_the_lock_is_private_and_holds_no_secret(
    server: FakeAnthropic, token_path: Path
) -> None:
    access, refresh = expired_login(server, token_path)
    manager = OAuthTokenManager(token_file=token_path, token_url=server.token_url)
    manager.get_valid_token()
    state = token_path.with_name("auth.json.oauth.state")
    assert state.stat().st_mode & 0o777 == 0o600
    text = state.read_text()
    assert refresh not in text and access not in text and manager.refresh_token not in text
    assert json.loads(text)["failures"] == 0
