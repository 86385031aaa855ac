"""Token-file writers and paths shared by the tests."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Every variable that changes which credential a client picks (ours and the SDK's): tests and
# benchmarks clear them all.
ISOLATED_VARIABLES = (
    "CLAUDE_AUTH_FILE",
    "CLAUDE_TOKEN_STORE",
    "CLAUDE_CONFIG_DIR",
    "CLAUDE_SECURESTORAGE_CONFIG_DIR",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_API_KEY",
    "CLAUDE_TOKEN_REFRESH_THRESHOLD",
    "CLAUDE_OAUTH_TOKEN_URL",
    "CLAUDE_OAUTH_CLIENT_ID",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_PROFILE",
    "ANTHROPIC_CONFIG_DIR",
    "ANTHROPIC_CUSTOM_HEADERS",
    "ANTHROPIC_IDENTITY_TOKEN",
    "ANTHROPIC_IDENTITY_TOKEN_FILE",
    "ANTHROPIC_FEDERATION_RULE_ID",
    "ANTHROPIC_ORGANIZATION_ID",
    "ANTHROPIC_SERVICE_ACCOUNT_ID",
    "ANTHROPIC_WORKSPACE_ID",
    "ANTHROPIC_SCOPE",
    "APPDATA",
)


def auth_file_path(home: Path) -> Path:
    return home / ".config" / "claude" / "auth.json"


def claude_code_path(home: Path) -> Path:
    return home / ".claude" / ".credentials.json"


def write_json(path: Path, document: Any, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(json.dumps(document))
    os.chmod(path, mode)
    return path


def write_auth_file(
    path: Path,
    access_token: str,
    refresh_token: str | None,
    expires_in: float = 3600,
    **extra: Any,
) -> Path:
    document: dict[str, Any] = {
        "access_token": access_token,
        "token_expiry": time.time() + expires_in,
    }
    if refresh_token is not None:
        document["refresh_token"] = refresh_token
    document.update(extra)
    return write_json(path, document)


def write_claude_code_file(
    path: Path, access_token: str, refresh_token: str | None, expires_in: float = 3600, **extra: Any
) -> Path:
    inner: dict[str, Any] = {
        "accessToken": access_token,
        "expiresAt": int((time.time() + expires_in) * 1000),
        "scopes": ["user:inference", "user:profile"],
        "subscriptionType": "max",
    }
    if refresh_token is not None:
        inner["refreshToken"] = refresh_token
    document = {"claudeAiOauth": inner, "mcpOAuth": {"server": {"token": "keep-me"}}, **extra}
    return write_json(path, document)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def create_from_threads(client: Any, count: int) -> list[str]:
    """``count`` threads released together, each making one ``messages.create``; their ids."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    barrier = threading.Barrier(count)

    def one(_: int) -> str:
        barrier.wait()
        message = client.messages.create(
            model="claude-test-1", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
        return str(message.id)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def skip_backoff(manager: Any) -> None:
    """Travel past a manager's refresh backoff: its clock runs that far ahead from now on."""
    shift = manager.retry_in + 0.01
    clock = manager._clock
    manager._clock = lambda: clock() + shift


def fork_processes(setup: Callable[[], Callable[[], Any]], count: int) -> list[Any]:
    """``count`` processes forked from this one (so ``anthropic`` is imported once, not once
    per process): each runs ``setup()``, waits until every one is past it, then all run what
    it returned at once. Their results, in order; a child's exception fails the test."""
    import multiprocessing
    import threading
    import traceback

    fork = multiprocessing.get_context("fork")
    everyone = fork.Barrier(count + 1)
    results = fork.Queue()

    def child(index: int) -> None:
        try:
            work = setup()
            everyone.wait(60)
            results.put((index, True, work()))
        except BaseException:
            everyone.abort()  # the others stop waiting: the test fails at once
            results.put((index, False, traceback.format_exc()))

    children = [fork.Process(target=child, args=(index,)) for index in range(count)]
    for process in children:
        process.start()
    try:
        with contextlib.suppress(threading.BrokenBarrierError):
            everyone.wait(60)
        outcomes = {}
        for _ in children:
            index, ok, value = results.get(timeout=60)
            outcomes[index] = (ok, value)
        for process in children:
            process.join(30)
    finally:
        for process in children:
            if process.is_alive():
                process.kill()
                process.join()
    failures = [value for ok, value in outcomes.values() if not ok]
    assert failures == [], failures[0]
    assert [process.exitcode for process in children] == [0] * count
    return [outcomes[index][1] for index in range(count)]


def run_cli(*arguments: str, stdin: str = "") -> Any:
    """The installed console script, with pipes, in the test's HOME and environment."""
    import subprocess
    import sys

    return subprocess.run(
        [str(Path(sys.executable).with_name("claude-oauth-auth")), *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
        check=False,
    )
