"""A TokenStore written in under 60 lines (SQLite), driven through the whole token lifecycle.

The store below is what a user of the library would write for a backend we do not ship: one
table, one row, a row version for compare-and-set, and a write transaction as the lock. The
tests then run the shared store contract and the manager's scenarios (expiry, 64 threads,
8 processes, a rotation made by another process, a stale save) against it and the loopback
token endpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from conftest import Clock
from fakeapi import FakeAnthropic
from helpers import create_from_threads
from store_contract import (
    check_lock_is_exclusive_across_processes,
    check_round_trip_and_compare_and_set,
    same_tokens,
    token_set,
)

from claude_oauth_auth import ClaudeClient, OAuthTokenManager
from claude_oauth_auth.stores import StoreConflict, StoreError, TokenSet, TokenStore


class SQLiteStore:
    """One row of one SQLite table; the lock is a write transaction (``BEGIN IMMEDIATE``)."""

    poll_interval: float | None = 1.0

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path, self._local = Path(path), threading.local()  # .db: a held lock's connection
        self.path.touch(mode=0o600, exist_ok=True)
        self._sql("PRAGMA journal_mode=WAL")
        self._sql("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v INTEGER, data)")

    location = property(lambda self: f"sqlite://{self.path}")
    writable = property(lambda self: os.access(self.path.parent, os.W_OK))

    def _sql(self, query: str, *parameters: object) -> Any:
        """One statement: on the lock's connection while held, else on one closed right after."""
        held = getattr(self._local, "db", None)
        db = held or sqlite3.connect(self.path, 60, isolation_level=None)
        try:
            return db.execute(query, parameters).fetchone()
        finally:
            if db is not held:
                db.close()

    def version(self) -> int | None:
        version, data = self._sql("SELECT v, data FROM t") or (None, None)
        return version if data is not None else None

    def load(self) -> TokenSet | None:
        data = (self._sql("SELECT data FROM t") or (None,))[0]
        found = json.loads(data) if data is not None else None
        return TokenSet(**{**found, "scopes": tuple(found["scopes"])}) if found else None

    def save(self, tokens: TokenSet, *, expected_version: object) -> None:
        self._write(json.dumps(dataclasses.asdict(tokens)), expected_version)

    def delete(self) -> None:
        self._write(None, None, check=False)  # the row stays: a version is never reused

    def _write(self, data: str | None, expected: object, check: bool = True) -> None:
        with contextlib.nullcontext() if hasattr(self._local, "db") else self.lock():
            if check and self.version() != expected:
                raise StoreConflict(self.location)
            self._sql("REPLACE INTO t VALUES (1, IFNULL((SELECT MAX(v) FROM t), 0) + 1, ?)", data)

    @contextlib.contextmanager
    def lock(self, timeout: float = 60.0) -> Iterator[None]:
        with contextlib.closing(sqlite3.connect(self.path, timeout, isolation_level=None)) as db:
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:  # "database is locked" after the busy timeout
                raise StoreError(self.location, f"locked for over {timeout:g} s") from None
            self._local.db = db
            try:
                yield
            finally:  # commit even after an error: a save made under the lock must not be lost
                del self._local.db
                db.execute("COMMIT")


MODEL = "claude-test-1"
MESSAGES = [{"role": "user", "content": "hi"}]


def stored_row(db: Path) -> tuple[int, dict[str, object]]:
    """The row as SQLite holds it, read without the store."""
    with contextlib.closing(sqlite3.connect(db)) as connection:
        version, data = connection.execute("SELECT v, data FROM t").fetchone()
    return version, json.loads(data)


def write_tokens(db: Path, access: str, refresh: str, expires_in: float) -> SQLiteStore:
    store = SQLiteStore(db)
    tokens = TokenSet(access, refresh, time.time() + expires_in, ("user:inference",))
    store.save(tokens, expected_version=store.version())
    return store


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "tokens.db"


@pytest.fixture
def expired_db(server: FakeAnthropic, db: Path) -> Path:
    server.refresh_latency = 0.5
    access, refresh = server.issue_tokens(expires_in=-5)
    write_tokens(db, access, refresh, -5)
    return db


# ----- the store itself ------------------------------------------------------------------------


def test_the_store_is_under_60_lines() -> None:
    lines = inspect.getsource(SQLiteStore).splitlines()
    assert len(lines) < 60, len(lines)


def test_contract_round_trip_and_compare_and_set(db: Path) -> None:
    check_round_trip_and_compare_and_set(functools.partial(SQLiteStore, db))


def test_contract_lock_is_exclusive_across_processes(db: Path) -> None:
    SQLiteStore(db)  # create the table once, before the workers race to
    check_lock_is_exclusive_across_processes(functools.partial(SQLiteStore, db))


def test_location_file_mode_and_lock_timeout(db: Path) -> None:
    store = SQLiteStore(db)
    assert isinstance(store, TokenStore)
    assert store.location == f"sqlite://{db}"
    assert store.writable and store.poll_interval == 1.0
    assert db.stat().st_mode & 0o777 == 0o600
    with store.lock(timeout=5):
        with pytest.raises(StoreError) as caught, SQLiteStore(db).lock(timeout=0.2):
            pass
        assert caught.value.location == store.location
        assert "locked for over 0.2 s" in caught.value.reason
    with SQLiteStore(db).lock(timeout=1):
        pass  # released


# ----- the lifecycle through the manager and the client ----------------------------------------


def test_expired_token_is_refreshed_once_and_the_row_holds_the_rotated_pair(
    oauth_env: FakeAnthropic, expired_db: Path
) -> None:
    server = oauth_env
    server.refresh_latency = 0.0
    _, before = stored_row(expired_db)
    client = ClaudeClient(store=SQLiteStore(expired_db), max_retries=0)
    message = client.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES)  # type: ignore[arg-type]
    assert message.content
    assert (server.token_posts, server.invalid_grants) == (1, 0)
    version, after = stored_row(expired_db)
    assert version == 2  # one save by write_tokens, one by the refresh
    assert after["access_token"] != before["access_token"]
    assert after["refresh_token"] != before["refresh_token"]
    assert float(after["expires_at"]) > time.time() + 3000  # type: ignore[arg-type]
    assert after["scopes"] == ["user:inference"]
    assert [(r.status, r.token) for r in server.api_requests] == [(200, after["access_token"])]


def test_64_threads_one_refresh(server: FakeAnthropic, expired_db: Path) -> None:
    manager = OAuthTokenManager(store=SQLiteStore(expired_db), token_url=server.token_url)
    client = anthropic.Anthropic(credentials=manager, base_url=server.base_url, max_retries=0)
    results = create_from_threads(client, 64)
    assert len(results) == 64
    assert (server.token_posts, server.invalid_grants) == (1, 0)
    assert sum(1 for r in server.api_requests if r.status == 200) == 64
    assert stored_row(expired_db)[1]["access_token"] == manager.access_token


def child_code(script: str) -> str:
    """A child program: the store class (its source, not this slow-to-import module) and ``script``.

    The children import neither pytest nor the SDK, so 8 of them start in a fraction of a second.
    """
    prelude = textwrap.dedent(
        """
        import contextlib, dataclasses, json, os, sqlite3, sys, threading, time
        from collections.abc import Iterator
        from pathlib import Path
        from typing import Any
        from claude_oauth_auth import OAuthTokenManager
        from claude_oauth_auth.stores import StoreConflict, StoreError, TokenSet
        """
    )
    return "\n".join((prelude, inspect.getsource(SQLiteStore), textwrap.dedent(script)))


CHILD = child_code(
    """
    db, token_url, go_file = sys.argv[1:4]
    manager = OAuthTokenManager(store=SQLiteStore(db), token_url=token_url)
    print("ready", flush=True)
    while not os.path.exists(go_file):
        time.sleep(0.001)
    print(manager.get_valid_token(), flush=True)  # what the SDK asks for before a request
    """
)


def test_8_processes_one_refresh(server: FakeAnthropic, expired_db: Path) -> None:
    go_file = expired_db.parent / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(expired_db), server.token_url, str(go_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    for child in children:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    go_file.touch()
    outcomes = [child.communicate(timeout=60) for child in children]
    exits = [
        (child.returncode, err[-500:]) for child, (_, err) in zip(children, outcomes, strict=True)
    ]
    assert exits == [(0, "")] * 8
    assert (server.token_posts, server.invalid_grants) == (1, 0)
    version, row = stored_row(expired_db)
    assert version == 2 and float(row["expires_at"]) > time.time() + 3000  # type: ignore[arg-type]
    assert {out.strip() for out, _ in outcomes} == {row["access_token"]}  # all use the one
    # The refresh token in the row is the live one: the endpoint still accepts it.
    server.refresh_latency = 0.0
    OAuthTokenManager(store=SQLiteStore(expired_db), token_url=server.token_url).refresh()
    assert (server.token_posts, server.invalid_grants) == (2, 0)


ROTATE = child_code(
    """
    OAuthTokenManager(store=SQLiteStore(sys.argv[1]), token_url=sys.argv[2]).refresh()
    """
)


def rotate_in_another_process(server: FakeAnthropic, db: Path) -> str:
    """Another process refreshes through its own manager; returns the new access token."""
    done = subprocess.run(
        [sys.executable, "-c", ROTATE, str(db), server.token_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    access = stored_row(db)[1]["access_token"]
    assert isinstance(access, str)
    return access


def test_a_rotation_by_another_process_is_adopted_after_poll_interval(
    server: FakeAnthropic, db: Path, clock: Clock
) -> None:
    old, _ = server.issue_tokens(expires_in=3600)
    write_tokens(db, old, server.issue_tokens()[1], 3600)
    manager = OAuthTokenManager(store=SQLiteStore(db), token_url=server.token_url, clock=clock)
    assert manager.get_valid_token() == old
    new = rotate_in_another_process(server, db)
    assert new != old and server.token_posts == 1
    clock.advance(0.5)
    assert manager.get_valid_token() == old  # fresh, within poll_interval: served from memory
    clock.advance(0.6)  # past poll_interval (1.0 s): version() is consulted
    assert manager.get_valid_token() == new
    client = anthropic.Anthropic(credentials=manager, base_url=server.base_url, max_retries=0)
    client.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES)  # type: ignore[arg-type]
    assert [(r.status, r.token) for r in server.api_requests] == [(200, new)]
    assert (server.token_posts, server.invalid_grants) == (1, 0)


def test_a_rotation_by_another_process_is_adopted_after_a_401(
    server: FakeAnthropic, db: Path, clock: Clock
) -> None:
    old, refresh = server.issue_tokens(expires_in=3600)
    write_tokens(db, old, refresh, 3600)
    manager = OAuthTokenManager(store=SQLiteStore(db), token_url=server.token_url, clock=clock)
    client = ClaudeClient(oauth_manager=manager, base_url=server.base_url, max_retries=0)
    new = rotate_in_another_process(server, db)
    server.revoke_access_token(old)  # the clock stands still: only the 401 tells us
    client.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES)  # type: ignore[arg-type]
    assert [(r.status, r.token) for r in server.api_requests] == [(401, old), (200, new)]
    assert (server.token_posts, server.invalid_grants) == (1, 0)
    assert manager.refresh_token == stored_row(db)[1]["refresh_token"]


def test_a_stale_save_raises_store_conflict_and_loses_nothing(db: Path) -> None:
    mine, theirs = SQLiteStore(db), SQLiteStore(db)
    mine.save(token_set(1), expected_version=None)
    seen = mine.version()
    assert theirs.version() == seen
    theirs.save(token_set(2), expected_version=seen)  # another writer rotated meanwhile
    for stale in (seen, None, "1", 99):
        with pytest.raises(StoreConflict) as caught:
            mine.save(token_set(3), expected_version=stale)
        assert caught.value.location == mine.location
    assert same_tokens(mine.load(), token_set(2))
    assert stored_row(db)[0] == 2
    # Under the lock too: the conflict is raised and the lock's commit writes nothing.
    with mine.lock(timeout=5), pytest.raises(StoreConflict):
        mine.save(token_set(3), expected_version=seen)
    assert same_tokens(theirs.load(), token_set(2))
    # After delete() a version is never reused, so a writer that read before it is refused.
    current = mine.version()
    mine.delete()
    assert (mine.load(), mine.version()) == (None, None)
    mine.save(token_set(4), expected_version=None)
    with pytest.raises(StoreConflict):
        theirs.save(token_set(5), expected_version=current)
    assert same_tokens(theirs.load(), token_set(4))
