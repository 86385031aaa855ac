"""Fleet storm: several hosts' workers start together on an expired token; one shared login.

Each simulated host is a HOME of its own; each has ``--processes`` worker processes of
``--threads`` threads, and every thread sends one ``messages.create`` (``max_retries=2``)
when they are all released together. The token endpoint (the loopback fake API, own
process) hands out single-use refresh tokens and answers after ``--latency`` seconds.

Two ways to give the fleet one login, on fresh tokens and a fresh server each:

* ``redis``: the login lives in one ``RedisStore`` (a real ``redis-server`` on loopback);
  every worker has only ``CLAUDE_TOKEN_STORE=redis://…``; ``ClaudeClient()``.
* ``copied_files``: the same login copied into each host's ``~/.config/claude/auth.json``;
  ``ClaudeClient()``. Each host's file lock makes one refresh per host, and the token
  endpoint accepts only the first: every other host's copy is dead. There, the first process
  records the ``invalid_grant`` in the file's shared state, and the host's other processes
  fail without sending the dead token again: one POST per host, ``hosts - 1`` refused.

Reported per side: token POSTs, ``invalid_grant`` answers, failed requests (and their error
types), how many of the stored logins still work afterwards, and the seconds from the release
until the last worker finished. Workers are forked from this process after ``import
anthropic``, so no worker pays for that import.

Usage: python benchmarks/fleet_storm.py [--hosts 4] [--processes 4] [--threads 8] [--latency 0.5]
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import _harness
from _harness import MESSAGES, MODEL

CLIENT_ID = "9d1c250a-e61b-44d9-88ed-5944d1962f5e"
FORK = multiprocessing.get_context("fork")
SIDES = ("redis", "copied_files")


def worker(home: str, threads: int, go: Any, results: Any) -> None:
    """One worker process: build ``ClaudeClient()`` when released, then one request a thread."""
    os.environ["HOME"] = home
    errors: list[str | None] = [None] * threads
    try:
        go.wait(120)
        from claude_oauth_auth import ClaudeClient

        client = ClaudeClient(max_retries=2)
        barrier = threading.Barrier(threads)

        def one(index: int) -> None:
            barrier.wait()
            try:
                client.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES)
            except Exception as error:
                errors[index] = type(error).__name__

        pool = [threading.Thread(target=one, args=(index,)) for index in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
    except Exception as error:
        errors = [type(error).__name__] * threads
    results.put((errors, time.perf_counter()))


def refresh_token_works(server: _harness.ServerProcess, refresh_token: str | None) -> bool:
    """POST it: is the login still alive? (Spends it: call this last.)"""
    if not refresh_token:
        return False
    body = json.dumps(
        {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": CLIENT_ID}
    ).encode()
    request = urllib.request.Request(
        server.token_url, data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError:
        return False


def run(side: str, options: argparse.Namespace, redis_executable: str) -> dict[str, Any]:
    from redis_server import RedisServer

    from claude_oauth_auth.stores import RedisStore, TokenSet

    with (
        tempfile.TemporaryDirectory(prefix="coa-fleet-") as folder,
        _harness.ServerProcess() as server,
    ):
        root = Path(folder)
        redis = RedisServer(redis_executable, root)
        redis.start()
        saved = {name: os.environ.get(name) for name in ("CLAUDE_TOKEN_STORE", "HOME")}
        try:
            access, refresh = server.issue_tokens(expires_in=-5)
            os.environ["CLAUDE_OAUTH_TOKEN_URL"] = server.token_url
            os.environ["ANTHROPIC_BASE_URL"] = server.base_url
            homes = [root / f"host-{host}" for host in range(options.hosts)]
            for home in homes:
                home.mkdir()
                if side == "copied_files":
                    _harness.write_our_token_file(
                        home / ".config" / "claude" / "auth.json", access, refresh, -5
                    )
            if side == "redis":
                store = RedisStore(redis.url)
                store.save(TokenSet(access, refresh, time.time() - 5), expected_version=None)
                os.environ["CLAUDE_TOKEN_STORE"] = redis.url
            server.call("set", name="refresh_latency", value=options.latency)
            go, results = FORK.Event(), FORK.Queue()
            workers = [
                FORK.Process(target=worker, args=(str(home), options.threads, go, results))
                for home in homes
                for _ in range(options.processes)
            ]
            for process in workers:
                process.start()
            time.sleep(0.5)  # let every worker reach the starting line
            released = time.perf_counter()
            go.set()
            outcomes = [results.get(timeout=300) for _ in workers]
            for process in workers:
                process.join(30)
            counters = server.counters()
            server.call("set", name="refresh_latency", value=0.0)
            if side == "redis":
                stored = RedisStore(redis.url).load()
                logins = [stored.refresh_token if stored else None]
            else:
                logins = [
                    json.loads((home / ".config" / "claude" / "auth.json").read_text()).get(
                        "refresh_token"
                    )
                    for home in homes
                ]
            alive = sum(refresh_token_works(server, token) for token in logins)
        finally:
            _harness.restore_environ(saved)
            redis.stop()
    errors = [error for errors, _ in outcomes for error in errors]
    failures = collections.Counter(error for error in errors if error is not None)
    return {
        "workers": len(errors),
        "token_posts": counters["token_posts"],
        "invalid_grant": counters["invalid_grants"],
        "failed_requests": sum(failures.values()),
        "failure_types": dict(failures),
        "api_ok": counters["api_ok"],
        "stored_logins": len(logins),
        "stored_logins_alive": alive,
        "seconds_after_release": round(max(end for _, end in outcomes) - released, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--processes", type=int, default=4, help="worker processes per host")
    parser.add_argument("--threads", type=int, default=8, help="threads per process")
    parser.add_argument("--latency", type=float, default=0.5, help="refresh latency, seconds")
    options = parser.parse_args()
    redis_executable = shutil.which("redis-server")
    if redis_executable is None:
        parser.error("redis-server is not installed: run `apt-get install -y redis-server`")

    import anthropic  # noqa: F401  (imported once, before forking the workers)
    import redis  # noqa: F401

    with _harness.isolated_home():
        results = {side: run(side, options, redis_executable) for side in SIDES}
    _harness.emit(
        {
            "benchmark": "fleet_storm",
            "hosts": options.hosts,
            "processes_per_host": options.processes,
            "threads_per_process": options.threads,
            "refresh_latency_seconds": options.latency,
            "results": results,
            "target_redis": {"token_posts": 1, "invalid_grant": 0, "failed_requests": 0},
            "machine": _harness.machine(),
        }
    )


if __name__ == "__main__":
    main()
