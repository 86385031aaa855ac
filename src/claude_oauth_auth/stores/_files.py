"""Token files on disk: safe reads, atomic 0600 writes that keep links and owners, the lock."""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import _clock
from .._errors import TokenFileError
from .._tokens import TokenDocument

__all__ = [
    "LOCK_TIMEOUT_SECONDS",
    "MAX_TOKEN_FILE_BYTES",
    "Signature",
    "adopt_temp_file",
    "file_lock",
    "file_signature",
    "folder_writable",
    "leftover_temp_files",
    "lock_path",
    "read_json_file",
    "resolved",
    "write_json_atomic",
]

log = logging.getLogger("claude_oauth_auth")

MAX_TOKEN_FILE_BYTES = 1024 * 1024
LOCK_TIMEOUT_SECONDS = 60.0
STALE_TEMP_SECONDS = 600.0
Signature = tuple[int, int, int]


def file_signature(path: Path) -> Signature | None:
    """(inode, mtime_ns, size) of ``path``, or None when it does not exist."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_mtime_ns, info.st_size)


def read_json_file(path: Path, *, check_permissions: bool = True) -> Any:
    """Parse a JSON token file. FileNotFoundError when absent, TokenFileError when unusable."""
    where = str(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as error:
        raise TokenFileError(where, f"cannot be inspected ({error.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise TokenFileError(where, "is a directory, not a token file")
    if not stat.S_ISREG(info.st_mode):
        raise TokenFileError(where, "is not a regular file (a FIFO, socket or device)")
    if info.st_size > MAX_TOKEN_FILE_BYTES:
        raise TokenFileError(where, f"is {info.st_size} bytes, larger than a token file can be")
    if check_permissions and os.name == "posix" and info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise TokenFileError(
            where,
            "is writable by other users, so its tokens cannot be trusted",
            f"run chmod 600 {where}",
        )
    if check_permissions:
        _check_owner(where, info)
    problem: str | None = None
    try:
        # O_NONBLOCK: a FIFO swapped in after the stat must not hang the reader.
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(descriptor, "rb") as handle:
            raw = _Bytes(handle.read(MAX_TOKEN_FILE_BYTES + 1))
    except PermissionError:
        fix = f"run chmod 600 {where}"
        raise TokenFileError(where, "cannot be read (permission denied)", fix) from None
    except OSError as error:
        raise TokenFileError(where, f"cannot be read ({error.strerror})") from None
    if not raw.data.strip():
        raise TokenFileError(where, "is empty")
    # The content is never quoted, and never a bare local of a frame that raises: it may hold
    # a secret (and tracebacks that record locals would show it).
    try:
        document = json.loads(raw.data.decode("utf-8"), object_pairs_hook=TokenDocument)
    except UnicodeDecodeError:
        problem = "is not UTF-8 text"
    except json.JSONDecodeError as error:
        problem = f"is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})"
    except (ValueError, RecursionError):
        # Python's own limits: an integer of thousands of digits, or nesting thousands deep.
        problem = "is not a token file (its JSON is absurdly large or deep)"
    if problem is not None:
        raise TokenFileError(where, problem)
    return document


class _Bytes:
    """File content, masked in reprs."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"<{len(self.data)} bytes>"


def _check_owner(where: str, info: os.stat_result) -> None:
    """Trust a file owned by the reader or by root; root trusts any owner."""
    if os.name != "posix":
        return
    me = os.geteuid()
    if me != 0 and info.st_uid not in (me, 0):
        raise TokenFileError(
            where,
            f"is owned by another user (uid {info.st_uid}), so its tokens cannot be trusted",
            f"run chown $(id -u) {where}, or point at a file of your own",
        )


def resolved(path: Path) -> Path:
    """Where ``path`` really is: a symlink's final target (a dotfile manager's link)."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def folder_writable(path: Path) -> tuple[bool, str]:
    """Whether a temp file can be created beside ``path`` and renamed over it, and why not."""
    target = resolved(path)
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        try:
            read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
        except (OSError, AttributeError):
            read_only = False
        why = "is on a read-only file system" if read_only else "is not writable (permissions)"
        return False, f"the folder {folder} {why}"
    return True, ""


def write_json_atomic(path: Path, document: Any) -> None:
    """Write JSON to ``path`` via a 0600 temp file beside it, fsync and atomic replace.

    A symlink is kept: its target is replaced. The file's owner and group are kept.
    """
    path = resolved(path)
    folder = path.parent
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    payload = _Bytes((json.dumps(document, indent=2) + "\n").encode("utf-8"))
    try:
        owner: os.stat_result | None = os.stat(path)
    except OSError:
        owner = None
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(payload.data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o600)
        if owner is not None:
            _keep_owner(temp_name, owner)
        _replace_with_retry(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    _fsync_folder(folder)
    _remove_stale_temp_files(path)


def leftover_temp_files(path: Path) -> list[Path]:
    """Temp files of our own saves beside ``path`` that a kill left behind (private, ours)."""
    target = resolved(path)
    found = []
    for candidate in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        if candidate.name.startswith(f".{target.name}.oauth."):
            continue  # the lock's and the shared state's own temp files
        try:
            info = os.lstat(candidate)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077:
            continue
        if os.name == "posix" and info.st_uid != os.geteuid():
            continue
        found.append(candidate)
    return found


def adopt_temp_file(candidate: Path, path: Path) -> None:
    """Move a recovered temp file over ``path`` (atomic), as a save would have."""
    target = resolved(path)
    _replace_with_retry(str(candidate), target)
    _fsync_folder(target.parent)


def _keep_owner(temp_name: str, previous: os.stat_result) -> None:
    """Give the new file the old one's owner and group (as root, or a group we belong to)."""
    if os.name != "posix":
        return
    if (previous.st_uid, previous.st_gid) == (os.geteuid(), os.getegid()):
        return
    uid = previous.st_uid if os.geteuid() == 0 else -1
    with contextlib.suppress(OSError):
        os.chown(temp_name, uid, previous.st_gid)


def _remove_stale_temp_files(path: Path) -> None:
    """Temp files a killed writer left behind hold tokens: remove those over 10 minutes old."""
    cutoff = _clock.now() - STALE_TEMP_SECONDS
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()


def _replace_with_retry(source: str, target: Path, attempts: int = 6) -> None:
    # Windows refuses to replace a file another process holds open; that passes quickly.
    for attempt in range(attempts):
        try:
            os.replace(source, target)
            return
        except PermissionError:
            if attempt == attempts - 1:
                raise
            _clock.sleep(0.02 * 2**attempt)


def _fsync_folder(folder: Path) -> None:
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def lock_path(token_file: Path) -> Path:
    """The lock beside a token file (not ``<file>.lock``, which Claude Code's own locking uses).

    Two paths to one file (a symlink and its target) share one lock.
    """
    target = resolved(token_file)
    return target.with_name(target.name + ".oauth.lock")


@contextlib.contextmanager
def file_lock(token_file: Path, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
    """Hold the cross-process lock for ``token_file``."""
    import filelock  # imported here: only a refresh or a save needs it

    lock = filelock.FileLock(str(lock_path(token_file)), timeout=timeout, mode=0o600)
    try:
        lock_path(token_file).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock.acquire()
    except filelock.Timeout:
        raise TokenFileError(
            str(token_file),
            f"is locked by another process for over {timeout:.0f} s",
            f"check for a stuck process holding {lock_path(token_file)}",
        ) from None
    except OSError as error:
        # No lock, no refresh: a refresh token is never spent unless its successor can be saved.
        raise TokenFileError(
            str(token_file),
            f"cannot be locked: the lock file {lock_path(token_file)} cannot be created "
            f"({error.strerror or error})",
            "make the folder writable, or point CLAUDE_AUTH_FILE at a writable place",
        ) from None
    try:
        yield
    finally:
        lock.release()
