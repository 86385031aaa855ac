"""Shared fixtures: an isolated HOME and environment, the loopback API, token-file writers."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import redis_server as redis_helper
import secret_service as secret_service_helper
from fakeapi import FakeAnthropic
from helpers import ISOLATED_VARIABLES
from redis_server import RedisServer
from secret_service import SecretServiceSession


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow", action="store_true", help="run the long modes (kill -9 loops, fleet storms)"
    )
    parser.addoption(
        "--sim-seeds", type=int, default=300, help="seeded schedules the simulator sweeps"
    )
    parser.addoption("--sim-seed", help="replay one simulator seed (or named scenario), traced")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="long mode: pass --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs in a fresh HOME with none of our environment variables set."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    for name in ISOLATED_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return home


class Clock:
    """An injectable clock (unix seconds) that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def oauth_env(server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> FakeAnthropic:
    """Point the token endpoint and the SDK at the loopback server."""
    monkeypatch.setenv("CLAUDE_OAUTH_TOKEN_URL", server.token_url)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
    return server


@pytest.fixture(scope="module")
def secret_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecretServiceSession]:
    """keyring's backend for a module's tests: a real Secret Service (gnome-keyring-daemon on a
    private D-Bus), else keyrings.alt's file backend (``session.real`` says which)."""
    with secret_service_helper.secret_service(tmp_path_factory.mktemp("secret-service")) as session:
        yield session


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server on a free loopback port (it starts in about 20 ms)."""
    with redis_helper.redis_server() as server:
        yield server
