"""One login for a fleet: many hosts and processes on one RedisStore, against a real redis-server.

Each simulated host is its own HOME (no shared token file); its worker processes are forked
from this one (so ``anthropic`` is imported once) and reach the login only through Redis.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic  # imported before forking, so workers start fast
import pytest
from conftest import Clock
from fakeapi import FakeAnthropic
from redis_server import RedisServer

from claude_oauth_auth import ClaudeClient, OAuthTokenManager
from claude_oauth_auth.lifecycle._grant import REFRESH_TIMEOUT_SECONDS
from claude_oauth_auth.lifecycle._writeback import RESTORE_GRACE_SECONDS
from claude_oauth_auth.stores import RedisStore, StoreError, TokenSet

FORK = multiprocessing.get_context("fork")
LEASE = 1.5
MODEL = "claude-test-1"


# ----- a fleet of worker processes -----------------------------------------------------------


def _request(client: Any) -> None:
    client.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "hi"}])


def _fleet_process(
    home: str, threads: int, seconds: float, go: Any, results: Any, lease: float | None
) -> None:
    """One worker process: build a client when released, then ``threads`` threads send
    requests (one each, or for ``seconds``). Puts ``(errors, requests, slowest)`` on results."""
    os.environ["HOME"] = home
    errors: list[str] = []
    latencies: list[float] = []
    guard = threading.Lock()
    try:
        go.wait(60)
        if lease is None:
            client = ClaudeClient(max_retries=2)  # CLAUDE_TOKEN_STORE names the store
        else:
            url = os.environ["FLEET_REDIS_URL"]
            client = ClaudeClient(store=RedisStore(url, lease_seconds=lease), max_retries=2)
        barrier = threading.Barrier(threads)
        deadline = time.monotonic() + seconds

        def work() -> None:
            barrier.wait()
            while True:
                started = time.monotonic()
                try:
                    _request(client)
                except Exception as error:
                    with guard:
                        errors.append(f"{type(error).__name__}: {error}")
                with guard:
                    latencies.append(time.monotonic() - started)
                if time.monotonic() >= deadline:
                    return

        pool = [threading.Thread(target=work) for _ in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
    except Exception as error:
        errors.append(f"{type(error).__name__}: {error}")
    results.put((errors, len(latencies), max(latencies, default=0.0)))


@dataclass
class Fleet:
    errors: list[str] = field(default_factory=list)
    requests: int = 0
    slowest: float = 0.0


def run_fleet(
    root: Path,
    *,
    hosts: int,
    processes: int,
    threads: int,
    seconds: float = 0.0,
    lease: float | None = None,
    during: Callable[[], None] | None = None,
) -> Fleet:
    """Start every worker, release them together, run ``during`` meanwhile, gather results."""
    go, results = FORK.Event(), FORK.Queue()
    workers = []
    for host in range(hosts):
        home = root / f"host-{host}"
        home.mkdir(parents=True)
        for _ in range(processes):
            worker = FORK.Process(
                target=_fleet_process, args=(str(home), threads, seconds, go, results, lease)
            )
            worker.start()
            workers.append(worker)
    try:
        go.set()
        if during is not None:
            during()
        fleet = Fleet()
        for _ in workers:
            errors, requests, slowest = results.get(timeout=180)
            fleet.errors += errors
            fleet.requests += requests
            fleet.slowest = max(fleet.slowest, slowest)
        for worker in workers:
            worker.join(30)
        assert [worker.exitcode for worker in workers] == [0] * len(workers)
        return fleet
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
                worker.join()


def seed(url: str, server: FakeAnthropic, expires_in: float) -> TokenSet:
    """A login issued by the fake server, stored in Redis."""
    access, refresh = server.issue_tokens(expires_in=expires_in)
    tokens = TokenSet(access, refresh, time.time() + expires_in, ("user:inference",))
    RedisStore(url).save(tokens, expected_version=None)
    return tokens


def login_survives(url: str, server: FakeAnthropic) -> bool:
    """The refresh token left in Redis is one the token endpoint still accepts."""
    stored = RedisStore(url).load()
    return stored is not None and server.refresh_token_usable(stored.refresh_token)


# ----- the storm -----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_fleet_storm_makes_one_refresh(
    redis_server: RedisServer,
    oauth_env: FakeAnthropic,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """4 hosts x 4 processes x 8 threads released together on an expired token in Redis."""
    seed(redis_server.url, oauth_env, expires_in=-5)
    oauth_env.refresh_latency = 0.3
    monkeypatch.setenv("CLAUDE_TOKEN_STORE", redis_server.url)
    fleet = run_fleet(tmp_path, hosts=4, processes=4, threads=8)
    assert fleet.errors == []
    assert fleet.requests == 128
    assert (oauth_env.token_posts, oauth_env.invalid_grants) == (1, 0)
    assert sum(r.status == 200 for r in oauth_env.api_requests) == 128
    assert login_survives(redis_server.url, oauth_env)
    assert not list(tmp_path.glob("host-*/.config/claude/auth.json"))  # no token file anywhere


def _hold_the_lease_then_hang(url: str, holding: Any) -> None:
    """A worker that takes the refresh lease and stops dead just before its POST."""

    def hang(token_url: str, refresh_token: str, client_id: str) -> TokenSet:
        holding.set()
        time.sleep(600)
        raise AssertionError("not reached")

    # Before its POST the holder makes its lease outlast the POST's timeout (+ 5 s): a holder
    # killed in its POST costs that long, since no one can tell it from a slow one.
    manager = OAuthTokenManager(
        store=RedisStore(url, lease_seconds=LEASE), grant=hang, refresh_timeout=1.0
    )
    manager.get_valid_token()


@pytest.mark.slow
def test_a_lease_holder_killed_before_its_post_costs_one_lease(
    redis_server: RedisServer,
    oauth_env: FakeAnthropic,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed(redis_server.url, oauth_env, expires_in=-5)
    monkeypatch.setenv("FLEET_REDIS_URL", redis_server.url)
    holding = FORK.Event()
    holder = FORK.Process(target=_hold_the_lease_then_hang, args=(redis_server.url, holding))
    holder.start()
    killed_at: list[float] = []

    def kill_the_holder() -> None:
        time.sleep(LEASE)  # the others are queued on the lease by now
        os.kill(holder.pid, signal.SIGKILL)  # type: ignore[arg-type]
        killed_at.append(time.monotonic())

    try:
        assert holding.wait(30), "the holder never took the lease"
        started = time.monotonic()
        fleet = run_fleet(
            tmp_path, hosts=2, processes=2, threads=4, lease=LEASE, during=kill_the_holder
        )
        finished = time.monotonic()
    finally:
        holder.kill()
        holder.join()
    assert fleet.errors == []
    assert fleet.requests == 16
    assert (oauth_env.token_posts, oauth_env.invalid_grants) == (1, 0)  # the holder never POSTed
    # The dead holder's lease (extended to its POST's timeout + 5 s) ran out before anyone
    # could refresh, and then the fleet went on at once.
    assert LEASE / 2 <= finished - killed_at[0] < 30
    assert finished - started < 30
    assert login_survives(redis_server.url, oauth_env)


# ----- Redis losing its data, or going away --------------------------------------------------


@pytest.mark.slow
def test_redis_flushed_mid_run_loses_no_login(
    redis_server: RedisServer,
    oauth_env: FakeAnthropic,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tokens live 3 s and are refreshed 1 s before expiry; Redis is emptied twice meanwhile."""
    oauth_env.access_token_lifetime = 3
    seed(redis_server.url, oauth_env, expires_in=3)
    monkeypatch.setenv("CLAUDE_TOKEN_STORE", redis_server.url)
    monkeypatch.setenv("CLAUDE_TOKEN_REFRESH_THRESHOLD", "1")

    def flush_twice() -> None:
        for _ in range(2):
            time.sleep(2.5)
            redis_server.flushall()

    started = time.monotonic()
    fleet = run_fleet(tmp_path, hosts=2, processes=2, threads=3, seconds=7, during=flush_twice)
    elapsed = time.monotonic() - started
    assert fleet.errors == []
    assert oauth_env.invalid_grants == 0
    # About one refresh every 2 s (Redis keeps whole-second expiries), not one per worker.
    assert 2 <= oauth_env.token_posts <= elapsed + 2
    assert login_survives(redis_server.url, oauth_env)


def _chain(error: BaseException | None) -> str:
    texts = []
    while error is not None:
        texts.append(f"{type(error).__name__}: {error}")
        error = error.__cause__ or error.__context__
    return " <- ".join(texts)


def test_an_older_login_written_back_after_a_flush_is_replaced_not_spent(
    redis_server: RedisServer, oauth_env: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    """Worker B refreshed; Redis lost its data before workers A and C read the new login. A
    writes back the older login it holds; neither A nor C (which reads it from Redis) spends it
    while its access token is valid. B (checking the store twice a second until the login it
    replaced expires) puts the newer one back, and A and C adopt it. No refresh token is sent
    twice."""
    caplog.set_level(logging.WARNING, logger="claude_oauth_auth")
    seed(redis_server.url, oauth_env, expires_in=30)
    worker_a = OAuthTokenManager(store=RedisStore(redis_server.url), refresh_threshold=60)
    worker_b = OAuthTokenManager(store=RedisStore(redis_server.url))
    worker_c = OAuthTokenManager(store=RedisStore(redis_server.url), refresh_threshold=60)
    older = worker_a.access_token  # due: its next use would refresh
    newer = worker_b.refresh()
    redis_server.flushall()
    assert worker_a.get_valid_token() == older  # due, but still valid: served, not spent
    stored = RedisStore(redis_server.url).load()
    assert stored is not None and stored.access_token == older
    assert "wrote back the OAuth login this process holds" in caplog.text
    assert worker_c.get_valid_token() == older  # read back from Redis: not spent either
    time.sleep(0.6)
    assert worker_b.get_valid_token() == newer  # its check found the older login
    assert "wrote back the newer one" in caplog.text
    assert worker_a.get_valid_token() == newer
    assert worker_c.get_valid_token() == newer
    assert (oauth_env.token_posts, oauth_env.invalid_grants) == (1, 0)
    assert login_survives(redis_server.url, oauth_env)


def test_a_token_the_api_refuses_during_the_grace_waits_for_the_newer_login(
    redis_server: RedisServer, oauth_env: FakeAnthropic
) -> None:
    """As above, but the API refuses A's older access token (a 401) while the written-back
    login is in its grace: A still waits for B's newer login instead of spending the older."""
    seed(redis_server.url, oauth_env, expires_in=30)
    worker_a = OAuthTokenManager(store=RedisStore(redis_server.url), refresh_threshold=60)
    worker_b = OAuthTokenManager(store=RedisStore(redis_server.url))
    older = worker_a.access_token
    assert older is not None
    newer = worker_b.refresh()
    redis_server.flushall()
    assert worker_a.get_valid_token() == older  # written back, in its grace

    def b_checks_the_store() -> None:
        time.sleep(0.6)
        worker_b.get_valid_token()

    checker = threading.Thread(target=b_checks_the_store)
    checker.start()
    try:
        assert worker_a.get_valid_token(rejected=older) == newer
    finally:
        checker.join()
    assert (oauth_env.token_posts, oauth_env.invalid_grants) == (1, 0)


def test_after_an_early_refresh_redis_is_checked_only_in_the_old_logins_window(
    redis_server: RedisServer, oauth_env: FakeAnthropic
) -> None:
    """The check for an older login written back runs while the workers holding the replaced
    login come to the store (its refresh window), not for the whole rest of its life."""
    seed(redis_server.url, oauth_env, expires_in=3600)
    worker = OAuthTokenManager(store=RedisStore(redis_server.url))
    worker.refresh()  # an hour early: the replaced login is due in 55 min
    observer = redis_server.client()
    before = observer.info("commandstats")
    for _ in range(3):
        worker.get_valid_token()
        time.sleep(0.3)
    after = observer.info("commandstats")
    changed = {
        name
        for name, stats in after.items()
        if stats["calls"] != before.get(name, {}).get("calls", 0)
    }
    assert changed == {"cmdstat_info"}


def test_a_second_flush_during_the_written_back_wait_is_written_back_again(
    redis_server: RedisServer, oauth_env: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    """An expired login, and Redis loses its data: the worker writes its login back and waits
    the grace under the lease. Redis loses its data again meanwhile, lease included: the
    worker notices before spending, takes the lease again, and refreshes once."""
    caplog.set_level(logging.WARNING, logger="claude_oauth_auth")
    seed(redis_server.url, oauth_env, expires_in=-5)
    manager = OAuthTokenManager(store=RedisStore(redis_server.url))
    redis_server.flushall()
    again = threading.Timer(1.0, redis_server.flushall)
    again.start()
    try:
        manager.get_valid_token()
    finally:
        again.join()
    assert caplog.text.count("was empty (its data was lost, not deleted)") == 2
    assert (oauth_env.token_posts, oauth_env.invalid_grants) == (1, 0)
    assert login_survives(redis_server.url, oauth_env)


def test_redis_stopped_then_back(
    redis_server: RedisServer,
    oauth_env: FakeAnthropic,
    caplog: pytest.LogCaptureFixture,
    clock: Clock,
) -> None:
    """Valid tokens keep working from memory; the refresh that needs Redis fails with one
    clear error and no POST; once Redis is back (empty), work resumes without a restart.
    The token lives 8 s and is due 4 s before expiry; the client's clock says when."""
    caplog.set_level(logging.WARNING, logger="claude_oauth_auth")
    seeded = clock()
    seed(redis_server.url, oauth_env, expires_in=8)

    def at(seconds: float) -> None:  # this long after the login was stored
        clock.advance(seeded + seconds - clock())

    store = RedisStore(redis_server.url)
    client = ClaudeClient(store=store, refresh_threshold=4, max_retries=0, clock=clock)
    _request(client)
    redis_server.stop()
    _request(client)  # fresh: served from memory
    at(4.3)  # inside the refresh window, still valid
    _request(client)
    _request(client)
    assert "cannot reach Redis" in caplog.text
    assert caplog.text.count("cannot reach Redis") == 1  # once per backoff step, not per request
    at(8.3)  # expired
    with pytest.raises(Exception) as caught:
        _request(client)
    chain = _chain(caught.value)
    assert f"{store.location}: cannot reach Redis (connection refused)" in chain, chain
    assert oauth_env.token_posts == 0  # no local refresh that would fork the chain
    redis_server.start()  # same port, no persistence: empty
    # The client writes its login back and, before spending it, waits on its clock for a newer
    # login from another worker and for any POST begun before the loss (the refresh timeout),
    # which this timer moves on meanwhile.
    wait = max(RESTORE_GRACE_SECONDS, REFRESH_TIMEOUT_SECONDS) + 0.1
    grace = threading.Timer(0.3, clock.advance, args=(wait,))
    grace.start()
    try:
        _request(client)
    finally:
        grace.join()
    assert oauth_env.token_posts == 1 and oauth_env.invalid_grants == 0
    assert login_survives(redis_server.url, oauth_env)
    assert "wrote back the OAuth login" in caplog.text


def test_a_deleted_login_is_not_written_back_nor_spent(
    redis_server: RedisServer, oauth_env: FakeAnthropic
) -> None:
    """``delete()`` (logout, move) is not data loss: a worker that still holds the login
    neither writes it back nor spends its refresh token (that would fork the chain)."""
    seed(redis_server.url, oauth_env, expires_in=-5)
    store = RedisStore(redis_server.url)
    manager = OAuthTokenManager(store=store)
    store.delete()
    assert not store.may_restore()
    with pytest.raises(anthropic.AuthenticationError, match="no refresh token"):
        manager.get_valid_token()
    assert oauth_env.token_posts == 0
    assert store.version() is None and store.load() is None
    redis_server.flushall()
    assert store.may_restore()


def test_a_fresh_token_costs_no_redis_command(
    redis_server: RedisServer, oauth_env: FakeAnthropic
) -> None:
    seed(redis_server.url, oauth_env, expires_in=3600)
    client = ClaudeClient(store=RedisStore(redis_server.url), max_retries=0)
    _request(client)
    observer = redis_server.client()
    before = observer.info("commandstats")
    for _ in range(20):
        _request(client)
    after = observer.info("commandstats")
    changed = {
        name: stats["calls"] - before.get(name, {}).get("calls", 0)
        for name, stats in after.items()
        if stats["calls"] != before.get(name, {}).get("calls", 0)
    }
    assert changed == {"cmdstat_info": 1}
    assert oauth_env.api_requests_count() == 21


def test_an_unreachable_store_is_a_store_error_from_lock_and_load() -> None:
    from redis_server import free_port

    store = RedisStore(f"redis://:pw@127.0.0.1:{free_port()}/0", lease_seconds=LEASE)
    with pytest.raises(StoreError):
        store.load()
    with pytest.raises(StoreError), store.lock(timeout=1):
        pass
    with pytest.raises(StoreError):
        store.may_restore()
