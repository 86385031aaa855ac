"""Token files on disk: safe reads, atomic 0600 writes, the cross-process lock, the Keychain."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import TokenFileError
from ._tokens import TokenFormatError, TokenSet, parse_token_document

__all__ = [
    "MAX_TOKEN_FILE_BYTES",
    "Keychain",
    "KeychainEntry",
    "KeychainUnavailable",
    "file_lock",
    "file_signature",
    "lock_path",
    "read_json_file",
    "read_keychain",
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
    if info.st_size > MAX_TOKEN_FILE_BYTES:
        raise TokenFileError(where, f"is {info.st_size} bytes, larger than a token file can be")
    if check_permissions and os.name == "posix" and info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise TokenFileError(
            where,
            "is writable by other users, so its tokens cannot be trusted",
            f"run chmod 600 {where}",
        )
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_TOKEN_FILE_BYTES + 1)
    except PermissionError:
        fix = f"run chmod 600 {where}"
        raise TokenFileError(where, "cannot be read (permission denied)", fix) from None
    except OSError as error:
        raise TokenFileError(where, f"cannot be read ({error.strerror})") from None
    if not raw.strip():
        raise TokenFileError(where, "is empty")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise TokenFileError(where, "is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        # Never quote the document: it may hold a secret.
        raise TokenFileError(
            where, f"is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})"
        ) from None
    except (ValueError, RecursionError):
        # Python's own limits: an integer of thousands of digits, or nesting thousands deep.
        reason = "is not a token file (its JSON is absurdly large or deep)"
        raise TokenFileError(where, reason) from None


def write_json_atomic(path: Path, document: Any) -> None:
    """Write JSON to ``path`` via a 0600 temp file in the same folder, fsync and atomic replace."""
    folder = path.parent
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = (json.dumps(document, indent=2) + "\n").encode("utf-8")
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o600)
        _replace_with_retry(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    _fsync_folder(folder)
    _remove_stale_temp_files(path)


def _remove_stale_temp_files(path: Path) -> None:
    """Temp files a killed writer left behind hold tokens: remove those over 10 minutes old."""
    cutoff = time.time() - STALE_TEMP_SECONDS
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
            time.sleep(0.02 * 2**attempt)


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
    """The lock beside a token file (not ``<file>.lock``, which Claude Code's own locking uses)."""
    return token_file.with_name(token_file.name + ".oauth.lock")


@contextlib.contextmanager
def file_lock(token_file: Path, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
    """Hold the cross-process lock for ``token_file``."""
    import filelock  # imported here: only a refresh or a save needs it

    lock = filelock.FileLock(str(lock_path(token_file)), timeout=timeout, mode=0o600)
    try:
        token_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock.acquire()
    except filelock.Timeout:
        raise TokenFileError(
            str(token_file),
            f"is locked by another process for over {timeout:.0f} s",
            f"check for a stuck process holding {lock_path(token_file)}",
        ) from None
    except OSError as error:
        # A folder we cannot write to: go on unlocked; the save that follows fails loudly and
        # the caller keeps the new tokens in memory.
        log.warning(
            "Cannot create the lock file %s (%s); continuing without the cross-process lock",
            lock_path(token_file),
            error.strerror or error,
        )
        yield
        return
    try:
        yield
    finally:
        lock.release()


class KeychainUnavailable(Exception):
    """The macOS Keychain could not be used (locked, no ``security`` tool, …)."""


class Keychain:
    """Claude Code's Keychain item, read and written through the ``security`` command."""

    SERVICE = "Claude Code-credentials"

    def __init__(self, service: str, account: str | None = None) -> None:
        self.service = service
        self.account = account or os.environ.get("USER") or _login_name()

    @classmethod
    def candidates(cls, config_dir: str | None) -> list[Keychain]:
        """The item names Claude Code may use (suffixed when CLAUDE_CONFIG_DIR is set)."""
        items = []
        if config_dir:
            digest = hashlib.sha256(config_dir.encode("utf-8")).hexdigest()[:8]
            items.append(cls(f"{cls.SERVICE}-{digest}"))
        items.append(cls(cls.SERVICE))
        return items

    def __repr__(self) -> str:
        return f"Keychain(service={self.service!r})"

    def read(self) -> str | None:
        """The stored secret, or None when there is no such item."""
        command = ["find-generic-password", "-s", self.service, "-a", self.account, "-w"]
        result = self._run(command, stdin=None)
        if result.returncode == 44:  # errSecItemNotFound
            return None
        if result.returncode != 0:
            raise KeychainUnavailable(_security_reason(result))
        return result.stdout.rstrip("\n")

    def write(self, secret: str) -> None:
        """Store ``secret``, passed hex-encoded on stdin so it never shows in the process list."""
        line = (
            f'add-generic-password -U -s "{self.service}" -a "{self.account}" '
            f"-X {secret.encode('utf-8').hex()}\n"
        )
        result = self._run(["-i"], stdin=line)
        if result.returncode != 0:
            raise KeychainUnavailable(_security_reason(result))

    @staticmethod
    def _run(arguments: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                ["security", *arguments],
                input=stdin,
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except FileNotFoundError:
            raise KeychainUnavailable("the `security` command is not available") from None
        except subprocess.TimeoutExpired:
            raise KeychainUnavailable("the `security` command timed out") from None


@dataclass
class KeychainEntry:
    """A Keychain item holding Claude Code's JSON, parsed."""

    item: Keychain
    raw: str
    document: dict[str, Any]
    tokens: TokenSet


def read_keychain(items: list[Keychain]) -> tuple[KeychainEntry | None, list[str]]:
    """The first item holding usable tokens, and notes on why others were not usable."""
    notes: list[str] = []
    for item in items:
        try:
            raw = item.read()
        except KeychainUnavailable as error:
            notes.append(f"Keychain unavailable: {error}")
            break
        if raw is None:
            continue
        try:
            document = json.loads(raw)
            tokens, _shape = parse_token_document(document)
        except (ValueError, TokenFormatError) as error:
            notes.append(f"Keychain item {item.service!r} is not usable: {error}")
            continue
        return KeychainEntry(item, raw, document, tokens), notes
    return None, notes


def keychain_enabled() -> bool:
    """The Keychain is looked at on macOS only."""
    return sys.platform == "darwin"


def _security_reason(result: subprocess.CompletedProcess[str]) -> str:
    text = (result.stderr or "").strip().splitlines()
    detail = text[-1][:200] if text else f"exit status {result.returncode}"
    if "interaction is not allowed" in detail.lower() or result.returncode == 36:
        return "the Keychain is locked (over SSH, run `security unlock-keychain` first)"
    return f"`security` failed: {detail}"


def _login_name() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:
        return "user"
