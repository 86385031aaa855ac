"""A throwaway redis-server on a free loopback port, for the RedisStore tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

INSTALL_HINT = "redis-server is not installed: run `apt-get install -y redis-server`"


def require_redis_server() -> str:
    """The redis-server executable; skip the test without it (fail under CI=true)."""
    found = shutil.which("redis-server")
    if found:
        return found
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(INSTALL_HINT)
    pytest.skip(INSTALL_HINT)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process: no persistence, loopback only, optionally a password."""

    def __init__(self, executable: str, directory: Path, password: str | None = None) -> None:
        self.executable = executable
        self.directory = directory
        self.password = password
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start (or restart, on the same port) and wait until it answers PING."""
        if self.process is not None and self.process.poll() is None:
            return
        command = [
            self.executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while not self._answers_ping():
            if self.process.poll() is not None:
                errors = self.process.stderr.read().decode() if self.process.stderr else ""
                log = self.directory / "redis.log"
                errors += log.read_text() if log.exists() else ""
                raise RuntimeError(f"redis-server exited at start:\n{errors}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer PING within {timeout} s")
            time.sleep(0.005)

    def stop(self) -> None:
        """Kill the server (no shutdown save: there is nothing to persist)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def client(self, **options: Any) -> Any:
        import redis

        return redis.Redis.from_url(self.url, **options)

    def flushall(self) -> None:
        client = self.client()
        try:
            client.flushall()
        finally:
            client.close()

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as connection:
                connection.sendall(b"PING\r\n")
                answer = connection.recv(64)
        except OSError:
            return False
        # A password-protected server answers "-NOAUTH ..." once it is ready.
        return answer.startswith((b"+PONG", b"-NOAUTH"))


@contextlib.contextmanager
def redis_server(password: str | None = None) -> Iterator[RedisServer]:
    """A running redis-server, killed and its directory removed on exit."""
    executable = require_redis_server()
    with tempfile.TemporaryDirectory(prefix="redis-test-") as directory:
        server = RedisServer(executable, Path(directory), password)
        for attempt in range(3):  # another program may take the free port before redis does
            try:
                server.start()
                break
            except RuntimeError as error:
                if "already in use" not in str(error) or attempt == 2:
                    raise
                server.port = free_port()
        try:
            yield server
        finally:
            server.stop()
