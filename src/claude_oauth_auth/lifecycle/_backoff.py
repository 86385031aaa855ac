"""Refresh state shared by every process using one token file: the backoff and spent tokens.

After a failed refresh, the next attempt is scheduled for everyone: ``Retry-After`` when the
endpoint sent one (1 s to 5 min), else exponential backoff with jitter (1 s doubling to 60 s,
each step drawn from its upper half). Threads and coroutines share the manager's memory;
processes share ``<token file>.oauth.state`` (0600, beside the lock, no secret in it), read
and written under the store's lock. It also lists digests of the refresh tokens recently
spent, so a stale write-back of one of them by another program is recognised and not
adopted, and of those the endpoint refused with ``invalid_grant`` (with its reason), so the
next process under the lock raises that verdict instead of spending the dead token again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import TokenRefreshError
from .._tokens import Generation, Secret, parse_generation
from ._state import Refusal, WorkerState

__all__ = [
    "BACKOFF_BASE_SECONDS",
    "MAX_BACKOFF_SECONDS",
    "BackoffSchedule",
    "Refusal",
    "SharedState",
    "backoff_delay",
    "read_shared_state",
    "refusal_key",
    "state_path",
    "token_digest",
    "write_shared_state",
]

BACKOFF_BASE_SECONDS = 1.0
MIN_RETRY_AFTER_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 60.0
MAX_SPENT = 8
MAX_STATE_BYTES = 64 * 1024
MAX_REASON_CHARS = 4000  # a bound against a runaway answer, far above any message of ours


def backoff_delay(failures: int, retry_after: float | None, rng: random.Random) -> float:
    """Seconds to wait after the ``failures``-th failure in a row."""
    if retry_after is not None:
        return max(MIN_RETRY_AFTER_SECONDS, retry_after)
    step = min(MAX_BACKOFF_SECONDS, BACKOFF_BASE_SECONDS * 2.0 ** max(0, failures - 1))
    return step * rng.uniform(0.5, 1.0)


def token_digest(token: str) -> str:
    """A digest that recognises a refresh token without revealing it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:32]


def refusal_key(token_url: str, client_id: str, refresh_token: str) -> str:
    """A digest naming one refresh token at one endpoint for one client: a verdict on it does
    not outlive a fix of the token URL or the client id."""
    return token_digest("\n".join((token_url, client_id, refresh_token)))


@dataclass
class SharedState:
    """``retry_not_before`` in ``clock()`` seconds; ``failures`` in a row; ``spent`` digests;
    ``refused``: refresh tokens the endpoint refused."""

    retry_not_before: float = -math.inf
    failures: int = 0
    spent: list[str] = field(default_factory=list)
    last_error: str = ""
    refused: list[Refusal] = field(default_factory=list)
    newest: Generation | None = None

    def remember_spent(self, digest: str) -> None:
        if digest not in self.spent:
            self.spent = [*self.spent, digest][-MAX_SPENT:]


def state_path(token_file: Path) -> Path:
    """``<token file>.oauth.state`` beside the lock (a symlink's target decides where)."""
    target = Path(os.path.realpath(token_file)) if token_file.is_symlink() else token_file
    return target.with_name(target.name + ".oauth.state")


def read_shared_state(path: Path) -> SharedState:
    """The state file, or an empty state when it is missing, foreign or unreadable."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return SharedState()
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_STATE_BYTES:
            return SharedState()
        if os.name == "posix" and info.st_uid != os.geteuid():
            return SharedState()
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            document = json.loads(handle.read(MAX_STATE_BYTES).decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return SharedState()
    finally:
        os.close(descriptor)
    if not isinstance(document, dict):
        return SharedState()
    state = SharedState()
    not_before = document.get("retry_not_before")
    if isinstance(not_before, (int, float)) and not isinstance(not_before, bool):
        state.retry_not_before = float(not_before)
    failures = document.get("failures")
    if isinstance(failures, int) and not isinstance(failures, bool) and 0 <= failures < 1000:
        state.failures = failures
    spent = document.get("spent")
    if isinstance(spent, list):
        state.spent = [item for item in spent if isinstance(item, str)][-MAX_SPENT:]
    error = document.get("last_error")
    if isinstance(error, str):
        state.last_error = error[:MAX_REASON_CHARS]
    refused = document.get("refused")
    if isinstance(refused, list):
        state.refused = [r for r in map(_refusal, refused) if r is not None][-MAX_SPENT:]
    state.newest = parse_generation(document.get("newest"))
    return state


def _refusal(item: object) -> Refusal | None:
    if not isinstance(item, dict):
        return None
    key, reason, status = item.get("key"), item.get("reason"), item.get("status")
    if not isinstance(key, str) or not isinstance(reason, str) or not reason:
        return None
    if not isinstance(status, int) or isinstance(status, bool):
        status = None
    return Refusal(key, reason[:MAX_REASON_CHARS], status)


def write_shared_state(path: Path, state: SharedState) -> None:
    """Write the state (0600, atomic); a failure only loses advice, so it is not raised."""
    from ..stores._files import write_json_atomic

    document: dict[str, object] = {
        "retry_not_before": state.retry_not_before if math.isfinite(state.retry_not_before) else 0,
        "failures": state.failures,
        "spent": state.spent,
        "last_error": state.last_error,
        "refused": [
            {"key": item.key, "reason": item.reason, "status": item.status}
            for item in state.refused
        ],
    }
    if state.newest is not None:
        document["newest"] = state.newest.as_json()
    with contextlib.suppress(OSError):
        write_json_atomic(path, document)


class BackoffSchedule:
    """The manager's side of the schedule: in memory for threads, in the state file for
    processes (read and written only under the store's lock)."""

    store: Any
    _clock: Callable[[], float]
    _state: WorkerState
    _rng: random.Random
    _holding_store_lock: bool
    token_url: str
    client_id: str

    @property
    def retry_in(self) -> float:
        """Seconds until the next refresh attempt is allowed after a failure (0: now)."""
        return max(0.0, self._state.backoff.retry_not_before - self._clock())

    def _schedule_retry(self, error: Exception) -> None:
        self._state.backoff.failures += 1
        retry_after = getattr(error, "retry_after", None)
        delay = backoff_delay(self._state.backoff.failures, retry_after, self._rng)
        self._state.backoff.retry_not_before = self._clock() + delay
        self._state.backoff.last_error = str(error)[:MAX_REASON_CHARS]

    def _backing_off(self, now: float) -> TokenRefreshError:
        left = self._state.backoff.retry_not_before - now
        return TokenRefreshError(
            f"OAuth refresh is backing off after a failure ({self._state.backoff.last_error}); "
            f"next attempt in {left:.0f} s",
            retry_after=left,
        )

    def _remember_spent(self, spent: Secret) -> None:
        digest = token_digest(spent.reveal())
        if digest not in self._state.known.spent:
            self._state.known.spent = [*self._state.known.spent, digest][-MAX_SPENT:]

    def _refusal_of(self, token: str) -> Refusal | None:
        """The verdict a process sharing the store recorded on ``token``, if any."""
        key = refusal_key(self.token_url, self.client_id, token)
        return next((item for item in self._state.known.refused if item.key == key), None)

    def _record_refusal(self, token: Secret, reason: str, status: int | None) -> None:
        """``invalid_grant``: tell every process sharing the store (under its lock)."""
        key = refusal_key(self.token_url, self.client_id, token.reveal())
        kept = [item for item in self._state.known.refused if item.key != key]
        self._state.known.refused = [*kept, Refusal(key, reason[:MAX_REASON_CHARS], status)][
            -MAX_SPENT:
        ]
        self._write_shared_backoff()

    def _state_file(self) -> Path | None:
        from ..stores._file import path_of

        path = path_of(self.store)
        return state_path(path) if path is not None and self._holding_store_lock else None

    def _read_shared_backoff(self) -> None:
        """Under the lock: adopt the schedule another process set, and the tokens it spent."""
        path = self._state_file()
        if path is None:
            return
        state = read_shared_state(path)
        for digest in state.spent:
            if digest not in self._state.known.spent:
                self._state.known.spent = [*self._state.known.spent, digest][-MAX_SPENT:]
        known = {item.key for item in self._state.known.refused}
        fresh = [item for item in state.refused if item.key not in known]
        self._state.known.refused = [*self._state.known.refused, *fresh][-MAX_SPENT:]
        if state.newest is not None:  # saved under this lock: the file's is the last one
            self._state.known.newest = state.newest
        if state.retry_not_before > self._state.backoff.retry_not_before:
            self._state.backoff.retry_not_before = state.retry_not_before
            self._state.backoff.failures = max(self._state.backoff.failures, state.failures)
            self._state.backoff.last_error = state.last_error or "in another process"

    def _write_shared_backoff(self) -> None:
        path = self._state_file()
        if path is not None:
            state = SharedState(
                self._state.backoff.retry_not_before,
                self._state.backoff.failures,
                list(self._state.known.spent),
                self._state.backoff.last_error,
                list(self._state.known.refused),
                self._state.known.newest,
            )
            write_shared_state(path, state)

    def _clear_backoff(self, spent: Secret) -> None:
        """A refresh succeeded (and was saved): attempts are free again; ``spent`` is
        remembered as spent, by every process."""
        self._state.backoff.failures = 0
        self._state.backoff.retry_not_before = -math.inf
        self._state.backoff.last_error = ""
        self._remember_spent(spent)
        saved = self._state.tokens if self._state.unsaved is None else None
        if saved is not None and saved.generation is not None:
            self._state.known.newest = saved.generation
        self._write_shared_backoff()
