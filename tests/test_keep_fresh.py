"""``claude-oauth-auth keep-fresh``: a sidecar refreshes a shared login before any worker must."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
import redis_server as redis_helper
from fakeapi import FakeAnthropic
from redis_server import RedisServer
from test_fleet import login_survives, run_fleet, seed

from claude_oauth_auth.stores import RedisStore

LIFETIME = 5.0  # seconds a token from the fake endpoint lives
AHEAD, JITTER = 3.5, 0.5  # the sidecar refreshes 3 to 3.5 s before expiry
WORKER_THRESHOLD = "1"  # workers would refresh 1 s before expiry


class Sidecar:
    """``keep-fresh`` in its own process; its output lines are collected as they come."""

    def __init__(self, *arguments: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "claude_oauth_auth", "keep-fresh", *arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        self.lines: list[str] = []
        self._result: tuple[int, str] | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def refreshes(self) -> int:
        return sum("keep-fresh: refreshed" in line for line in self.lines)

    def health_url(self) -> str:
        """Once it serves ``--health-port``: its address, as its line says."""
        wait_for(lambda: any("serving /healthz" in line for line in self.lines))
        [line] = [line for line in self.lines if "serving /healthz" in line]
        return line.rsplit(" ", 1)[1]

    def stop(self) -> tuple[int, str]:
        """SIGTERM; the exit code and standard error."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.finish()

    def finish(self, timeout: float = 30) -> tuple[int, str]:
        if self._result is not None:
            return self._result
        try:
            self.process.wait(timeout)  # standard output is read by the reader thread only
        except subprocess.TimeoutExpired:
            message = f"keep-fresh still running after {timeout:g} s: {self.lines}"
            raise AssertionError(message) from None
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        self._reader.join(5)
        assert self.process.stderr is not None
        stderr = self.process.stderr.read()
        self.process.stderr.close()
        self._result = (self.process.returncode, stderr)
        return self._result


@pytest.mark.slow
def test_keep_fresh_spares_a_64_worker_fleet_every_refresh(
    redis_server: RedisServer,
    oauth_env: FakeAnthropic,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over three token lifetimes the workers never refresh (0 POSTs of theirs, so no request
    refreshed or queued behind a refresh): they only adopt what the sidecar saved."""
    oauth_env.access_token_lifetime = LIFETIME
    oauth_env.refresh_latency = 0.3
    seed(redis_server.url, oauth_env, expires_in=LIFETIME)
    monkeypatch.setenv("CLAUDE_TOKEN_STORE", redis_server.url)
    monkeypatch.setenv("CLAUDE_TOKEN_REFRESH_THRESHOLD", WORKER_THRESHOLD)
    sidecar = Sidecar("--ahead", str(AHEAD), "--jitter", str(JITTER))
    try:
        fleet = run_fleet(tmp_path, hosts=2, processes=2, threads=16, seconds=3 * LIFETIME)
    finally:
        code, stderr = sidecar.stop()
    assert code == 0, stderr
    assert fleet.errors == []
    assert fleet.requests >= 64
    assert sidecar.refreshes >= 3, sidecar.lines
    assert oauth_env.invalid_grants == 0
    assert oauth_env.token_posts == sidecar.refreshes  # the workers made none
    assert login_survives(redis_server.url, oauth_env)
    assert sidecar.lines[-1].endswith(f"stopped after {sidecar.refreshes} refresh(es)")
    for line in sidecar.lines:
        assert "sk-ant-o" not in line  # at most the last 4 characters of a token
    print(
        f"\nkeep-fresh: {fleet.requests} requests by 64 workers over {3 * LIFETIME:g} s, "
        f"{sidecar.refreshes} sidecar refreshes, worker token POSTs "
        f"{oauth_env.token_posts - sidecar.refreshes}, slowest request {fleet.slowest:.3f} s"
    )


def test_an_ahead_as_long_as_the_tokens_lifetime_is_a_usage_error(
    redis_server: RedisServer, oauth_env: FakeAnthropic
) -> None:
    """Tokens granted for 3 s, refreshed 5 s ahead: keep-fresh would refresh without a pause.
    The lifetime is counted from before the refresh, so a slow refresh on a busy machine (as a
    CI run saw: 5 s tokens, --ahead 3.5) is not taken for a short lifetime."""
    oauth_env.access_token_lifetime = 3.0
    oauth_env.refresh_latency = 0.3
    seed(redis_server.url, oauth_env, expires_in=1.0)
    sidecar = Sidecar("--store", redis_server.url, "--ahead", "5", "--jitter", "0")
    code, stderr = sidecar.finish()
    assert code == 2, (stderr, sidecar.lines)
    assert "grants tokens for 3 s, no longer than --ahead (5 s)" in stderr
    assert sidecar.refreshes == 1


@pytest.mark.slow
def test_two_sidecars_adopt_rather_than_repeat(
    redis_server: RedisServer, oauth_env: FakeAnthropic
) -> None:
    """Two sidecars wake together each cycle: one refreshes, the other adopts under the lease."""
    lifetime, ahead = 8.0, 4.0
    oauth_env.access_token_lifetime = lifetime
    seed(redis_server.url, oauth_env, expires_in=lifetime)
    options = ("--store", redis_server.url, "--ahead", str(ahead), "--jitter", "0")
    first, second = Sidecar(*options), Sidecar(*options)
    time.sleep(1.5 * lifetime)
    results = [first.stop(), second.stop()]
    assert [code for code, _ in results] == [0, 0], results
    assert oauth_env.invalid_grants == 0
    assert oauth_env.token_posts == first.refreshes + second.refreshes >= 2
    moments = sorted(
        datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()
        for line in first.lines + second.lines
        if "keep-fresh: refreshed" in line
    )
    gaps = [later - earlier for earlier, later in itertools.pairwise(moments)]
    # A cycle is lifetime - ahead = 4 s (less up to 1 s: Redis keeps whole-second expiries).
    assert min(gaps) > 2.5, (gaps, first.lines, second.lines)
    assert login_survives(redis_server.url, oauth_env)


def test_keep_fresh_exits_1_on_a_dead_login(
    redis_server: RedisServer, oauth_env: FakeAnthropic
) -> None:
    tokens = seed(redis_server.url, oauth_env, expires_in=-5)
    oauth_env.revoke_refresh_token(tokens.refresh_token or "")
    sidecar = Sidecar("--store", redis_server.url, "--ahead", "60", "--jitter", "1")
    code, stderr = sidecar.finish()
    assert code == 1, (sidecar.lines, stderr)
    assert "the login is dead" in sidecar.lines[-1], stderr
    assert "invalid_grant" in sidecar.lines[-1] or "refused" in sidecar.lines[-1]
    assert oauth_env.token_posts >= 1


def test_keep_fresh_with_nothing_to_keep_and_bad_options(redis_server: RedisServer) -> None:
    sidecar = Sidecar("--store", redis_server.url)
    code, stderr = sidecar.finish()
    assert code == 1
    assert RedisStore(redis_server.url).location in stderr
    assert "log in again" in stderr
    sidecar = Sidecar("--store", redis_server.url, "--ahead", "10", "--jitter", "20")
    code, stderr = sidecar.finish()
    assert code == 2 and "--jitter" in stderr


def test_sigterm_while_waiting_stops_at_once_and_no_password_shows(
    oauth_env: FakeAnthropic,
) -> None:
    password = "sidecar-redis-password-" + "z" * 16
    with redis_helper.redis_server(password=password) as protected:
        seed(protected.url, oauth_env, expires_in=3600)
        sidecar = Sidecar("--store", protected.url, "--ahead", "600", "--jitter", "60")
        deadline = time.monotonic() + 30
        while not sidecar.lines and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sidecar.lines and "keeping the OAuth login" in sidecar.lines[0]
        assert f"redis://127.0.0.1:{protected.port}/0 key=" in sidecar.lines[0]
        stopped = time.monotonic()
        code, stderr = sidecar.stop()
    assert code == 0 and time.monotonic() - stopped < 5
    assert sidecar.lines[-1].endswith("stopped after 0 refresh(es)")
    assert oauth_env.token_posts == 0
    assert password not in "\n".join(sidecar.lines) + stderr


def test_a_sidecar_started_before_redis_waits_for_it(
    oauth_env: FakeAnthropic, tmp_path: Path
) -> None:
    server = redis_helper.RedisServer(redis_helper.require_redis_server(), tmp_path)
    sidecar = Sidecar("--store", server.url, "--ahead", "600", "--jitter", "60")
    try:
        deadline = time.monotonic() + 30
        while not sidecar.lines and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sidecar.lines and "cannot reach Redis (connection refused)" in sidecar.lines[0]
        server.start()
        seed(server.url, oauth_env, expires_in=3600)
        while not any("keeping" in line for line in sidecar.lines):
            assert time.monotonic() < deadline, sidecar.lines
            time.sleep(0.05)
        code, _ = sidecar.stop()
        assert code == 0
    finally:
        sidecar.stop()
        server.stop()


def wait_for(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_sidecar_writes_back_a_login_redis_lost_and_stops_on_a_logout(
    redis_server: RedisServer, oauth_env: FakeAnthropic
) -> None:
    """After a flush the sidecar writes its login back and refreshes it, but only once the
    refresh timeout (30 s) has passed: a POST another worker began before the loss has ended
    by then (slow: it waits that long)."""
    seed(redis_server.url, oauth_env, expires_in=3600)
    store = RedisStore(redis_server.url)
    sidecar = Sidecar(
        "--store", redis_server.url, "--ahead", "600", "--jitter", "0", "--check-every", "0.2"
    )
    try:
        wait_for(lambda: bool(sidecar.lines))
        redis_server.flushall()
        wait_for(lambda: sidecar.refreshes == 1, seconds=60)
        assert login_survives(redis_server.url, oauth_env)  # back in Redis, and renewed
        assert oauth_env.token_posts == 1 and oauth_env.invalid_grants == 0
        store.delete()  # `claude-oauth-auth logout --store URL`: on purpose
        # At once when idle; the bound leaves room for its re-reads of the store (up to 10 s of
        # wall time before it calls a login dead) on a machine busy with other work.
        code, stderr = sidecar.finish(timeout=60)
    finally:
        sidecar.stop()
    assert code == 1, (sidecar.lines, stderr)
    assert "the login is dead" in sidecar.lines[-1], stderr
    assert oauth_env.token_posts == 1  # the deleted login's refresh token was not spent
    assert store.load() is None  # and it was not written back


def test_a_sidecar_replaces_an_older_login_a_worker_wrote_back(
    redis_server: RedisServer, oauth_env: FakeAnthropic
) -> None:
    """Redis lost its data and a worker wrote back the login it held, older than the one the
    sidecar refreshed: the sidecar puts its newer login back (no refresh needed) before anyone
    spends the older."""
    older = seed(redis_server.url, oauth_env, expires_in=30)
    store = RedisStore(redis_server.url)
    version = store.version()
    sidecar = Sidecar(
        "--store", redis_server.url, "--ahead", "60", "--jitter", "0", "--check-every", "0.2"
    )
    try:
        wait_for(lambda: sidecar.refreshes == 1)  # due at once: the sidecar holds the newer login
        newer = store.load()
        assert newer is not None and newer.access_token != older.access_token
        redis_server.flushall()
        store.restore(older, version=version)  # what a worker that held the older one does
        wait_for(lambda: getattr(store.load(), "access_token", None) == newer.access_token)
    finally:
        code, stderr = sidecar.stop()
    assert code == 0, stderr
    assert (sidecar.refreshes, oauth_env.token_posts, oauth_env.invalid_grants) == (1, 1, 0)
    assert login_survives(redis_server.url, oauth_env)


def test_keep_fresh_on_our_token_file_by_default(oauth_env: FakeAnthropic, home: Path) -> None:
    """Without --store or CLAUDE_TOKEN_STORE it keeps our auth.json fresh."""
    from helpers import auth_file_path, read_json, write_auth_file

    oauth_env.access_token_lifetime = 3600
    access, refresh = oauth_env.issue_tokens(expires_in=30)
    path = write_auth_file(auth_file_path(home), access, refresh, expires_in=30)
    sidecar = Sidecar("--ahead", "60", "--jitter", "1")
    try:
        wait_for(lambda: sidecar.refreshes == 1)
    finally:
        code, stderr = sidecar.stop()
    assert code == 0, stderr
    assert str(path) in sidecar.lines[0]
    stored = read_json(path)
    assert stored["access_token"] != access
    assert oauth_env.refresh_token_usable(stored["refresh_token"])
    assert path.stat().st_mode & 0o777 == 0o600
