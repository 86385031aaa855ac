"""``keep-fresh`` re-reads the store before it declares a login dead (issue 22, item 9).

Redis is flushed while the sidecar holds an older login than a worker: the sidecar writes its
older login back and spends it (``invalid_grant``), then a worker puts the newer one back. The
sidecar must notice and go on, not exit 1 while the fleet is fine.
"""

from __future__ import annotations

import time

from fakeapi import FakeAnthropic
from redis_server import RedisServer
from test_fleet import login_survives, seed
from test_keep_fresh import Sidecar, wait_for

from claude_oauth_auth import OAuthTokenManager
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
        worker.refresh()  # the worker rotates it; the sidecar does not look (fresh token)
        redis_server.flushall()
        wait_for(lambda: oauth_env.invalid_grants == 1)  # the sidecar spent its older login
        time.sleep(1.5)  # the worker comes to the store on its next request in its window
        worker.check_store()  # the worker notices and puts its newer login back
        time.sleep(3.0)  # the sidecar re-reads the store meanwhile
        assert sidecar.process.poll() is None, (sidecar.lines, sidecar.finish())
        stored = store.load()  # the worker's login, or the sidecar's one refresh of it
        assert stored is not None and oauth_env.invalid_grants == 1, sidecar.lines
        assert login_survives(redis_server.url, oauth_env)
    finally:
        code, stderr = sidecar.stop()
    assert code == 0, (sidecar.lines, stderr)
    assert not any("the login is dead" in line for line in sidecar.lines), sidecar.lines
