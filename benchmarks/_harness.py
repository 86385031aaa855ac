"""Shared plumbing for the benchmark scripts: a loopback server in its own process, stats.

The fake API (``tests/fakeapi.py``) runs in a child process so the client being measured
does not share a GIL with the server. The parent drives it with one JSON command per line.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
SCRIPTS = Path(sys.executable).parent

sys.path.insert(0, str(TESTS))
from helpers import ISOLATED_VARIABLES as CREDENTIAL_VARIABLES  # noqa: E402

MODEL = "claude-test-1"
MESSAGES: list[dict[str, str]] = [{"role": "user", "content": "hi"}]

_SERVER_CODE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from fakeapi import FakeAnthropic

fake = FakeAnthropic().start()
print(json.dumps({"base_url": fake.base_url, "token_url": fake.token_url}), flush=True)
for line in sys.stdin:
    command = json.loads(line)
    operation = command["op"]
    answer = None
    if operation == "issue_tokens":
        answer = list(fake.issue_tokens(expires_in=command.get("expires_in", 3600)))
    elif operation == "add_api_key":
        answer = fake.add_api_key()
    elif operation == "set":
        with fake.lock:
            setattr(fake, command["name"], command["value"])
    elif operation == "counters":
        with fake.lock:
            answer = {
                "token_posts": fake.token_posts,
                "invalid_grants": fake.invalid_grants,
                "api_requests": len(fake.api_requests),
                "api_ok": sum(1 for r in fake.api_requests if r.status == 200),
                "server_errors": len(fake.errors),
            }
    elif operation == "reset":
        fake.reset_counters()
    print(json.dumps(answer), flush=True)
fake.stop()
"""


class ServerProcess:
    """``FakeAnthropic`` in a child process, driven over stdin/stdout."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", _SERVER_CODE, str(TESTS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        hello = json.loads(self._readline())
        self.base_url: str = hello["base_url"]
        self.token_url: str = hello["token_url"]

    def _readline(self) -> str:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the loopback server process exited")
        return line

    def call(self, operation: str, **arguments: Any) -> Any:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps({"op": operation, **arguments}) + "\n")
        self._process.stdin.flush()
        return json.loads(self._readline())

    def issue_tokens(self, expires_in: float = 3600) -> tuple[str, str]:
        access, refresh = self.call("issue_tokens", expires_in=expires_in)
        return access, refresh

    def add_api_key(self) -> str:
        key: str = self.call("add_api_key")
        return key

    def counters(self) -> dict[str, int]:
        counters: dict[str, int] = self.call("counters")
        return counters

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@contextmanager
def isolated_home() -> Iterator[Path]:
    """A temporary HOME with none of the credential variables set (in this process)."""
    saved = {name: os.environ.get(name) for name in (*CREDENTIAL_VARIABLES, "HOME")}
    with tempfile.TemporaryDirectory(prefix="coa-bench-") as folder:
        home = Path(folder) / "home"
        home.mkdir()
        for name in CREDENTIAL_VARIABLES:
            os.environ.pop(name, None)
        os.environ["HOME"] = str(home)
        try:
            yield home
        finally:
            restore_environ(saved)


def restore_environ(saved: dict[str, str | None]) -> None:
    """Put back variables saved as ``{name: os.environ.get(name)}`` (None: was unset)."""
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def write_cold_start_credentials(home: Path) -> None:
    """What a cold start finds: a fresh OAuth token file (ANTHROPIC_API_KEY goes in the env)."""
    write_our_token_file(
        home / ".config" / "claude" / "auth.json",
        "sk-ant-oat01-" + "a" * 90,
        "sk-ant-ort01-" + "b" * 90,
        expires_in=7200,
    )


COLD_START_API_KEY = "sk-ant-api03-" + "c" * 90


def clean_environment(home: Path, **extra: str) -> dict[str, str]:
    """A copy of os.environ for a child process: our HOME, no credential variables."""
    environment = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARIABLES}
    environment["HOME"] = str(home)
    environment.update(extra)
    return environment


def write_json(path: Path, document: Any) -> Path:
    """Write a 0600 JSON file, creating 0700 folders."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(json.dumps(document))
    os.chmod(path, 0o600)
    return path


def write_our_token_file(path: Path, access: str, refresh: str, expires_in: float) -> Path:
    return write_json(
        path,
        {
            "access_token": access,
            "refresh_token": refresh,
            "token_expiry": time.time() + expires_in,
        },
    )


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def describe(values: list[float], scale: float = 1.0, digits: int = 3) -> dict[str, float]:
    """Median, 10th and 90th percentile of ``values`` multiplied by ``scale``."""
    ordered = sorted(values)
    deciles = statistics.quantiles(ordered, n=10) if len(ordered) > 1 else ordered * 9
    return {
        "median": round(statistics.median(ordered) * scale, digits),
        "p10": round(deciles[0] * scale, digits),
        "p90": round(deciles[-1] * scale, digits),
        "n": len(ordered),
    }


def machine() -> dict[str, Any]:
    """Enough about the machine to compare runs."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpus": os.cpu_count(),
        "load_average_1m": round(load[0], 2),
    }


def emit(result: dict[str, Any]) -> None:
    """Print the result as JSON on stdout (the scripts' only output there)."""
    print(json.dumps(result, indent=2))
