"""Claude Code's login inside the simulation: a real ``.credentials.json`` in a private folder,
the real ``ClaudeCodeStore`` for each worker, and ``_clock`` on virtual time.

``ClaudeCodeStore.lock`` runs as it is: our ``<file>.oauth.lock`` (the simulation's lock on
virtual time, freed when its holder dies, as the kernel frees a flock), then Claude Code's two
refresh locks, and its write lock around each save, by the real ``_claude_locks`` code on the
real folder. That code reads the time, sleeps and keeps its locks fresh through ``_clock``;
``virtual_clock`` points ``_clock`` at the scheduler for the run: a wait is a yield point, the
keep-fresh thread an actor of the same process (paused with it, gone when it is killed: its
locks then go stale).

The version is the real one, the file's (inode, mtime_ns, size): every write replaces the
file (a new inode on tmpfs), so a signature never repeats; ``changed`` checks that it does not.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from claude_oauth_auth import _clock
from claude_oauth_auth._tokens import TokenSet, render_token_document
from claude_oauth_auth.stores._base import DEFAULT_LOCK_TIMEOUT
from claude_oauth_auth.stores._claude_code import ClaudeCodeStore
from claude_oauth_auth.stores._claude_locks import REFRESH_STALE_SECONDS
from claude_oauth_auth.stores._file import FileStore

from .backends import RecoversSaves
from .scheduler import Scheduler
from .stores import Backend, Owner

__all__ = ["ClaudeCodeBackend", "SimClaudeCodeStore", "virtual_clock"]


@contextlib.contextmanager
def virtual_clock(sched: Scheduler) -> Iterator[None]:
    """``_clock`` on the scheduler's virtual time for the duration of a run, in the run's actor
    threads (any other thread, such as one an earlier test left running, keeps the real one)."""
    saved = {name: getattr(_clock, name) for name in ("now", "monotonic", "sleep", "every")}
    real_now, real_monotonic, real_sleep, real_every = saved.values()

    def ours() -> bool:
        current = threading.current_thread()
        return any(actor.thread is current for actor in sched.actors)

    def now() -> float:
        return sched.now if ours() else real_now()

    def monotonic() -> float:
        return sched.now if ours() else real_monotonic()

    def sleep(seconds: float) -> None:
        if not ours():
            return real_sleep(seconds)
        return sched.sleep(seconds, f"waits {seconds:g} s for a lock")

    def every(seconds: float, action: Callable[[], None], name: str) -> Callable[[], None]:
        owner = sched.current  # the actor taking the locks: the keeper is a thread of its process
        if owner is None or not ours():
            stop: Callable[[], None] = real_every(seconds, action, name)
            return stop
        stopped = False

        def keep() -> None:
            while not (stopped or owner.dead or sched.closed):
                action()
                sched.sleep(seconds, "touched its locks")

        def end() -> None:
            nonlocal stopped
            stopped = True

        sched.spawn(f"{owner.name}/{name}", keep, at=sched.now + seconds, parent=owner)
        return end

    replacements = {"now": now, "monotonic": monotonic, "sleep": sleep, "every": every}
    for name, function in replacements.items():
        setattr(_clock, name, function)
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(_clock, name, function)


class ClaudeCodeBackend(Backend):
    """Claude Code's credentials file in a folder of its own; the lock is ours on virtual time
    (Claude Code's are real directories beside the file)."""

    kind = "claude-code"
    times_out = False

    def __init__(self, sched: Scheduler, base: Path) -> None:
        super().__init__(sched, float("inf"))
        self.base = base
        self.folder = base / "claude"  # its legacy lock, <folder>.lock, stays inside base
        self.folder.mkdir(mode=0o700)
        self.path = self.folder / ".credentials.json"
        self.location = str(self.path)
        self._signatures: set[tuple[int, int, int]] = set()
        self._last: tuple[int, int, int] | None = None

    def inner_for(self, owner: Owner) -> ClaudeCodeStore:
        return ClaudeCodeStore(self.path, keychains=[])

    def snapshot(self) -> Any:
        return None  # no snapshot faults on a file

    def put_back(self, snapshot: Any) -> None:
        raise NotImplementedError("a file store is not rolled back")

    def wipe(self) -> None:
        raise NotImplementedError("a file store is not flushed (that is a logout)")

    def read_refresh_token(self) -> str | None:
        inner = read_login(self.path)
        return None if inner is None else inner.get("refreshToken") or None

    def holder_died(self, owner: Owner) -> None:
        lease = self.lease
        if lease is not None and lease.holder.owner is owner:
            self.lease = None  # the kernel frees a dead process's lock on <file>.oauth.lock

    def first_login(self, tokens: TokenSet) -> None:
        document = render_token_document(tokens, "claude_code", {"mcpOAuth": {}})
        document["claudeAiOauth"]["subscriptionType"] = "max"
        write_document(self.path, document)
        self.changed()

    def changed(self) -> None:
        super().changed()
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return
        signature = (info.st_ino, info.st_mtime_ns, info.st_size)
        if signature != self._last:
            if signature in self._signatures:
                raise RuntimeError(f"the credentials file's signature {signature} came back")
            self._signatures.add(signature)
            self._last = signature


def read_login(path: Path) -> dict[str, Any] | None:
    """The ``claudeAiOauth`` object of a credentials file, or None."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError):
        return None
    inner = document.get("claudeAiOauth") if isinstance(document, dict) else None
    return inner if isinstance(inner, dict) else None


def write_document(path: Path, document: dict[str, Any]) -> None:
    """Write a credentials file whole: a temp file, mode 0600, moved over it."""
    temp = path.with_name(f".{path.name}.claude-code.tmp")
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(document, handle)
    os.replace(temp, path)


class _LockedBySim(FileStore):
    """The real ``FileStore`` under ``ClaudeCodeStore``; only its own lock (a flock on
    ``<file>.oauth.lock``) is the simulation's, which the OS-like scheduler frees on a kill.
    Claude Code's locks, taken after it, are the real code's."""

    def __init__(self, path: Path, sim: SimClaudeCodeStore) -> None:
        super().__init__(path, claude_code=True)
        self.sim = sim

    def _own_lock(self, timeout: float) -> contextlib.AbstractContextManager[object]:
        return self.sim.virtual_lock(timeout)


class SimClaudeCodeStore(RecoversSaves):
    """The real ``ClaudeCodeStore`` behind the fault wrapper: its lock takes Claude Code's."""

    poll_interval: float | None = 1.0

    def __init__(self, backend: Backend, owner: Owner) -> None:
        super().__init__(backend, owner)
        assert isinstance(backend, ClaudeCodeBackend) and isinstance(self.inner, ClaudeCodeStore)
        self.inner.file = _LockedBySim(backend.path, self)
        self.checked = False  # holds_lock() said yes since the lock was taken
        self.pause_pending = 0.0  # the "pause" fault strikes at the next call under the lock
        self.paused_past_check = False  # ... and struck after such a yes, for over stale

    @property
    def path(self) -> Path:
        assert isinstance(self.backend, ClaudeCodeBackend)
        return self.backend.path

    def lock(
        self, timeout: float = DEFAULT_LOCK_TIMEOUT
    ) -> contextlib.AbstractContextManager[None]:
        self._call("lock")
        self.checked = self.paused_past_check = False
        assert isinstance(self.inner, ClaudeCodeStore)
        return self.inner.lock(timeout)

    def holds_lock(self) -> bool:
        self._call("holds_lock")
        assert isinstance(self.inner, ClaudeCodeStore)
        held = self.backend.holder() is self and self.inner.holds_lock()
        self.checked = self.checked or held
        return held

    def _call(self, operation: str) -> None:
        pending, actor = self.pause_pending, self.sched.current
        if pending and self.holding and actor is not None and not self.owner.dead:
            self.pause_pending = 0.0
            self.paused_past_check = self.checked and pending > REFRESH_STALE_SECONDS
            self.sched.freeze(actor, self.sched.now + pending)
            self.sched.note(self.owner.name, f"paused for {pending:g} s at store.{operation}")
        super()._call(operation)
