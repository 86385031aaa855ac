"""Claude Code's own locks (proper-lockfile's mkdir locks), taken by our refreshes and saves.

Claude Code is played here by a few lines that follow proper-lockfile's rules: ``mkdir`` takes
a lock, a holder keeps its mtime fresh, one untouched for more than the stale time may be
removed and taken.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fakeapi import FakeAnthropic
from helpers import claude_code_path, read_json, write_claude_code_file

from claude_oauth_auth import OAuthTokenManager, StoreError, UnifiedAuthManager
from claude_oauth_auth.stores import ClaudeCodeStore, FileStore, TokenSet, TokenStore
from claude_oauth_auth.stores._claude_locks import hold_locks
from claude_oauth_auth.stores._files import file_lock

CLAUDE_STALE_SECONDS = 10.0


def refresh_locks(credentials: Path) -> tuple[Path, Path]:
    """``<dir>/.oauth_refresh.lock`` and the legacy ``<realpath(dir)>.lock``, in Claude's order."""
    folder = credentials.parent
    return folder / ".oauth_refresh.lock", Path(os.path.realpath(folder) + ".lock")


def write_lock(credentials: Path) -> Path:
    return credentials.parent / ".storage-write.lock"


def claude_takes(lock: Path, stale: float = CLAUDE_STALE_SECONDS) -> bool:
    """proper-lockfile's acquire: mkdir; on EEXIST remove a lock older than ``stale`` and retry."""
    try:
        os.mkdir(lock)
        return True
    except FileExistsError:
        pass
    if os.stat(lock).st_mtime >= time.time() - stale:
        return False
    os.rmdir(lock)
    os.mkdir(lock)
    return True


def age(lock: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(lock, (then, then))


class ClaudeHolding:
    """A Claude Code process holding ``locks``: it touches them until told to release."""

    def __init__(self, locks: list[Path], *, then: Callable[[], None] = lambda: None) -> None:
        self.locks, self.then = locks, then
        self.release = threading.Event()
        for lock in locks:
            os.mkdir(lock)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.release.wait(0.05):
            for lock in self.locks:
                os.utime(lock)
        self.then()  # e.g. save the tokens it refreshed, still holding its locks
        for lock in reversed(self.locks):
            os.rmdir(lock)

    def release_after(self, seconds: float) -> None:
        threading.Timer(seconds, self.release.set).start()


@pytest.fixture
def credentials(home: Path) -> Path:
    return claude_code_path(home)


def make_store(kind: str, path: Path) -> TokenStore:
    return ClaudeCodeStore(path, keychains=[]) if kind == "claude_code" else FileStore(path)


STORE_KINDS = ["claude_code", "file"]


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_held_refresh_lock_makes_us_wait_and_adopt_claudes_tokens_without_a_post(
    server: FakeAnthropic, credentials: Path, kind: str
) -> None:
    access, refresh = server.issue_tokens(expires_in=-5)
    write_claude_code_file(credentials, access, refresh, expires_in=-5)
    manager = OAuthTokenManager(store=make_store(kind, credentials), token_url=server.token_url)
    theirs: list[str] = []

    def claude_saves_its_refresh() -> None:
        server.revoke_refresh_token(refresh)  # Claude Code spent it
        new_access, new_refresh = server.issue_tokens()
        write_claude_code_file(credentials, new_access, new_refresh)
        theirs.append(new_access)

    claude = ClaudeHolding([refresh_locks(credentials)[0]], then=claude_saves_its_refresh)
    claude.release_after(0.8)
    started = time.monotonic()
    token = manager.get_valid_token()
    assert time.monotonic() - started >= 0.7  # waited for Claude Code's lock
    assert server.token_posts == 0
    assert token == theirs[0]
    claude.thread.join(5)


def test_the_client_on_claude_codes_login_waits_for_its_refresh_lock_too(
    oauth_env: FakeAnthropic, credentials: Path
) -> None:
    server = oauth_env
    access, refresh = server.issue_tokens(expires_in=-5)
    write_claude_code_file(credentials, access, refresh, expires_in=-5)
    theirs: list[str] = []

    def claude_saves_its_refresh() -> None:
        new_access, new_refresh = server.issue_tokens()
        write_claude_code_file(credentials, new_access, new_refresh)
        theirs.append(new_access)

    claude = ClaudeHolding(list(refresh_locks(credentials)), then=claude_saves_its_refresh)
    claude.release_after(0.5)
    auth = UnifiedAuthManager()  # finds the expired token and refreshes it at once
    assert auth.source == "claude_code" and auth.token_manager is not None
    assert auth.token_manager.get_valid_token() == theirs[0]
    assert server.token_posts == 0
    claude.thread.join(5)


@pytest.mark.parametrize("kind", STORE_KINDS)
@pytest.mark.parametrize("which", [0, 1], ids=["oauth_refresh_lock", "legacy_lock"])
def test_a_stale_refresh_lock_is_taken_over_and_removed_after_the_refresh(
    server: FakeAnthropic, credentials: Path, kind: str, which: int
) -> None:
    access, refresh = server.issue_tokens(expires_in=-5)
    write_claude_code_file(credentials, access, refresh, expires_in=-5)
    lock = refresh_locks(credentials)[which]
    os.mkdir(lock)
    age(lock, CLAUDE_STALE_SECONDS + 1)  # its holder was killed 11 s ago
    manager = OAuthTokenManager(store=make_store(kind, credentials), token_url=server.token_url)
    started = time.monotonic()
    token = manager.get_valid_token()
    assert time.monotonic() - started < 5
    assert server.token_posts == 1
    assert read_json(credentials)["claudeAiOauth"]["accessToken"] == token
    assert not any(path.exists() for path in refresh_locks(credentials))


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_refresh_lock_touched_9_s_ago_is_not_taken(credentials: Path, kind: str) -> None:
    write_claude_code_file(credentials, "sk-ant-oat01-" + "a" * 20, "sk-ant-ort01-" + "r" * 20)
    lock = refresh_locks(credentials)[0]
    os.mkdir(lock)
    age(lock, CLAUDE_STALE_SECONDS - 1)
    store = make_store(kind, credentials)
    with pytest.raises(StoreError, match="Claude Code"), store.lock(0.3):
        pass
    assert lock.exists()
    assert not refresh_locks(credentials)[1].exists()


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_both_refresh_locks_are_held_in_order_while_the_store_is_locked(
    credentials: Path, kind: str
) -> None:
    write_claude_code_file(credentials, "sk-ant-oat01-" + "a" * 20, "sk-ant-ort01-" + "r" * 20)
    store = make_store(kind, credentials)
    current, legacy = refresh_locks(credentials)
    with store.lock(5):
        assert current.is_dir() and legacy.is_dir()
        assert time.time() - current.stat().st_mtime < 2
        assert not claude_takes(current) and not claude_takes(legacy)
    assert not current.exists() and not legacy.exists()


def test_the_legacy_lock_held_by_an_older_claude_makes_us_let_go_of_the_first(
    credentials: Path,
) -> None:
    """Claude Code's own rule: when the second lock is busy, release the first and retry."""
    write_claude_code_file(credentials, "sk-ant-oat01-" + "a" * 20, "sk-ant-ort01-" + "r" * 20)
    current, legacy = refresh_locks(credentials)
    claude = ClaudeHolding([legacy])
    store = ClaudeCodeStore(credentials, keychains=[])
    with pytest.raises(StoreError, match="Claude Code"), store.lock(0.3):
        pass
    assert not current.exists()  # not kept while waiting for the legacy lock
    claude.release.set()
    claude.thread.join(5)
    with store.lock(2):
        assert current.is_dir() and legacy.is_dir()


def test_a_holder_keeps_the_lock_mtime_fresh(tmp_path: Path) -> None:
    lock = tmp_path / ".oauth_refresh.lock"
    with hold_locks([lock], stale=10, timeout=1, what="test", touch_every=0.05):
        first = lock.stat().st_mtime_ns
        time.sleep(0.3)
        assert lock.stat().st_mtime_ns > first
    assert not lock.exists()


def test_a_lock_taken_over_from_us_is_reported_lost_and_not_removed(tmp_path: Path) -> None:
    lock = tmp_path / ".oauth_refresh.lock"
    with hold_locks([lock], stale=10, timeout=1, what="test", touch_every=0.05) as held:
        assert held.intact()
        os.rmdir(lock)
        os.mkdir(lock)  # someone judged it stale and took it
        age(lock, 3)
        time.sleep(0.3)
        assert not held.intact()
    assert lock.exists()  # theirs now: left alone


def test_a_lock_taken_over_while_we_were_paused_is_seen_lost_at_once(credentials: Path) -> None:
    """As the simulator found: a process paused past the stale time resumes at its check,
    before its touching thread runs again; the check said the locks were still ours, and the
    refresh token Claude Code had just spent was sent again."""
    store = ClaudeCodeStore(credentials, keychains=[])
    with store.lock(timeout=5):
        assert store.holds_lock()
        lock = credentials.parent / ".oauth_refresh.lock"
        os.rmdir(lock)
        os.mkdir(lock)  # Claude Code judged it stale and took it (no touch of ours since)
        age(lock, 1)
        assert not store.holds_lock()
    assert lock.exists()  # theirs: left alone


CHILD = """
import sys, time
import claude_oauth_auth.stores._claude_locks as _claude_locks
from claude_oauth_auth.stores import ClaudeCodeStore
_claude_locks.TOUCH_INTERVAL_SECONDS = 0.05
store = ClaudeCodeStore(sys.argv[1], keychains=[])
with store.lock():
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def killed_holder(credentials: Path) -> Iterator[subprocess.Popen[str]]:
    write_claude_code_file(credentials, "sk-ant-oat01-" + "a" * 20, "sk-ant-ort01-" + "r" * 20)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(credentials)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        yield child
    finally:
        child.kill()
        child.wait()


def test_a_killed_holder_of_ours_blocks_claude_no_longer_than_its_stale_time(
    credentials: Path, killed_holder: subprocess.Popen[str]
) -> None:
    locks = refresh_locks(credentials)
    before = [lock.stat().st_mtime_ns for lock in locks]
    time.sleep(0.3)
    after = [lock.stat().st_mtime_ns for lock in locks]
    assert all(now > then for now, then in zip(after, before, strict=True))  # kept fresh
    assert not any(claude_takes(lock) for lock in locks)
    os.kill(killed_holder.pid, signal.SIGKILL)
    killed_holder.wait()
    killed_at = time.time()
    left = [lock.stat().st_mtime for lock in locks]
    time.sleep(0.3)
    assert [lock.stat().st_mtime for lock in locks] == left  # nobody touches them any more
    assert all(killed_at - mtime < 1 for mtime in left)  # so stale 10 s after the kill
    with file_lock(credentials, timeout=1):  # our own lock died with the process
        pass
    for lock in locks:
        age(lock, CLAUDE_STALE_SECONDS + 0.5)  # ten seconds later
    assert all(claude_takes(lock) for lock in locks)


def test_a_killed_holder_of_ours_is_taken_over_by_our_next_process_at_once(
    credentials: Path, killed_holder: subprocess.Popen[str]
) -> None:
    """It recorded the locks it held; they are exactly as recorded, and it no longer runs."""
    os.kill(killed_holder.pid, signal.SIGKILL)
    killed_holder.wait()
    started = time.monotonic()
    with ClaudeCodeStore(credentials, keychains=[]).lock(5):
        assert time.monotonic() - started < 1
    assert not any(lock.exists() for lock in refresh_locks(credentials))


def test_recorded_locks_of_a_holder_that_still_runs_are_waited_for(tmp_path: Path) -> None:
    lock, record = tmp_path / ".oauth_refresh.lock", tmp_path / "record"
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with hold_locks([lock], stale=10, timeout=1, what="test", record=record):
            holding.set()
            done.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(5)
    waiting = hold_locks([lock], stale=10, timeout=0.3, what="test", record=record)
    with pytest.raises(StoreError, match="stayed held"), waiting:
        pass
    done.set()
    holder.join(5)
    assert not lock.exists() and not record.exists()


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_save_waits_for_claude_codes_write_lock(credentials: Path, kind: str) -> None:
    write_claude_code_file(credentials, "sk-ant-oat01-" + "a" * 20, "sk-ant-ort01-" + "r" * 20)
    store = make_store(kind, credentials)
    store.load()
    claude = ClaudeHolding([write_lock(credentials)])
    claude.release_after(0.6)
    started = time.monotonic()
    new = TokenSet("sk-ant-oat01-" + "b" * 20, "sk-ant-ort01-" + "s" * 20, time.time() + 3600)
    store.save(new, expected_version=store.version())
    assert time.monotonic() - started >= 0.5
    assert read_json(credentials)["claudeAiOauth"]["accessToken"] == new.access_token
    assert not write_lock(credentials).exists()
    claude.thread.join(5)


def test_a_stale_write_lock_is_taken_over(credentials: Path) -> None:
    write_claude_code_file(credentials, "sk-ant-oat01-" + "a" * 20, "sk-ant-ort01-" + "r" * 20)
    os.mkdir(write_lock(credentials))
    age(write_lock(credentials), 16)  # Claude Code's stale time for this lock is 15 s
    store = ClaudeCodeStore(credentials, keychains=[])
    new = TokenSet("sk-ant-oat01-" + "b" * 20, "sk-ant-ort01-" + "s" * 20, time.time() + 3600)
    store.save(new, expected_version=store.version())
    assert read_json(credentials)["claudeAiOauth"]["accessToken"] == new.access_token
    assert not write_lock(credentials).exists()


def test_a_token_file_of_our_own_shape_takes_no_claude_code_lock(tmp_path: Path) -> None:
    path = tmp_path / "tokens" / "auth.json"
    store = FileStore(path)
    with store.lock(1):
        pass
    store.save(TokenSet("sk-ant-oat01-" + "b" * 20), expected_version=None)
    assert sorted(p.name for p in path.parent.iterdir()) == ["auth.json", "auth.json.oauth.lock"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "tokens"]
