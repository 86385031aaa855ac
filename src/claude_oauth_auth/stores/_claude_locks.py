"""Claude Code's own locks, taken beside its credentials file so that it and we take turns.

Claude Code locks with proper-lockfile: a lock is a directory made with ``mkdir``; its holder
keeps the directory's mtime fresh; one untouched for longer than the stale time belongs to a
process that died, and may be removed and taken. Before a refresh Claude Code takes
``<dir>/.oauth_refresh.lock`` then ``<realpath(dir)>.lock`` (when the second is busy it lets go
of the first and retries); around a write to its store it takes ``<dir>/.storage-write.lock``.
``<dir>`` is the folder of ``.credentials.json``. We take the same locks in the same order,
after our own ``<file>.oauth.lock``, and hold them only while a refresh or a save needs them.

A process of ours killed while holding them leaves them to go stale (10 s; Claude Code
2.1.197 waits that long too, 2.1.336 a minute). Our own next process need not wait: while
holding them we record our process id and each lock's inode and last mtime in
``<file>.oauth.claude-locks`` (``…claude-write-lock`` for the write lock); a lock found exactly
as recorded there by a process of this host that no longer runs is taken over at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import _clock
from .._errors import TokenFileError
from ._files import resolved

__all__ = [
    "CREDENTIALS_FILE_NAME",
    "HeldLocks",
    "claude_code_refresh_locks",
    "claude_code_write_lock",
    "hold_locks",
    "record_path",
    "refresh_lock_paths",
    "shares_claude_code_locks",
    "write_lock_path",
]

log = logging.getLogger("claude_oauth_auth")

CREDENTIALS_FILE_NAME = ".credentials.json"
REFRESH_STALE_SECONDS = 10.0  # proper-lockfile's default, as Claude Code 2.1.197 (2.1.336: 60)
WRITE_STALE_SECONDS = 15.0  # Claude Code's own setting for its write lock
WRITE_LOCK_TIMEOUT_SECONDS = 20.0  # long enough to outwait a stale write lock
TOUCH_INTERVAL_SECONDS = 2.0  # a held lock never looks older than this (stale is 10 s)
POLL_SECONDS = 0.1


def record_path(credentials: Path, kind: str) -> Path:
    """Where a process of ours records the Claude Code locks it holds (``kind``: ``locks`` for
    the refresh locks, ``write-lock``)."""
    target = resolved(credentials)
    return target.with_name(f"{target.name}.oauth.claude-{kind}")


def refresh_lock_paths(folder: Path) -> list[Path]:
    """Claude Code's two refresh locks for the credentials in ``folder``, in the order taken."""
    return [folder / ".oauth_refresh.lock", Path(os.path.realpath(folder) + ".lock")]


def write_lock_path(folder: Path) -> Path:
    """Claude Code's lock around a write to its store (proper-lockfile on ``.storage-write``)."""
    return folder / ".storage-write.lock"


def shares_claude_code_locks(path: Path, shape: str | None) -> bool:
    """A token file Claude Code may use too: its name, and not our own shape."""
    return path.name == CREDENTIALS_FILE_NAME and shape != "ours"


@dataclass
class _Held:
    path: Path
    mtime_ns: int
    lost: bool = False


class HeldLocks:
    """Locks we hold; a background thread keeps their mtime fresh (and the record of them
    current) until ``release()``."""

    def __init__(self, held: list[_Held], touch_every: float, record: Path | None) -> None:
        self._held = held
        self._record = record  # written as each lock was taken, rewritten after each touch
        self._pid = os.getpid()
        self._guard = threading.Lock()  # a check never sees a touch half done
        self._stop = _clock.every(touch_every, self._keep_fresh, "claude-code-locks")

    def intact(self) -> bool:
        """False once another process took one of them from us (it judged us dead): each
        lock is looked at now, not at the last touch (a process paused past the stale time
        resumes here before its touching thread runs again)."""
        with self._guard:
            for held in self._held:
                if not held.lost and _mtime_ns(held.path) != held.mtime_ns:
                    _mark_lost(held)
            return not any(held.lost for held in self._held)

    def release(self) -> None:
        """Stop touching and remove the locks that are still ours, the last taken first."""
        self._stop()
        if os.getpid() != self._pid:
            return  # a forked child: the locks are its parent's
        for held in reversed(self._held):
            if held.lost or _mtime_ns(held.path) != held.mtime_ns:
                continue  # taken over meanwhile: theirs now
            with contextlib.suppress(OSError):
                os.rmdir(held.path)
        if self._record is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._record)

    def _keep_fresh(self) -> None:
        with self._guard:
            for held in self._held:
                if not held.lost:
                    self._touch(held)
            self._write_record()

    def _write_record(self) -> None:
        if self._record is not None:
            _write_record(self._record, self._held)

    @staticmethod
    def _touch(held: _Held) -> None:
        try:
            if _mtime_ns(held.path) != held.mtime_ns:
                raise FileNotFoundError(held.path)
            _set_mtime_now(held.path)
            held.mtime_ns = os.stat(held.path).st_mtime_ns
        except OSError:
            _mark_lost(held)


def _mark_lost(held: _Held) -> None:
    held.lost = True
    log.warning("%s was taken over by another process while we held it", held.path)


def _write_record(record: Path, held: list[_Held]) -> None:
    """Note which locks this process holds, as they are now (inode, mtime)."""
    try:
        stamps = {str(h.path): [os.stat(h.path).st_ino, h.mtime_ns] for h in held if not h.lost}
        data = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "locks": stamps})
        descriptor = os.open(record, os.O_WRONLY | os.O_CREAT, 0o600)
        try:  # one write, padded over the old one: a kill leaves one record or the other
            os.write(descriptor, data.encode("utf-8").ljust(os.fstat(descriptor).st_size))
        finally:
            os.close(descriptor)
    except OSError:
        pass  # without a record a process of ours waits for staleness, as Claude Code does


def _set_mtime_now(path: Path) -> None:
    """Touch a lock with ``_clock``'s time, as proper-lockfile sets its own (staleness is then
    judged on one clock)."""
    moment = int(_clock.now() * 1e9)
    os.utime(path, ns=(moment, moment))


def _mtime_ns(path: Path) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _runs(pid: object) -> bool:
    """Whether process ``pid`` may still run (unknown counts as running)."""
    if os.name != "posix" or not isinstance(pid, int) or pid <= 0:
        return True  # os.kill(pid, 0) on Windows would end the process: never ask there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process
    return True


def _stamp(path: Path) -> list[int] | None:
    """A lock directory's identity and last touch: inode and mtime."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return [info.st_ino, info.st_mtime_ns]


def _remove_ours_left_by_the_dead(locks: Sequence[Path], record: Path) -> None:
    """Remove the locks a process of ours left when it was killed, exactly as it recorded them."""
    try:
        with open(record, encoding="utf-8") as handle:
            found = json.load(handle)
        pid, host, stamps = found["pid"], found["host"], found["locks"]
    except (OSError, ValueError, TypeError, KeyError):
        return
    if not isinstance(stamps, dict) or host != socket.gethostname() or _runs(pid):
        return
    for lock in locks:
        recorded = stamps.get(str(lock))
        if recorded is None or _stamp(lock) != recorded:
            continue  # gone, or someone else's now
        with contextlib.suppress(OSError):
            os.rmdir(lock)
            log.info("Removed %s, left by a process of ours that was killed", lock)


_thread_state = threading.local()


def _held_by_this_thread() -> dict[str, HeldLocks]:
    """Locks this thread holds (a save inside a locked refresh takes them again: no wait)."""
    state = getattr(_thread_state, "held", None)
    if state is None or state[0] != os.getpid():
        state = (os.getpid(), {})
        _thread_state.held = state
    held: dict[str, HeldLocks] = state[1]
    return held


@contextlib.contextmanager
def hold_locks(
    locks: Sequence[Path],
    *,
    stale: float,
    timeout: float,
    what: str,
    location: str = "",
    optional: Collection[Path] = (),
    touch_every: float | None = None,
    record: Path | None = None,
) -> Iterator[HeldLocks]:
    """Take every lock of ``locks`` in order (all or none), waiting up to ``timeout`` seconds.

    A lock untouched for over ``stale`` seconds is taken over. A lock in ``optional`` that
    cannot be created (its folder is not writable) is done without, as Claude Code does.
    ``record``: where to note the locks while held; locks found exactly as recorded there by
    a process that no longer runs are taken over at once.
    """
    keys = [str(lock) for lock in locks]
    mine = _held_by_this_thread()
    if keys and all(key in mine for key in keys):
        yield mine[keys[0]]
        return
    if record is not None:
        _remove_ours_left_by_the_dead(locks, record)
    started = _clock.monotonic()
    deadline = started + timeout
    while True:
        taken, busy = _take_all(locks, stale, optional, location or str(locks[0]), record)
        if busy is None:
            break
        if _clock.monotonic() - started < POLL_SECONDS:
            log.debug("Waiting for Claude Code's lock %s", busy)
        if _clock.monotonic() >= deadline:
            raise TokenFileError(
                location or str(busy),
                f"is being {what} by Claude Code: its lock {busy} stayed held for over "
                f"{timeout:g} s",
                f"wait for Claude Code to finish; if no claude process is running, remove {busy}",
            )
        _clock.sleep(min(POLL_SECONDS, max(0.0, deadline - _clock.monotonic())))
    every = TOUCH_INTERVAL_SECONDS if touch_every is None else touch_every
    held = HeldLocks(taken, every, record)
    for key in keys:
        mine[key] = held
    try:
        yield held
    finally:
        for key in keys:
            mine.pop(key, None)
        held.release()


def _take_all(
    locks: Sequence[Path],
    stale: float,
    optional: Collection[Path],
    location: str,
    record: Path | None,
) -> tuple[list[_Held], Path | None]:
    """Take each lock in turn, noting it in ``record`` at once; when one is busy, let go of
    those taken (no waiting while holding one) and name the busy one."""
    taken: list[_Held] = []
    for lock in locks:
        try:
            mtime_ns = _take(lock, stale)
        except OSError as error:
            if lock in optional:
                log.debug("Going on without Claude Code's lock %s: %s", lock, error)
                continue
            _let_go(taken)
            raise TokenFileError(
                location,
                f"cannot be locked: Claude Code's lock {lock} cannot be created "
                f"({error.strerror or error})",
                f"make {lock.parent} writable",
            ) from None
        if mtime_ns is None:
            _let_go(taken)
            return [], lock
        taken.append(_Held(lock, mtime_ns))
        if record is not None:
            _write_record(record, taken)
    return taken, None


def _take(lock: Path, stale: float) -> int | None:
    """proper-lockfile's acquire: ``mkdir``; a lock older than ``stale`` is removed and taken.
    The new lock's mtime, or None when a live process holds it."""
    for _attempt in range(2):
        try:
            os.mkdir(lock, 0o700)
            with contextlib.suppress(OSError):
                _set_mtime_now(lock)
            return os.stat(lock).st_mtime_ns
        except FileExistsError:
            pass
        try:
            untouched = _clock.now() - os.stat(lock).st_mtime
        except FileNotFoundError:
            continue  # released just now: try again
        if untouched <= stale:
            return None
        log.warning("Taking over %s: untouched for %.0f s, its holder is gone", lock, untouched)
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(lock)
    return None


def _let_go(taken: list[_Held]) -> None:
    for held in reversed(taken):
        with contextlib.suppress(OSError):
            os.rmdir(held.path)


def claude_code_refresh_locks(
    credentials: Path, timeout: float, *, location: str = ""
) -> contextlib.AbstractContextManager[HeldLocks]:
    """Claude Code's two refresh locks beside ``credentials`` (the legacy one is optional: it
    lives beside the folder, which may not be writable)."""
    current, legacy = refresh_lock_paths(credentials.parent)
    return hold_locks(
        [current, legacy],
        stale=REFRESH_STALE_SECONDS,
        timeout=timeout,
        what="refreshed",
        location=location,
        optional=(legacy,),
        record=record_path(credentials, "locks"),
    )


def claude_code_write_lock(
    credentials: Path, *, location: str = "", timeout: float = WRITE_LOCK_TIMEOUT_SECONDS
) -> contextlib.AbstractContextManager[HeldLocks]:
    """Claude Code's lock around writes to its store, beside ``credentials``."""
    folder = credentials.parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return hold_locks(
        [write_lock_path(folder)],
        stale=WRITE_STALE_SECONDS,
        timeout=timeout,
        what="written",
        location=location,
        record=record_path(credentials, "write-lock"),
    )
