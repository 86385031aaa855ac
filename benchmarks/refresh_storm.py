"""Refresh storm: many workers start together on an expired token; count what it costs.

The loopback token endpoint (own process) hands out single-use refresh tokens and answers
after ``--latency`` seconds (0.5 by default). Each load runs twice, on fresh tokens and a
fresh server: once with this library, once with the SDK's own ``user_oauth`` profile
(``ANTHROPIC_CONFIG_DIR`` holding ``configs/default.json`` and ``credentials/default.json``,
the profile's ``base_url`` pointing at the loopback server, so its refresh grant goes there).

Loads (every worker sends one ``messages.create``; ``max_retries=2``, the SDK default):

* ``threads_shared_client``: 64 threads, one client built beforehand. Ours:
  ``anthropic.Anthropic(credentials=OAuthTokenManager(token_file=...))``; SDK:
  ``anthropic.Anthropic()`` on the profile.
* ``threads_client_each``: 64 threads, each building its own client when released. Ours:
  ``ClaudeClient()`` (zero configuration); SDK: ``anthropic.Anthropic()``.
* ``coroutines_shared_client``: 500 coroutines on one ``AsyncAnthropic`` client. Ours:
  ``AsyncAnthropic(credentials=OAuthTokenManager(...))``; SDK: ``AsyncAnthropic()``.
* ``processes``: 16 processes, each building its client when released. Ours:
  ``ClaudeClient()``; SDK: ``anthropic.Anthropic()``.
* ``profile_processes``: the same 16 processes, both sides on the *same* SDK ``user_oauth``
  profile: ``ClaudeClient()`` refreshes it through our lock, ``anthropic.Anthropic()`` without.

Reported per run: token POSTs, ``invalid_grant`` answers, failed requests (and their error
types), whether the refresh token left on disk still works, and the seconds from the
release until the last worker finished.

Usage: python benchmarks/refresh_storm.py [--only LOAD ...] [--latency 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import _harness
from _harness import MESSAGES, MODEL

CLIENT_ID = "9d1c250a-e61b-44d9-88ed-5944d1962f5e"
LOADS = {
    "threads_shared_client": 64,
    "threads_client_each": 64,
    "coroutines_shared_client": 500,
    "processes": 16,
    "profile_processes": 16,
}

CHILD = r"""
import json, os, sys, time
mode, go_file, base_url = sys.argv[1:4]
import anthropic
from claude_oauth_auth import ClaudeClient
print("ready", flush=True)
while not os.path.exists(go_file):
    time.sleep(0.002)
try:
    if mode == "ours":
        client = ClaudeClient(base_url=base_url, max_retries=2)
    else:
        client = anthropic.Anthropic(base_url=base_url, max_retries=2)
    client.messages.create(model="claude-test-1", max_tokens=5,
                           messages=[{"role": "user", "content": "hi"}])
    print(json.dumps({"error": None}), flush=True)
except Exception as error:
    print(json.dumps({"error": type(error).__name__}), flush=True)
"""


class Setup:
    """One side's credentials on disk, in a fresh folder, and its environment."""

    def __init__(
        self, side: str, folder: Path, server: _harness.ServerProcess, *, profile: bool = False
    ) -> None:
        self.side = side
        self.server = server
        self.home = folder / "home"
        self.home.mkdir()
        access, refresh = server.issue_tokens(expires_in=-5)
        self.environment: dict[str, str] = {"HOME": str(self.home)}
        if side == "ours" and not profile:
            self.token_file = self.home / ".config" / "claude" / "auth.json"
            _harness.write_our_token_file(self.token_file, access, refresh, expires_in=-5)
            self.environment["CLAUDE_OAUTH_TOKEN_URL"] = server.token_url
        else:
            config_dir = folder / "anthropic"
            _harness.write_json(
                config_dir / "configs" / "default.json",
                {
                    "version": "1.0",
                    "base_url": server.base_url,
                    "authentication": {"type": "user_oauth", "client_id": CLIENT_ID},
                },
            )
            os.chmod(config_dir / "configs" / "default.json", 0o644)
            self.token_file = _harness.write_json(
                config_dir / "credentials" / "default.json",
                {
                    "version": "1.0",
                    "type": "oauth_token",
                    "access_token": access,
                    "refresh_token": refresh,
                    "expires_at": int(time.time()) - 5,
                },
            )
            self.environment["ANTHROPIC_CONFIG_DIR"] = str(config_dir)

    @contextmanager
    def applied(self) -> Any:
        """Set this side's environment in this process."""
        saved = {name: os.environ.get(name) for name in self.environment}
        os.environ.update(self.environment)
        try:
            yield
        finally:
            _harness.restore_environ(saved)

    def stored_refresh_token_works(self) -> bool:
        """POST the refresh token left on disk: does the login survive the storm?"""
        document = json.loads(self.token_file.read_text())
        body = json.dumps(
            {
                "grant_type": "refresh_token",
                "refresh_token": document["refresh_token"],
                "client_id": CLIENT_ID,
            }
        ).encode()
        request = urllib.request.Request(
            self.server.token_url, data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return bool(response.status == 200)
        except urllib.error.HTTPError:
            return False


def shared_sync_client(setup: Setup) -> Any:
    import anthropic

    from claude_oauth_auth import OAuthTokenManager

    if setup.side == "ours":
        manager = OAuthTokenManager(token_file=setup.token_file)
        return anthropic.Anthropic(
            credentials=manager, base_url=setup.server.base_url, max_retries=2
        )
    return anthropic.Anthropic(base_url=setup.server.base_url, max_retries=2)


def own_sync_client(setup: Setup) -> Any:
    import anthropic

    from claude_oauth_auth import ClaudeClient

    if setup.side == "ours":
        return ClaudeClient(base_url=setup.server.base_url, max_retries=2)
    return anthropic.Anthropic(base_url=setup.server.base_url, max_retries=2)


Outcome = tuple[list[str | None], float]  # each worker's error (or None), seconds after release


def run_threads(setup: Setup, workers: int, make_client_each: bool) -> Outcome:
    shared = None if make_client_each else shared_sync_client(setup)
    released: list[float] = []
    barrier = threading.Barrier(workers, action=lambda: released.append(time.perf_counter()))
    errors: list[str | None] = [None] * workers

    def work(index: int) -> None:
        barrier.wait()
        try:
            client = own_sync_client(setup) if shared is None else shared
            client.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES)
        except Exception as error:
            errors[index] = type(error).__name__

    threads = [threading.Thread(target=work, args=(index,)) for index in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors, time.perf_counter() - released[0]


def run_coroutines(setup: Setup, workers: int) -> Outcome:
    import anthropic

    from claude_oauth_auth import OAuthTokenManager

    async def main() -> Outcome:
        if setup.side == "ours":
            client = anthropic.AsyncAnthropic(
                credentials=OAuthTokenManager(token_file=setup.token_file),
                base_url=setup.server.base_url,
                max_retries=2,
            )
        else:
            client = anthropic.AsyncAnthropic(base_url=setup.server.base_url, max_retries=2)

        async def one() -> str | None:
            try:
                await client.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES)
            except Exception as error:
                return type(error).__name__
            return None

        async with client:
            started = time.perf_counter()
            errors = list(await asyncio.gather(*(one() for _ in range(workers))))
            return errors, time.perf_counter() - started

    return asyncio.run(main())


def run_processes(setup: Setup, workers: int) -> Outcome:
    go_file = setup.home / "go"
    environment = _harness.clean_environment(setup.home, **setup.environment)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, setup.side, str(go_file), setup.server.base_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for _ in range(workers)
    ]
    for child in children:
        assert child.stdout is not None
        line = child.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"child failed to start: {child.communicate()[1][-2000:]}")
    go_file.touch()
    started = time.perf_counter()
    errors: list[str | None] = []
    for child in children:
        stdout, stderr = child.communicate(timeout=300)
        lines = stdout.strip().splitlines()
        if child.returncode != 0 or not lines:
            errors.append(f"crashed: {stderr.strip().splitlines()[-1:]}")
        else:
            errors.append(json.loads(lines[-1])["error"])
    return errors, time.perf_counter() - started


def run(load: str, side: str, latency: float) -> dict[str, Any]:
    workers = LOADS[load]
    runners: dict[str, Callable[[Setup], Outcome]] = {
        "threads_shared_client": lambda s: run_threads(s, workers, make_client_each=False),
        "threads_client_each": lambda s: run_threads(s, workers, make_client_each=True),
        "coroutines_shared_client": lambda s: run_coroutines(s, workers),
        "processes": lambda s: run_processes(s, workers),
        "profile_processes": lambda s: run_processes(s, workers),
    }
    with (
        tempfile.TemporaryDirectory(prefix="coa-storm-") as folder,
        _harness.ServerProcess() as server,
    ):
        setup = Setup(side, Path(folder), server, profile=load.startswith("profile_"))
        server.call("set", name="refresh_latency", value=latency)
        with setup.applied():
            errors, elapsed = runners[load](setup)
        counters = server.counters()
        server.call("set", name="refresh_latency", value=0.0)
        survives = setup.stored_refresh_token_works()
    failures = collections.Counter(error for error in errors if error is not None)
    return {
        "workers": workers,
        "token_posts": counters["token_posts"],
        "invalid_grant": counters["invalid_grants"],
        "failed_requests": sum(failures.values()),
        "failure_types": dict(failures),
        "api_requests": counters["api_requests"],
        "login_survives": survives,
        "seconds_after_release": round(elapsed, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(LOADS), default=list(LOADS))
    parser.add_argument("--latency", type=float, default=0.5, help="refresh latency, seconds")
    options = parser.parse_args()

    import anthropic  # noqa: F401  (imported once up front, outside every timing)

    with _harness.isolated_home():
        results: dict[str, dict[str, Any]] = {}
        for load in options.only:
            results[load] = {side: run(load, side, options.latency) for side in ("ours", "sdk")}
    _harness.emit(
        {
            "benchmark": "refresh_storm",
            "refresh_latency_seconds": options.latency,
            "results": results,
            "target_ours": {"token_posts": 1, "invalid_grant": 0, "failed_requests": 0},
            "machine": _harness.machine(),
        }
    )


if __name__ == "__main__":
    main()
