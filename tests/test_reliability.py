"""What real machines do to a token file: kill -9, full disks, read-only folders, bad answers.

Each test checks the promise the lifecycle issue makes: a rotated refresh token is never
silently lost, a failed save is logged once and retried, and a failed refresh leaves the
token file exactly as it was.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from conftest import Clock
from fakeapi import FakeAnthropic, Fault
from helpers import (
    claude_code_path,
    read_json,
    skip_backoff,
    write_auth_file,
    write_claude_code_file,
)

from claude_oauth_auth import (
    ClaudeClient,
    OAuthRefreshError,
    OAuthTokenManager,
    TokenRefreshError,
)
from claude_oauth_auth._tokens import TokenSet, parse_token_document
from claude_oauth_auth.lifecycle import _backoff as backoff_module
from claude_oauth_auth.lifecycle import _grant as refresh_module
from claude_oauth_auth.lifecycle import _sync as oauth_module
from claude_oauth_auth.stores._files import file_lock

MODEL = "claude-test-1"
MESSAGES: Any = [{"role": "user", "content": "hi"}]


@pytest.fixture
def token_path(home: Path) -> Path:
    return home / ".config" / "claude" / "auth.json"


def ask(client: anthropic.Anthropic) -> None:
    client.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES)


def wait_until_idle(server: FakeAnthropic, timeout: float = 5.0) -> None:
    """Wait until the server has finished every request (a killed client's may be in flight)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with server.lock:
            if not server._connections:
                return
        time.sleep(0.002)
    raise AssertionError("the loopback server still has requests in flight")


def wait_until_settled(server: FakeAnthropic, quiet: float = 0.02) -> None:
    """Idle, and no new token POST for ``quiet`` seconds: a killed child's request may still
    wait in the listening socket's queue, to be accepted (and spend its token) a bit later."""
    last = -1
    while server.token_posts != last:
        last = server.token_posts
        time.sleep(quiet)
        wait_until_idle(server)


def assert_refresh_token_accepted(server: FakeAnthropic, path: Path) -> None:
    """The refresh token on disk works: spend it (the new pair is saved for the next round)."""
    before = server.invalid_grants
    OAuthTokenManager(token_file=path, token_url=server.token_url).refresh()
    assert server.invalid_grants == before


# ----- kill -9 ----------------------------------------------------------------------------------

# A process that imports the library once, then forks a fresh child per round: each child
# refreshes (single-use refresh tokens, so every refresh rotates) and saves, in a loop, until
# it is killed. Forking from a single-threaded process is cheap and safe.
ZYGOTE = textwrap.dedent(
    """
    import os, random, sys, traceback
    from claude_oauth_auth import OAuthTokenManager
    import filelock  # noqa: F401  (warm: the child should start refreshing at once)

    path, token_url, log_file = sys.argv[1:4]
    print("ready", flush=True)
    for line in sys.stdin:
        command, argument = line.split()
        if command == "spawn":
            pid = os.fork()
            if pid == 0:
                try:
                    random.seed(int(argument))
                    manager = OAuthTokenManager(token_file=path, token_url=token_url)
                    while True:
                        manager.refresh()
                        for _ in range(random.randint(0, 3)):
                            manager._save_tokens()
                except BaseException:
                    with open(log_file, "a") as log:
                        log.write(traceback.format_exc())
                finally:
                    os._exit(3)
            print(pid, flush=True)
        elif command == "reap":
            _, status = os.waitpid(int(argument), 0)
            print(status, flush=True)
    """
)


class Zygote:
    def __init__(self, path: Path, token_url: str) -> None:
        self.log_file = path.parent / "child-errors.log"
        self.process = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE, str(path), token_url, str(self.log_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.readline() == "ready"

    def readline(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def send(self, command: str, argument: int) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{command} {argument}\n")
        self.process.stdin.flush()
        return self.readline()

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


def log_in(server: FakeAnthropic, path: Path, shape: str) -> None:
    access, refresh = server.issue_tokens()
    if shape == "ours":
        write_auth_file(path, access, refresh)
    else:
        write_claude_code_file(path, access, refresh)


def kill_loop(server: FakeAnthropic, path: Path, kills: int, shape: str) -> dict[str, int]:
    log_in(server, path, shape)
    rng = random.Random(1234)
    zygote = Zygote(path, server.token_url)
    stats = {
        "kills": 0,
        "corrupt_files": 0,
        "in_flight_losses": 0,
        "temp_recoveries": 0,
        "losses_a_temp_file_could_have_saved": 0,
        "child_posts": 0,
        "temp_files_left": 0,
    }
    lost: list[str] = []
    try:
        for round_number in range(kills):
            posts_before = server.token_posts
            pid = int(zygote.send("spawn", round_number))
            # Kill at a random moment once the child is busy: from its first POST on.
            deadline = time.monotonic() + 10
            while server.token_posts == posts_before and time.monotonic() < deadline:
                time.sleep(0.0005)
            time.sleep(rng.uniform(0.0, 0.08))
            os.kill(pid, signal.SIGKILL)
            status = int(zygote.send("reap", pid))
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
                f"the child stopped on its own (status {status}): {self_log(zygote.log_file)}"
            )
            stats["kills"] += 1
            wait_until_settled(server)
            stats["child_posts"] += server.token_posts - posts_before
            # A child never spends a refresh token twice (only our checks below may).
            assert server.invalid_grants == stats["in_flight_losses"]

            # 1. The file always parses, in full.
            try:
                document = read_json(path)
                tokens, found_shape = parse_token_document(document)
            except ValueError:
                stats["corrupt_files"] += 1
                raise
            assert found_shape == shape and tokens.access_token and tokens.refresh_token
            if shape == "claude_code":  # keys we do not own survive every write
                assert document["mcpOAuth"] == {"server": {"token": "keep-me"}}
            # 2. Nothing holds the lock: a dead process's lock is released by the kernel.
            with file_lock(path, timeout=5):
                pass
            # 3. The refresh token on disk still works, unless the child died after the
            #    server spent it and before the new pair reached the disk (a response lost
            #    in flight: no client can keep that login with single-use refresh tokens).
            #    A save killed after its temp file was complete left the newer tokens there:
            #    the next refresh adopts them.
            in_temp = newer_tokens_in_a_temp_file(path, tokens)
            before_check = describe_temps(path)
            try:
                assert_refresh_token_accepted(server, path)
            except OAuthRefreshError:
                # The check's refused POST is the last one; the child's last is just before
                # it (even when the killed child's request was accepted late, from the queue).
                with server.lock:
                    requests = server.token_requests
                    last_spent = requests[-2].get("refresh_token") if len(requests) > 1 else None
                if tokens.refresh_token != last_spent:
                    lost.append(
                        f"round {round_number}: the file went back to an older token: "
                        + diagnose(server, path, tokens, before_check)
                    )
                if in_temp:
                    stats["losses_a_temp_file_could_have_saved"] += 1
                stats["in_flight_losses"] += 1
                log_in(server, path, shape)  # log in again, carry on
            else:
                stats["temp_recoveries"] += in_temp
    finally:
        zygote.close()
    leftovers = list(path.parent.glob(f".{path.name}.*.tmp"))
    stats["temp_files_left"] = len(leftovers)
    for leftover in leftovers:  # a kill between mkstemp and replace leaves one: still private
        assert leftover.stat().st_mode & 0o077 == 0
    assert lost == []
    assert not zygote.log_file.exists(), zygote.log_file.read_text()
    return stats


def newer_tokens_in_a_temp_file(path: Path, on_disk: TokenSet) -> bool:
    """A temp file holds other tokens, expiring later (or as late, and written later)."""
    file_age = (on_disk.expires_at or 0, path.stat().st_mtime_ns)
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            tokens, _ = parse_token_document(json.loads(leftover.read_text()))
        except (ValueError, TypeError):
            continue  # half written, or the shared state's own temp file
        age = (tokens.expires_at or 0, leftover.stat().st_mtime_ns)
        if tokens.refresh_token != on_disk.refresh_token and age > file_age:
            return True
    return False


def describe_temps(path: Path) -> str:
    described = []
    for leftover in sorted(path.parent.glob(f".{path.name}.*.tmp")):
        try:
            tokens, _ = parse_token_document(json.loads(leftover.read_text()))
            described.append(f"{leftover.name}={tokens.refresh_token[-6:]}@{tokens.expires_at}")
        except (ValueError, TypeError):
            described.append(f"{leftover.name}=unparsable")
    return ", ".join(described)


def diagnose(server: FakeAnthropic, path: Path, on_disk: TokenSet, temps: str) -> str:
    with server.lock:
        spent = [str(r.get("refresh_token", ""))[-6:] for r in server.token_requests[-6:]]
    refresh = (on_disk.refresh_token or "")[-6:]
    return f"file {refresh}@{on_disk.expires_at}, last POSTs {spent}, temps before: {temps}"


def self_log(log_file: Path) -> str:
    return log_file.read_text() if log_file.exists() else "(no traceback)"


def check_kill_stats(stats: dict[str, int], kills: int) -> None:
    # in_flight_losses: kills while a refresh POST was in flight (sent, not yet saved); the
    # server spends the old refresh token anyway, so that login is gone for any client.
    # temp_files_left: kills in the middle of a save (the token file itself stayed whole).
    print(f"\nkill -9 loop: {stats}")
    assert stats["kills"] == kills
    assert stats["corrupt_files"] == 0 and stats["losses_a_temp_file_could_have_saved"] == 0
    assert stats["child_posts"] >= kills  # every kill landed on a busy child


def shape_path(shape: str, home: Path) -> Path:
    return home / ".config" / "claude" / "auth.json" if shape == "ours" else claude_code_path(home)


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("shape", ["ours", "claude_code"])
def test_kill_9_loop_never_corrupts_or_loses_the_login(
    shape: str, server: FakeAnthropic, home: Path
) -> None:
    """50 kills per file shape (100 in all), then 200 per shape below (both --run-slow)."""
    check_kill_stats(kill_loop(server, shape_path(shape, home), 50, shape), 50)


@pytest.mark.slow
@pytest.mark.timeout(480)  # 200 kills; Claude Code's locks add mkdir/rmdir and a lock record
@pytest.mark.parametrize("shape", ["ours", "claude_code"])
def test_kill_9_loop_long(shape: str, server: FakeAnthropic, home: Path) -> None:
    check_kill_stats(kill_loop(server, shape_path(shape, home), 200, shape), 200)


# ----- disk faults ------------------------------------------------------------------------------

# A child refreshes while its disk refuses writes, keeps serving the rotated tokens from
# memory, then (told the fault is gone) has its next check save them.
DISK_CHILD = textwrap.dedent(
    """
    import json, logging, os, resource, signal, subprocess, sys, time
    mode, path, token_url, folder = sys.argv[1:5]
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append((record.levelname, record.getMessage()))

    logger = logging.getLogger("claude_oauth_auth")
    logger.addHandler(Keep())
    logger.setLevel(logging.INFO)
    from claude_oauth_auth import OAuthTokenManager
    from claude_oauth_auth.lifecycle import _sync as _oauth

    def report(**fields):
        print(json.dumps(fields), flush=True)

    manager = OAuthTokenManager(token_file=path, token_url=token_url)
    original = manager.access_token
    if mode == "full_disk":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write with EFBIG, not die
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16, hard))
    try:
        first = manager.get_valid_token()
        second = manager.get_valid_token()
    except Exception as error:
        report(error=f"{type(error).__name__}: {error}")
        sys.exit(0)
    report(rotated=first != original, kept=first == second, records=records)
    sys.stdin.readline()  # the parent asks us to fix the disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    time.sleep(_oauth.SAVE_RETRY_INTERVAL_SECONDS + 0.05)
    third = manager.get_valid_token()
    with open(path) as handle:
        saved = json.load(handle)
    report(kept=third == first, saved=saved.get("access_token") == first, records=records)
    """
)


def read_only_mount_available() -> bool:
    if os.geteuid() != 0:
        return True  # chmod stops an ordinary user
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t tmpfs none /mnt 2>/dev/null || exit 1"],
        capture_output=True,
    )
    return probe.returncode == 0


def disk_child_command(mode: str, path: Path, server: FakeAnthropic) -> list[str]:
    return [sys.executable, "-c", DISK_CHILD, mode, str(path), server.token_url, str(path.parent)]


def run_disk_fault(mode: str, server: FakeAnthropic, path: Path) -> None:
    access, refresh = server.issue_tokens(expires_in=-5)
    write_auth_file(path, access, refresh, expires_in=-5)
    before = path.read_bytes()
    child = subprocess.Popen(
        disk_child_command(mode, path, server),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        during = json.loads(child.stdout.readline() or '{"error": "child died"}')
        assert "error" not in during, during
        # Rotated tokens kept in memory and served; the file untouched; one ERROR.
        assert during["rotated"] and during["kept"]
        assert path.read_bytes() == before
        assert server.token_posts == 1
        errors = [message for level, message in during["records"] if level == "ERROR"]
        assert len(errors) == 1 and str(path) in errors[0]
        assert refresh not in errors[0]
        # The fault goes away: the next check saves the tokens it kept.
        child.stdin.write("go\n")
        child.stdin.flush()
        after = json.loads(child.stdout.readline() or '{"error": "child died"}')
        assert after.get("kept") and after.get("saved"), after
        errors = [message for level, message in after["records"] if level == "ERROR"]
        assert len(errors) == 1
        assert child.wait(timeout=30) == 0, child.communicate()[1]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        path.parent.chmod(0o700)
    assert server.token_posts == 1 and server.invalid_grants == 0
    assert_refresh_token_accepted(server, path)  # nothing lost


# N processes share a read-only token folder: none may spend the single-use refresh token,
# whose successor it could not save. Each reports what it got.
READ_ONLY_CHILDREN = textwrap.dedent(
    """
    import json, logging, os, sys
    path, token_url, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    from claude_oauth_auth import OAuthTokenManager, TokenRefreshError

    def one():
        records = []

        class Keep(logging.Handler):
            def emit(self, record):
                records.append((record.levelname, record.getMessage()))

        logging.getLogger("claude_oauth_auth").addHandler(Keep())
        manager = OAuthTokenManager(token_file=path, token_url=token_url)
        original = manager.access_token
        outcome = {}
        try:
            outcome["served_original"] = manager.get_valid_token() == original
            outcome["again"] = manager.get_valid_token() == original
        except TokenRefreshError as error:
            outcome["error"] = str(error)
        outcome["records"] = records
        return outcome

    children = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            os.write(1, (json.dumps(one()) + "\\n").encode())
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    """
)


def run_read_only(server: FakeAnthropic, path: Path, expires_in: float, count: int) -> list[Any]:
    access, refresh = server.issue_tokens(expires_in=expires_in)
    write_auth_file(path, access, refresh, expires_in=expires_in)
    before = path.read_bytes()
    child = [sys.executable, "-c", READ_ONLY_CHILDREN, str(path), server.token_url, str(count)]
    folder = str(path.parent)
    if os.geteuid() == 0:  # root ignores permissions: a read-only bind mount (EROFS)
        script = (
            'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" "$1" && shift && exec "$@"'
        )
        command = ["unshare", "-m", "sh", "-c", script, "sh", folder, *child]
    else:
        path.parent.chmod(0o500)
        command = child
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    finally:
        path.parent.chmod(0o700)
    assert done.returncode == 0, done.stderr
    outcomes = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(outcomes) == count
    # Nothing spent, nothing written, no secret in any output; the login still works.
    assert server.token_posts == 0
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["auth.json"]
    assert access not in done.stdout + done.stderr and refresh not in done.stdout + done.stderr
    assert_refresh_token_accepted(server, path)
    return outcomes


@pytest.mark.skipif(not read_only_mount_available(), reason="needs unshare + mount as root")
def test_read_only_folder_expired_token_spends_nothing_and_names_the_path(
    server: FakeAnthropic, token_path: Path
) -> None:
    for outcome in run_read_only(server, token_path, expires_in=-5, count=6):
        error = outcome.get("error", "")
        assert str(token_path.parent) in error, outcome
        reason = "read-only file system" if os.geteuid() == 0 else "not writable (permissions)"
        assert reason in error and "would lose this login" in error


@pytest.mark.skipif(not read_only_mount_available(), reason="needs unshare + mount as root")
def test_read_only_folder_serves_a_still_valid_token_with_one_warning(
    server: FakeAnthropic, token_path: Path
) -> None:
    for outcome in run_read_only(server, token_path, expires_in=100, count=4):
        assert outcome.get("served_original") and outcome.get("again"), outcome
        warnings = [message for level, message in outcome["records"] if level == "WARNING"]
        assert len(warnings) == 1 and "still valid" in warnings[0]
        assert str(token_path.parent) in warnings[0]


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE (POSIX)")
def test_full_disk_keeps_tokens_in_memory_and_saves_later(
    server: FakeAnthropic, token_path: Path
) -> None:
    run_disk_fault("full_disk", server, token_path)


def test_failing_replace_keeps_the_client_working_and_saves_later(
    server: FakeAnthropic,
    token_path: Path,
    oauth_env: FakeAnthropic,
    caplog: pytest.LogCaptureFixture,
    clock: Clock,
) -> None:
    access, refresh = server.issue_tokens()
    write_auth_file(token_path, access, refresh)
    client = ClaudeClient(max_retries=0, clock=clock)
    ask(client)
    # A directory now stands where the file is replaced, and the API revokes the token.
    token_path.unlink()
    token_path.mkdir()
    server.revoke_access_token(access)
    with caplog.at_level(logging.INFO, logger="claude_oauth_auth"):
        for _ in range(4):
            ask(client)  # the first is refused, refreshed (save fails) and resent
        manager = client.auth_manager.token_manager
        assert manager is not None and manager.access_token != access
        rotated = manager.refresh_token
        token_path.rmdir()
        clock.advance(oauth_module.SAVE_RETRY_INTERVAL_SECONDS + 0.05)
        ask(client)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and str(token_path) in errors[0].getMessage()
    assert rotated is not None and rotated not in errors[0].getMessage()
    assert read_json(token_path)["refresh_token"] == rotated
    assert server.token_posts == 1 and server.invalid_grants == 0
    assert [r.status for r in server.api_requests] == [200, 401, 200, 200, 200, 200, 200]
    assert list(token_path.parent.glob("*.tmp")) == []
    assert_refresh_token_accepted(server, token_path)


# ----- token endpoint faults --------------------------------------------------------------------


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1/oauth/token"


TRANSIENT = {
    "500": Fault(500, {"error": "server_error"}),
    "503_retry_after": Fault(503, "busy", headers={"Retry-After": "7"}),
    "429": Fault(429, {"error": "rate_limited"}),
    "timeout": Fault(200, {}, delay=1.0),
    "connection_refused": None,  # the endpoint is down
    "non_json_body": Fault(200, "<html>gateway</html>"),
    "json_list": Fault(200, [1, 2]),
    "no_tokens_at_all": Fault(200, {"token_type": "Bearer"}),
    "redirect": Fault(307, "", headers={"Location": "https://elsewhere.example/token"}),
}
ALL_FAULTS = [*TRANSIENT, "invalid_grant"]


@pytest.fixture
def faulty(
    request: pytest.FixtureRequest,
    server: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """Point the library at the server; queue the fault for every token POST of the test."""
    case: str = request.param
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
    if case == "timeout":
        monkeypatch.setattr(refresh_module, "REFRESH_TIMEOUT_SECONDS", 0.3)
    if case == "connection_refused":
        monkeypatch.setenv("CLAUDE_OAUTH_TOKEN_URL", closed_port_url())
    else:
        monkeypatch.setenv("CLAUDE_OAUTH_TOKEN_URL", server.token_url)
        fault = TRANSIENT.get(case)
        if fault is not None:
            server.token_faults.extend([fault] * 10)
    yield case


def spoil_refresh_token(case: str, server: FakeAnthropic, refresh: str) -> None:
    if case == "invalid_grant":
        server.revoke_refresh_token(refresh)


@pytest.mark.parametrize("faulty", ALL_FAULTS, indirect=True)
def test_fault_with_a_still_valid_token(
    faulty: str,
    server: FakeAnthropic,
    token_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Within the threshold but not expired: transient faults serve the current token."""
    monkeypatch.setattr(backoff_module, "BACKOFF_BASE_SECONDS", 30.0)  # one step, even slow
    access, refresh = server.issue_tokens(expires_in=100)
    write_auth_file(token_path, access, refresh, expires_in=100)
    spoil_refresh_token(faulty, server, refresh)
    before = token_path.read_bytes()
    with caplog.at_level(logging.WARNING, logger="claude_oauth_auth"):
        if faulty == "invalid_grant":
            with pytest.raises(anthropic.AuthenticationError) as caught:
                ClaudeClient(max_retries=0)
            assert isinstance(caught.value, OAuthRefreshError)
            assert "invalid_grant" in str(caught.value) and refresh not in str(caught.value)
        else:
            client = ClaudeClient(max_retries=0)
            for _ in range(3):
                ask(client)
            assert {r.token for r in server.api_requests} == {access}
            warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1 and "still valid" in warnings[0], warnings
            if faulty == "503_retry_after":
                assert "retrying in 7 s" in warnings[0]
    assert token_path.read_bytes() == before
    expected_posts = 0 if faulty == "connection_refused" else 1
    assert server.token_posts == expected_posts


@pytest.mark.parametrize("faulty", ALL_FAULTS, indirect=True)
def test_fault_with_an_expired_token(
    faulty: str, server: FakeAnthropic, token_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Expired: the request fails (transient: retryable; refused: authentication), file kept."""
    access, refresh = server.issue_tokens(expires_in=-5)
    write_auth_file(token_path, access, refresh, expires_in=-5)
    spoil_refresh_token(faulty, server, refresh)
    before = token_path.read_bytes()
    if faulty == "invalid_grant":
        with pytest.raises(OAuthRefreshError, match="invalid_grant"):
            ClaudeClient(max_retries=0)
        assert server.token_posts == 1
        assert token_path.read_bytes() == before
        return
    client = ClaudeClient(max_retries=0)  # its first refresh fails and schedules the next
    posts = server.token_posts
    assert posts == (0 if faulty == "connection_refused" else 1)
    with pytest.raises(TokenRefreshError) as caught:  # ours, not wrapped: the SDK won't retry
        ask(client)
    assert isinstance(caught.value, anthropic.APIError)
    assert "backing off" in str(caught.value)  # failed fast: no second POST
    assert refresh not in str(caught.value)
    assert server.token_posts == posts
    assert token_path.read_bytes() == before
    assert server.api_requests == []  # the expired token was never sent
    # The endpoint recovers; once the backoff is over the next request refreshes once.
    server.token_faults.clear()
    monkeypatch.setattr(refresh_module, "REFRESH_TIMEOUT_SECONDS", 30.0)
    manager = client.auth_manager.token_manager
    assert manager is not None
    expected = 7.0 if faulty == "503_retry_after" else 1.0
    assert 0 < manager.retry_in <= expected
    skip_backoff(manager)
    manager.token_url = server.token_url
    posts = server.token_posts
    ask(client)
    assert server.token_posts == posts + 1 and server.invalid_grants == 0
    assert read_json(token_path)["access_token"] == manager.access_token != access


def test_invalid_grant_with_an_api_key_falls_back_and_keeps_the_file(
    server: FakeAnthropic,
    token_path: Path,
    oauth_env: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    access, refresh = server.issue_tokens(expires_in=-5)
    write_auth_file(token_path, access, refresh, expires_in=-5)
    server.revoke_refresh_token(refresh)
    key = server.add_api_key()
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    before = token_path.read_bytes()
    with caplog.at_level(logging.WARNING, logger="claude_oauth_auth"):
        client = ClaudeClient(max_retries=0)
        for _ in range(3):
            ask(client)
    assert client.auth_method == "api_key"
    assert [r.auth_kind for r in server.api_requests] == ["api_key"] * 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "invalid_grant" in warnings[0]
    assert key not in warnings[0] and refresh not in warnings[0]
    assert server.token_posts == 1
    assert token_path.read_bytes() == before


# ----- figures: every endpoint fault, and an outage shared by waiting requests -----------------

ODD_200S = {
    "expires_in_missing": {"expires_in": None},
    "expires_in_negative": {"expires_in": -5},
    "expires_in_absurd": {"expires_in": 10**15},
    "expires_in_a_string": {"expires_in": "soon"},
    "access_token_missing": {"access_token": None},
}


def queue_fault(server: FakeAnthropic, case: str, spent: str) -> None:
    """One misbehaving answer to the next token POST."""
    if case in ODD_200S:  # a real rotation with odd fields
        access, refresh = server.issue_tokens()
        server.revoke_refresh_token(spent)
        body = {"access_token": access, "refresh_token": refresh, "expires_in": 3600}
        body.update(ODD_200S[case])
        server.token_faults.append(Fault(200, {k: v for k, v in body.items() if v is not None}))
    elif case == "reset":
        server.token_faults.append(Fault(200, b"", close=True))
    elif case == "hang":
        server.token_faults.append(Fault(200, {}, delay=1.0))
    else:
        fault = TRANSIENT[case]
        assert fault is not None
        server.token_faults.append(fault)


def test_every_endpoint_fault_leaves_the_login_alive(
    server: FakeAnthropic, token_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(refresh_module, "REFRESH_TIMEOUT_SECONDS", 0.3)
    cases = [c for c in TRANSIENT if c not in ("connection_refused", "timeout")]
    cases += ["reset", "hang", *ODD_200S]
    alive = []
    for case in cases:
        access, refresh = server.issue_tokens(expires_in=-5)
        write_auth_file(token_path, access, refresh, expires_in=-5)
        queue_fault(server, case, refresh)
        manager = OAuthTokenManager(token_file=token_path, token_url=server.token_url)
        try:
            manager.get_valid_token()
        except TokenRefreshError as error:
            assert refresh not in str(error)
        skip_backoff(manager)
        assert manager.get_valid_token()  # the endpoint is back: the login works
        try:
            assert_refresh_token_accepted(server, token_path)  # and so does the file
        except OAuthRefreshError:
            continue
        alive.append(case)
    print(f"\n{len(cases)} endpoint faults, login alive afterwards in {len(alive)}: {cases}")
    assert alive == cases and server.invalid_grants == 0


OUTAGE_CHILD = textwrap.dedent(
    """
    import sys, threading, time
    from claude_oauth_auth import OAuthTokenManager, TokenRefreshError
    path, token_url = sys.argv[1:3]
    threads, seconds = int(sys.argv[3]), float(sys.argv[4])
    manager = OAuthTokenManager(token_file=path, token_url=token_url)
    deadline = time.monotonic() + seconds

    def requests():
        while time.monotonic() < deadline:
            try:
                manager.get_valid_token()
            except TokenRefreshError:
                pass
            time.sleep(0.01)

    workers = [threading.Thread(target=requests) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    """
)


def outage(server: FakeAnthropic, path: Path, processes: int, threads: int) -> list[float]:
    """``processes`` x ``threads`` requests keep asking for 3.5 s while the endpoint is down."""
    access, refresh = server.issue_tokens(expires_in=-5)
    write_auth_file(path, access, refresh, expires_in=-5)
    server.token_faults.extend([Fault(500, {"error": "server_error"})] * 100)
    command = [sys.executable, "-c", OUTAGE_CHILD, str(path), server.token_url, str(threads)]
    children = [subprocess.Popen([*command, "3.5"]) for _ in range(processes)]
    for child in children:
        assert child.wait(timeout=60) == 0
    times = list(server.token_post_times)
    server.token_faults.clear()
    assert_refresh_token_accepted(server, path)  # the outage cost nothing
    return times


def check_backoff_steps(times: list[float], label: str) -> None:
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    print(
        f"\n{label}, 3.5 s outage: {len(times)} POSTs; gaps "
        + ", ".join(f"{gap:.2f}" for gap in gaps)
        + " s (each step waits 0.5-1 x 1, 2, 4 s)"
    )
    # At most one POST per backoff step: the k-th wait is at least half of 2^(k-1) seconds.
    for step, gap in enumerate(gaps, start=1):
        assert gap >= 0.5 * 2 ** (step - 1) - 0.05, (step, gaps)
    assert 1 <= len(times) <= 4


def test_50_requests_in_an_outage_post_once_per_backoff_step(
    server: FakeAnthropic, token_path: Path
) -> None:
    check_backoff_steps(outage(server, token_path, 1, 50), "50 threads in 1 process")


def test_50_requests_in_5_processes_share_the_backoff(
    server: FakeAnthropic, token_path: Path
) -> None:
    times = outage(server, token_path, 5, 10)
    check_backoff_steps(times, "5 processes x 10 threads")
    state = read_json(token_path.with_name("auth.json.oauth.state"))
    assert state["failures"] == 0  # cleared by the refresh that followed the outage
