"""``keep-fresh --health-port``: ``/healthz`` for probes (issue 24, item 3), with the stdlib only.

``/metrics`` in Prometheus text needs the ``health`` extra: its tests are in
``tests_observability``; here, without it, ``/metrics`` says how to install it.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import test_keep_fresh
from fakeapi import FakeAnthropic
from helpers import auth_file_path, write_auth_file
from redis_server import free_port
from test_keep_fresh import Sidecar

from claude_oauth_auth.cli._command_keep_fresh import KeepFresh
from claude_oauth_auth.cli._health_server import serving_health
from claude_oauth_auth.stores import FileStore, RedisStore


def get(url: str) -> tuple[int, str]:
    """The status and body of a GET, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def healthz(url: str) -> tuple[int, dict[str, Any]]:
    status, body = get(url + "/healthz")
    return status, json.loads(body)


wait_for = functools.partial(test_keep_fresh.wait_for, seconds=15.0)


class Running:
    """A ``KeepFresh`` loop in a thread, with its health endpoints on a free loopback port."""

    def __init__(self, keeper: KeepFresh, url: str, thread: threading.Thread) -> None:
        self.keeper, self.url, self.thread = keeper, url, thread
        self.code: int | None = None


@contextmanager
def running(keeper: KeepFresh) -> Iterator[Running]:
    stop = threading.Event()
    lines: list[str] = []
    with serving_health(keeper.health, lines.append, "127.0.0.1", 0):
        [line] = [line for line in lines if "serving" in line]
        url = line.rsplit(" ", 1)[1]
        run = Running(keeper, url, threading.Thread(target=lambda: None))

        def loop() -> None:
            run.code = keeper.run(stop)

        run.thread = threading.Thread(target=loop, daemon=True)
        run.thread.start()
        try:
            yield run
        finally:
            stop.set()
            run.thread.join(30)


def keeper_of(store: Any, lines: list[str], **options: float) -> KeepFresh:
    settings = {"ahead": 3.0, "jitter": 0.0, "check_every": 0.05, **options}
    return KeepFresh(store, say=lines.append, **settings)


def test_healthz_is_200_while_fresh_and_503_once_the_login_is_refused(
    oauth_env: FakeAnthropic, home: Path
) -> None:
    access, refresh = oauth_env.issue_tokens(expires_in=6)
    path = write_auth_file(auth_file_path(home), access, refresh, expires_in=6)
    oauth_env.revoke_refresh_token(refresh)  # its refresh, in 3 s, is refused
    lines: list[str] = []
    with running(keeper_of(FileStore(path), lines)) as run:
        wait_for(lambda: run.keeper.manager is not None)
        status, answer = healthz(run.url)
        assert (status, answer["healthy"]) == (200, True), answer
        assert answer["reason"].startswith("fresh: the access token expires in")
        run.thread.join(15)
        assert run.code == 1, lines
        status, answer = healthz(run.url)
    assert (status, answer["healthy"]) == (503, False)
    assert answer["reason"].startswith("refused: ")
    assert "invalid_grant" in answer["reason"]
    assert refresh[-8:] not in answer["reason"] and access[-8:] not in answer["reason"]


def test_healthz_says_stalled_while_one_pass_takes_too_long(
    oauth_env: FakeAnthropic, home: Path
) -> None:
    access, refresh = oauth_env.issue_tokens(expires_in=3.5)
    path = write_auth_file(auth_file_path(home), access, refresh, expires_in=3.5)
    oauth_env.refresh_latency = 2.0  # the refresh POST, in half a second, hangs this long
    lines: list[str] = []
    keeper = keeper_of(FileStore(path), lines)
    keeper.stall_after = 0.5
    with running(keeper) as run:
        wait_for(lambda: healthz(run.url)[1]["reason"].startswith("stalled: "))
        assert healthz(run.url)[0] == 503
        wait_for(lambda: keeper.refreshes == 1)
        wait_for(lambda: healthz(run.url)[0] == 200)


def test_healthz_is_503_until_the_store_can_be_read() -> None:
    unused_port = free_port()  # nothing listens there: the store cannot be read
    store = RedisStore(f"redis://127.0.0.1:{unused_port}/0")
    lines: list[str] = []
    with running(keeper_of(store, lines)) as run:
        wait_for(lambda: any("trying again" in line for line in lines))
        status, answer = healthz(run.url)
    assert status == 503
    assert answer["reason"].startswith("starting: the store has not been read yet: ")
    assert f"127.0.0.1:{unused_port}" in answer["reason"]


@pytest.mark.skipif(
    importlib.util.find_spec("prometheus_client") is not None, reason="the health extra is here"
)
def test_metrics_without_the_extra_names_it_and_other_paths_are_404(
    oauth_env: FakeAnthropic, home: Path
) -> None:
    access, refresh = oauth_env.issue_tokens(expires_in=3600)
    path = write_auth_file(auth_file_path(home), access, refresh, expires_in=3600)
    with running(keeper_of(FileStore(path), [], ahead=60)) as run:
        status, body = get(run.url + "/metrics")
        assert status == 501
        assert body.startswith("/metrics needs the health extra")
        assert "pip install" in body and "[health]" in body, body
        assert get(run.url + "/")[0] == 404


def test_the_command_serves_healthz_on_loopback(oauth_env: FakeAnthropic, home: Path) -> None:
    access, refresh = oauth_env.issue_tokens(expires_in=3600)
    write_auth_file(auth_file_path(home), access, refresh, expires_in=3600)
    sidecar = Sidecar("--ahead", "60", "--jitter", "1", "--health-port", "0")
    try:
        url = sidecar.health_url()
        assert url.startswith("http://127.0.0.1:")
        wait_for(lambda: healthz(url)[0] == 200)
    finally:
        code, stderr = sidecar.stop()
    assert code == 0, stderr


def test_a_port_in_use_is_a_usage_error(oauth_env: FakeAnthropic, home: Path) -> None:
    access, refresh = oauth_env.issue_tokens(expires_in=3600)
    write_auth_file(auth_file_path(home), access, refresh, expires_in=3600)
    with running(keeper_of(FileStore(auth_file_path(home)), [], ahead=60)) as run:
        port = run.url.rsplit(":", 1)[1]
        code, stderr = Sidecar("--health-port", port).finish()
    assert code == 2, stderr
    assert f"cannot serve --health-port on 127.0.0.1:{port}" in stderr
