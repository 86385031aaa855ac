"""``keep-fresh`` re-reads the store before it declares a login dead (issue 22, item 9).

Redis is flushed, or rolled back to an older snapshot, while a worker or the sidecar holds a
newer login than the store: the newer one is put back before anyone spends the older one,
and the sidecar goes on, never exiting 1 while the fleet is fine.
"""

from __future__ import annotations

import time

from fakeapi import FakeAnthropic
from redis_server import RedisServer
from test_fleet import login_survives, seed
from test_keep_fresh import Sidecar, wait_for

from claude_oauth_auth import OAuthTokenManager
from claude_oauth_auth.lifecycle._manager import check_store
from claude_oauth_auth.stores import RedisStore


def test_a_refused_refresh_after_a_flush_is_not_a_dead_login_when_a_worker_holds_a_newer_one(
    redis_server: RedisServer, oauth_env: FakeAnthropic
) -> None:
    seed(redis_server.url, oauth_env, expires_in=3600)
    store = RedisStore(redis_server.url)
    sidecar = Sidecar(
        "--store", redis_server.url, "--ahead", "600", "--jitter", "0", "--check-every", "0.2"
    )
    try:
        wait_for(lambda: bool(sidecar.lines))  # the sidecar holds the seeded login
        worker = OAuthTokenManager(store=RedisStore(redis_server.url))
        worker.refresh()  # the worker rotates it; the sidecar adopts it on a check
        time.sleep(1.0)
        redis_server.flushall()
        # The sidecar writes back what it holds; nobody spends a written-back login before a
        # worker holding a newer one has had ``refresh_timeout`` to put it back.
        time.sleep(1.0)
        check_store(worker)  # the worker puts its login back (if the sidecar's is older)
        time.sleep(2.0)
        assert sidecar.process.poll() is None, (sidecar.lines, sidecar.finish())
        stored = store.load()
        assert stored is not None and stored.refresh_token == worker.refresh_token
        assert oauth_env.invalid_grants == 0, sidecar.lines
        assert login_survives(redis_server.url, oauth_env)
    finally:
        code, stderr = sidecar.stop()
    assert code == 0, (sidecar.lines, stderr)
    assert not any("the login is dead" in line for line in sidecar.lines), sidecar.lines


def test_a_rollback_to_an_older_snapshot_is_undone_by_the_sidecar_within_a_check(
    redis_server: RedisServer, oauth_env: FakeAnthropic
) -> None:
    """Issue 22 item 1: Redis comes back from a snapshot taken before the last rotation (the
    older login under its older version, no mark). The sidecar, which adopted the newer login
    on an earlier check, puts it back on its next check, before anyone spends the older one."""
    import redis

    seed(redis_server.url, oauth_env, expires_in=3600)
    store = RedisStore(redis_server.url)
    client = redis.Redis.from_url(redis_server.url)
    snapshot = client.dump(store.key)
    assert isinstance(snapshot, bytes)
    sidecar = Sidecar(
        "--store", redis_server.url, "--ahead", "600", "--jitter", "0", "--check-every", "0.2"
    )
    try:
        wait_for(lambda: bool(sidecar.lines))
        worker = OAuthTokenManager(store=RedisStore(redis_server.url))
        worker.refresh()  # a newer login, saved; the sidecar adopts it on a check
        newer = worker.refresh_token
        time.sleep(1.0)
        client.restore(store.key, 0, snapshot, replace=True)  # back to the older snapshot

        def newer_is_back() -> bool:
            stored = store.load()
            return stored is not None and stored.refresh_token == newer

        wait_for(newer_is_back, seconds=3)
        assert oauth_env.invalid_grants == 0
        assert login_survives(redis_server.url, oauth_env)
    finally:
        code, stderr = sidecar.stop()
    assert code == 0, (sidecar.lines, stderr)
