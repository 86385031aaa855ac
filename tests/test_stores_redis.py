"""RedisStore against a real redis-server: the store contract, the lease, secrets, outages."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis_server as server_helper
from redis_server import RedisServer, free_port
from store_contract import (
    SECRET_ACCESS,
    SECRET_REFRESH,
    check_generation_is_kept,
    check_lock_is_exclusive_across_processes,
    check_round_trip_and_compare_and_set,
    same_tokens,
    token_set,
)

from claude_oauth_auth._errors import StoreConflict, StoreError
from claude_oauth_auth._tokens import TokenSet
from claude_oauth_auth.stores._redis import RedisStore

PASSWORD = "hunter2-redis-" + "p" * 24
LEASE = 1.5
FORK = multiprocessing.get_context("fork")


@pytest.fixture
def protected_server() -> Iterator[RedisServer]:
    with server_helper.redis_server(password=PASSWORD) as server:
        yield server


def secret_free(*texts: str) -> bool:
    return not any(
        secret in text for text in texts for secret in (PASSWORD, SECRET_ACCESS, SECRET_REFRESH)
    )


# ----- the shared contract -------------------------------------------------------------------


def test_round_trip_and_compare_and_set(redis_server: RedisServer) -> None:
    check_round_trip_and_compare_and_set(lambda: RedisStore(redis_server.url))


def test_lock_is_exclusive_across_processes(redis_server: RedisServer) -> None:
    check_lock_is_exclusive_across_processes(lambda: RedisStore(redis_server.url))


def test_client_instead_of_url(redis_server: RedisServer) -> None:
    client = redis_server.client()
    store = RedisStore(client=client, key="fleet:a")
    assert store.location == f"redis://127.0.0.1:{redis_server.port}/0 key=fleet:a"
    check_round_trip_and_compare_and_set(lambda: RedisStore(client=client, key="fleet:a"))


# ----- compare-and-set -----------------------------------------------------------------------


def test_a_stale_save_is_refused_and_the_newer_tokens_kept(redis_server: RedisServer) -> None:
    first, second = RedisStore(redis_server.url), RedisStore(redis_server.url)
    first.save(token_set(1), expected_version=None)
    seen = second.version()
    assert first.version() == seen
    first.save(token_set(2), expected_version=seen)  # worker one rotated the tokens
    with pytest.raises(StoreConflict) as caught:
        second.save(token_set(3), expected_version=seen)  # worker two's view is stale
    assert caught.value.location == second.location
    assert same_tokens(second.load(), token_set(2))
    with pytest.raises(StoreConflict):
        second.save(token_set(3), expected_version=str(seen))  # not one of our versions


def test_a_save_after_delete_never_reuses_a_version(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url)
    store.save(token_set(1), expected_version=None)
    old = store.version()
    store.delete()
    store.save(token_set(2), expected_version=None)
    assert store.version() != old
    with pytest.raises(StoreConflict):
        store.save(token_set(3), expected_version=old)  # a writer that read before delete()
    assert same_tokens(store.load(), token_set(2))


def test_restore_writes_a_login_back_under_its_version_and_the_newest_wins(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(redis_server.url)
    store.save(token_set(1), expected_version=None)
    older = store.version()
    store.save(token_set(2), expected_version=older)
    newer = store.version()
    assert isinstance(older, int) and isinstance(newer, int)
    redis_server.flushall()
    store.restore(token_set(1), version=older)  # a worker that held the older login
    assert store.version() == older and same_tokens(store.load(), token_set(1))
    assert store.load().extra.get("restored") is True  # type: ignore[union-attr]
    with pytest.raises(StoreConflict):
        store.restore(token_set(1), version=older)  # the same version is not written again
    store.restore(token_set(2), version=newer)  # a worker holding the newer one replaces it
    assert store.version() == newer and same_tokens(store.load(), token_set(2))
    with pytest.raises(StoreConflict, match="same or a newer login"):
        store.restore(token_set(1), version=older)  # never over a newer login
    store.save(token_set(3), expected_version=newer)  # saves go on from the restored version
    assert store.version() == newer + 1 and same_tokens(store.load(), token_set(3))
    assert "restored" not in store.load().extra  # type: ignore[union-attr]
    store.delete()
    with pytest.raises(StoreConflict, match="deleted"):
        store.restore(token_set(3), version=newer + 5)  # a logout is not written back
    assert (store.load(), store.version()) == (None, None)


def test_keys_are_separate_and_extras_survive(redis_server: RedisServer) -> None:
    a, b = RedisStore(redis_server.url, key="a"), RedisStore(redis_server.url, key="b")
    tokens = TokenSet(
        "sk-ant-oat01-x" * 3, "sk-ant-ort01-y" * 3, 123.0, ("user:inference",),
        {"client_id": "abc", "token_url": "https://example.test/token", "other": 1},
    )  # fmt: skip
    a.save(tokens, expected_version=None)
    assert b.load() is None
    loaded = a.load()
    assert loaded is not None and loaded == tokens
    assert loaded.extra == {"client_id": "abc", "token_url": "https://example.test/token"}
    stored = json.loads(redis_server.client().hget("a", "tokens"))
    assert set(stored) == {
        "access_token", "refresh_token", "token_expiry", "scopes", "client_id", "token_url",
    }  # fmt: skip


def test_unusable_data_is_a_store_error(redis_server: RedisServer) -> None:
    client = redis_server.client()
    store = RedisStore(redis_server.url, key="bad")
    client.hset("bad", mapping={"tokens": "{not json", "version": "7"})
    with pytest.raises(StoreError, match="not valid JSON"):
        store.load()
    client.hset("bad", "tokens", json.dumps({"refresh_token": "x"}))
    with pytest.raises(StoreError, match='missing "access_token"'):
        store.load()
    client.delete("bad")
    client.set("bad", "a string")
    with pytest.raises(StoreError, match="holds another kind of value"):
        store.version()


# ----- cost ----------------------------------------------------------------------------------


def command_counts(observer: Any) -> dict[str, int]:
    stats = observer.info("commandstats")
    return {name.removeprefix("cmdstat_"): value["calls"] for name, value in stats.items()}


def test_version_is_exactly_one_command(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url)
    store.save(token_set(1), expected_version=None)
    store.version()  # the connection is open: its handshake is not part of version()
    observer = redis_server.client()
    before = command_counts(observer)
    for _ in range(5):
        store.version()
    after = command_counts(observer)
    changed = {name: after[name] - before.get(name, 0) for name in after}
    assert {name: n for name, n in changed.items() if n} == {"hget": 5, "info": 1}


# ----- the lease -----------------------------------------------------------------------------


def _hold_lock(url: str, ready: Any, done: Any, seconds: float, lease: float = LEASE) -> None:
    store = RedisStore(url, lease_seconds=lease)
    with store.lock(timeout=5):
        ready.set()
        time.sleep(seconds)
        done.value = 1


def test_a_killed_holder_frees_the_lease_when_it_runs_out(redis_server: RedisServer) -> None:
    ready, done = FORK.Event(), FORK.Value("i", 0)
    holder = FORK.Process(target=_hold_lock, args=(redis_server.url, ready, done, 600))
    holder.start()
    try:
        assert ready.wait(10)
        store = RedisStore(redis_server.url, lease_seconds=LEASE)
        time.sleep(LEASE * 1.2)  # past one lease: the live holder renewed it
        with pytest.raises(StoreError) as caught, store.lock(timeout=0.3):
            pass
        assert "another worker holds the refresh lease" in str(caught.value)
        assert store.location in str(caught.value)
        os.kill(holder.pid, signal.SIGKILL)  # type: ignore[arg-type]
        holder.join(5)
        killed = time.monotonic()
        assert redis_server.client().pttl("claude-oauth-auth:default:lock") > 0
        with store.lock(timeout=LEASE * 3):
            waited = time.monotonic() - killed
        assert waited <= LEASE + 1.0, waited  # when it runs out, not at the lock's timeout
        assert done.value == 0
    finally:
        if holder.is_alive():
            holder.kill()
            holder.join()


def test_a_live_holder_keeps_the_lease_past_its_length(redis_server: RedisServer) -> None:
    # A lease of 3 s renewed every 1 s: a busy machine may delay a renewal by 2 s.
    lease = 2 * LEASE
    hold = 1.5 * lease
    ready, done = FORK.Event(), FORK.Value("i", 0)
    holder = FORK.Process(target=_hold_lock, args=(redis_server.url, ready, done, hold, lease))
    holder.start()
    try:
        assert ready.wait(10)
        started = time.monotonic()
        store = RedisStore(redis_server.url, lease_seconds=lease)
        with store.lock(timeout=10):
            waited = time.monotonic() - started
            assert done.value == 1  # the holder finished its whole hold first
        assert waited >= hold - 0.2, waited
        holder.join(5)
        assert holder.exitcode == 0
    finally:
        if holder.is_alive():
            holder.kill()
            holder.join()


def test_holds_lock_says_whether_the_lease_is_still_ours(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url, lease_seconds=LEASE)
    assert not store.holds_lock()
    with store.lock(timeout=1):
        assert store.holds_lock()
        redis_server.flushall()  # Redis lost its data, the lease with it
        assert not store.holds_lock()
    assert not store.holds_lock()


def test_the_lease_is_released_on_exit_and_on_error(redis_server: RedisServer) -> None:
    store, other = RedisStore(redis_server.url), RedisStore(redis_server.url)
    with store.lock(timeout=1):
        assert 0 < redis_server.client().pttl("claude-oauth-auth:default:lock") <= 90_000
    with other.lock(timeout=0):
        pass
    with pytest.raises(RuntimeError), store.lock(timeout=1):
        raise RuntimeError("boom")
    with other.lock(timeout=0):
        pass


def test_a_lost_lease_is_logged_not_hidden(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisStore(redis_server.url, lease_seconds=0.3)
    with store.lock(timeout=1):
        redis_server.client().delete("claude-oauth-auth:default:lock")  # as if it ran out
        time.sleep(0.3)  # the renewer notices at its next turn
    assert "lost the refresh lease" in caplog.text
    assert "was gone before it was released" in caplog.text
    assert store.location in caplog.text


# ----- secrets and outages -------------------------------------------------------------------


def test_the_password_never_shows(
    protected_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = protected_server.port
    for url in (protected_server.url, f"redis://default:{PASSWORD}@127.0.0.1:{port}/0"):
        store = RedisStore(url)
        assert store.location == f"redis://127.0.0.1:{port}/0 key=claude-oauth-auth:default"
        store.save(token_set(1), expected_version=store.version())
        assert same_tokens(store.load(), token_set(1))
        assert secret_free(store.location, repr(store), str(vars(store).get("_address")))
    wrong = RedisStore(f"redis://:not-the-{PASSWORD}@127.0.0.1:{port}/0")
    with pytest.raises(StoreError) as caught:
        wrong.load()
    assert "authentication failed" in str(caught.value)
    assert secret_free(str(caught.value), repr(caught.value))

    protected_server.stop()
    errors = []
    for action in (
        store.load,
        store.version,
        store.delete,
        lambda: store.save(token_set(2), expected_version=None),
        lambda: store.lock(timeout=1).__enter__(),
    ):
        with pytest.raises(StoreError) as caught:
            action()
        errors.append(caught.value)
    for error in errors:
        assert str(error).startswith(store.location)
        assert "cannot reach Redis (connection refused)" in str(error)
        assert error.fix and "CLAUDE_TOKEN_STORE" in error.fix
        assert error.__cause__ is None and error.__suppress_context__
        assert secret_free(str(error), repr(error), error.location, error.reason, error.fix)
    assert secret_free(caplog.text)


def test_unreachable_redis_is_a_quick_store_error() -> None:
    port = free_port()  # nothing listens there
    store = RedisStore(f"redis://:{PASSWORD}@127.0.0.1:{port}/3", key="k")
    assert store.location == f"redis://127.0.0.1:{port}/3 key=k"
    started = time.monotonic()
    for action in (store.load, store.version, lambda: store.lock(timeout=5).__enter__()):
        with pytest.raises(StoreError) as caught:
            action()
        assert caught.value.location == store.location
        assert caught.value.reason == "cannot reach Redis (connection refused)"
        assert secret_free(str(caught.value))
    assert time.monotonic() - started < 2


def test_redis_stopped_then_back(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url)
    store.save(token_set(1), expected_version=None)
    redis_server.stop()
    with pytest.raises(StoreError, match="cannot reach Redis"):
        store.version()
    redis_server.start()  # same port, empty (no persistence)
    assert store.version() is None
    with store.lock(timeout=1):
        store.save(token_set(2), expected_version=None)
    assert same_tokens(store.load(), token_set(2))


def test_the_acl_user_in_the_fleets_docs_is_enough_and_confined(
    redis_server: RedisServer,
) -> None:
    """docs/fleets.md's ACL line: the whole store contract works, another key is refused."""
    from pathlib import Path

    docs = (Path(__file__).parent.parent / "docs" / "fleets.md").read_text()
    line = next(text.strip() for text in docs.splitlines() if "ACL SETUSER" in text)
    _, _, user, *rules = line.split()
    rules = [">acl-user-pw" if rule == ">PASSWORD" else rule for rule in rules]
    redis_server.client().execute_command("ACL", "SETUSER", user, *rules)
    url = f"redis://{user}:acl-user-pw@127.0.0.1:{redis_server.port}/0"
    check_round_trip_and_compare_and_set(lambda: RedisStore(url, lease_seconds=0.6))
    store = RedisStore(url, lease_seconds=0.6)
    with store.lock(timeout=1):
        time.sleep(0.5)  # renewed at least once
    store.save(token_set(1), expected_version=None)
    version = store.version()
    redis_server.flushall()
    store.restore(token_set(1), version=version)
    store.delete()
    assert not store.may_restore()
    with pytest.raises(StoreError, match="may not run this command or use this key"):
        RedisStore(url, key="another-app:secret").load()


def test_a_url_picks_the_key(redis_server: RedisServer) -> None:
    from claude_oauth_auth.stores import store_from_url

    store = store_from_url(f"{redis_server.url}?key=team-a:login")
    assert isinstance(store, RedisStore) and store.key == "team-a:login"
    assert store.location == f"redis://127.0.0.1:{redis_server.port}/0 key=team-a:login"
    store.save(token_set(1), expected_version=None)
    assert redis_server.client().exists("team-a:login")
    assert RedisStore(redis_server.url).load() is None  # the default key is another login
    with pytest.raises(StoreError, match="cannot be empty") as caught:
        store_from_url(f"redis://:{PASSWORD}@127.0.0.1:{redis_server.port}/0?key=")
    assert secret_free(str(caught.value))


# ----- construction --------------------------------------------------------------------------


def test_locations() -> None:
    assert RedisStore("rediss://u:p@Cache.Example:6380/2").location == (
        "rediss://cache.example:6380/2 key=claude-oauth-auth:default"
    )
    assert RedisStore("redis://h?db=4&password=p").location == "redis://h:6379/4 key=" + (
        "claude-oauth-auth:default"
    )
    assert RedisStore("redis://[::1]:7000", key="x").location == "redis://[::1]:7000/0 key=x"
    with pytest.raises(StoreError, match="not a Redis URL") as caught:
        RedisStore("http://u:secret-pw@h/0")
    assert "secret-pw" not in str(caught.value)
    with pytest.raises(StoreError, match="invalid port"):
        RedisStore("redis://h:port/0")
    with pytest.raises(TypeError):
        RedisStore()
    with pytest.raises(TypeError):
        RedisStore("redis://h", client=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RedisStore("redis://h", lease_seconds=0)
    store = RedisStore("redis://h")
    assert store.writable and store.poll_interval is None


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )


def test_redis_is_imported_only_on_first_use(redis_server: RedisServer) -> None:
    result = run_python(f"""
        import sys
        import claude_oauth_auth, claude_oauth_auth.stores
        assert "redis" not in sys.modules and "anthropic" not in sys.modules
        from claude_oauth_auth.stores import RedisStore
        assert RedisStore.__module__ == "claude_oauth_auth.stores._redis"
        store = RedisStore({redis_server.url!r})
        print(store.location, repr(store))
        assert "redis" not in sys.modules, "imported before first use"
        assert store.version() is None
        assert "redis" in sys.modules
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("ok\n")


def test_without_the_redis_library() -> None:
    result = run_python("""
        import sys
        sys.modules["redis"] = None  # as if it were not installed
        from claude_oauth_auth.stores._redis import RedisStore
        store = RedisStore("redis://:pw-secret@127.0.0.1:1/0")
        try:
            store.load()
        except Exception as error:
            print(type(error).__name__, "|", error)
    """)
    assert result.returncode == 0, result.stderr
    clone = Path(__file__).parents[1]
    assert result.stdout == (
        "StoreError | redis://127.0.0.1:1/0 key=claude-oauth-auth:default: the redis library "
        f"is not installed (pip install 'redis>=5', or pip install -e '{clone}[redis]')\n"
    )


def test_a_hung_redis_costs_one_timeout_then_fails_fast() -> None:
    """A server that accepts connections and never answers (a hung Redis, a dead proxy): one
    caller waits out the socket timeout, the ones right after it fail at once."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        store = RedisStore(f"redis://:{PASSWORD}@127.0.0.1:{listener.getsockname()[1]}/0")
        started = time.monotonic()
        with pytest.raises(StoreError, match=r"cannot reach Redis \(timed out\)"):
            store.version()
        assert time.monotonic() - started >= 4
        started = time.monotonic()
        for action in (store.version, store.load, lambda: store.lock(timeout=5).__enter__()):
            with pytest.raises(StoreError, match="timed out a moment ago") as caught:
                action()
            assert secret_free(str(caught.value))
        assert time.monotonic() - started < 0.5
    finally:
        stop.set()
        acceptor.join(5)
        for connection in accepted:
            connection.close()
        listener.close()


def test_generation_is_kept(redis_server: RedisServer) -> None:
    check_generation_is_kept(lambda: RedisStore(redis_server.url))
