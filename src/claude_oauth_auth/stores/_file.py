"""FileStore: tokens in a JSON file, in our shape or Claude Code's, written back in its own."""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import _clock, _config
from .._errors import StoreConflict, TokenFileError
from .._tokens import (
    LOG_IN_WITH_CLAUDE_CODE,
    LOGGED_OUT_BY_CLAUDE_CODE,
    FileShape,
    TokenDocument,
    TokenFormatError,
    TokenSet,
    is_logged_out_by_claude_code,
    parse_token_document,
)
from .._tokens import render_token_document as render
from ._base import DEFAULT_LOCK_TIMEOUT, Version
from ._claude_locks import (
    HeldLocks,
    claude_code_refresh_locks,
    claude_code_write_lock,
    shares_claude_code_locks,
)
from ._files import (
    adopt_temp_file,
    file_lock,
    file_signature,
    folder_writable,
    leftover_temp_files,
    read_json_file,
    write_json_atomic,
)

__all__ = ["FileStore", "path_of"]

log = logging.getLogger("claude_oauth_auth")


class FileStore:
    """A token file: atomic 0600 writes, ``<file>.oauth.lock`` beside it, its stat as version.

    Saving re-reads the file and changes only the token fields, so keys other programs keep
    there (and the file's shape) survive. On Claude Code's ``.credentials.json`` the lock and
    the save also take Claude Code's own locks (see ``_claude_locks``).
    """

    poll_interval: float | None = 1.0

    def __init__(self, path: str | os.PathLike[str], *, claude_code: bool | None = None) -> None:
        """A store over the token file at ``path`` (``~`` expanded); the file need not exist yet.

        ``claude_code``: the file is Claude Code's, so a login is written in its shape (unless
        the file holds ours) and under its locks too; by default when the file is named
        ``.credentials.json`` and is not in our shape."""
        self.path = _config.expand_path(path)
        self._shape: FileShape | None = None
        self._claude_locks: HeldLocks | None = None
        self._claude_code = claude_code

    def __repr__(self) -> str:
        return f"FileStore({str(self.path)!r})"

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def writable(self) -> bool:
        return folder_writable(self.path)[0]

    @property
    def shape(self) -> FileShape | None:
        """The file's shape as last read: ``"ours"`` or ``"claude_code"``."""
        return self._shape

    def why_not_writable(self) -> str:
        """Why a save would fail, or an empty string."""
        return folder_writable(self.path)[1]

    def version(self) -> Version:
        return file_signature(self.path)

    def load(self) -> TokenSet | None:
        document = self._read()
        if document is None:
            return None
        tokens, self._shape = self._parse(document)
        return tokens

    def save(self, tokens: TokenSet, *, expected_version: Version) -> None:
        with self._write_lock():
            if file_signature(self.path) != expected_version:
                raise StoreConflict(self.location)
            previous = self._read_quietly()
            shape = self._shape or ("claude_code" if self._claude_code else "ours")
            document = TokenDocument(render(tokens, shape, previous))
            write_json_atomic(self.path, document)

    @contextlib.contextmanager
    def lock(self, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[None]:
        deadline = _clock.monotonic() + timeout
        with self._own_lock(timeout):
            if not self._takes_claude_code_locks():
                yield
                return
            left = max(0.0, deadline - _clock.monotonic())
            with claude_code_refresh_locks(self.path, left, location=self.location) as held:
                self._claude_locks = held
                try:
                    yield
                finally:
                    self._claude_locks = None

    def holds_lock(self) -> bool:
        """Under ``lock()``: False when a process took Claude Code's lock from us meanwhile."""
        held = self._claude_locks
        return held is None or held.intact()

    def _own_lock(self, timeout: float) -> contextlib.AbstractContextManager[object]:
        """Our lock, ``<file>.oauth.lock``, taken first."""
        return file_lock(self.path, timeout)

    def _takes_claude_code_locks(self) -> bool:
        if self._claude_code is not None:
            return self._claude_code
        return shares_claude_code_locks(self.path, self._shape)

    def _write_lock(self) -> contextlib.AbstractContextManager[object]:
        """Claude Code's write lock, on its credentials file; else nothing."""
        if not self._takes_claude_code_locks():
            return contextlib.nullcontext()
        return claude_code_write_lock(self.path, location=self.location)

    def delete(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.realpath(self.path))

    def recover_interrupted_save(self) -> bool:
        """Call under the lock: adopt the temp file a killed save of ours left behind, when it
        parses, is ours, has the file's shape and holds newer tokens than the file. Never over
        a login Claude Code logged out: what we saved before that is older."""
        try:
            current: TokenSet | None = self.load()
        except TokenFileError as error:
            if error.reason == LOGGED_OUT_BY_CLAUDE_CODE:
                return False
            current = None  # a broken file: any whole save of ours is better
        # Newer: a later expiry, or the same one (whole seconds) written after the file was.
        floor = (-math.inf, -1) if current is None else _age(current, self.path)
        best: tuple[tuple[float, int], Path] | None = None
        for candidate in leftover_temp_files(self.path):
            try:
                tokens, shape = self._parse(read_json_file(candidate))
            except (OSError, TokenFileError):
                continue  # half written, or not a token document: not a save to recover
            if self._shape is not None and current is not None and shape != self._shape:
                continue
            if current is not None and tokens.refresh_token == current.refresh_token:
                continue
            age = _age(tokens, candidate)
            if age > floor and (best is None or age > best[0]):
                best = (age, candidate)
        if best is None:
            return False
        try:
            with self._write_lock():
                adopt_temp_file(best[1], self.path)
        except (OSError, TokenFileError) as error:
            reason = getattr(error, "strerror", None) or error
            log.warning("Could not recover %s: %s", best[1].name, reason)
            return False
        log.warning(
            "Recovered newer OAuth tokens from %s, a save to %s that was interrupted",
            best[1].name,
            self.path,
        )
        self.load()
        return True

    # ----- reading ------------------------------------------------------------------------

    def read_document(self) -> dict[str, Any] | None:
        """The file's JSON object, None when the file does not exist."""
        return self._read()

    def _read(self) -> dict[str, Any] | None:
        try:
            document = read_json_file(self.path)
        except FileNotFoundError:
            return None
        if not isinstance(document, dict):
            self._parse(document)  # raises, naming what the file holds instead
        found: dict[str, Any] = document
        return found

    def _read_quietly(self) -> dict[str, Any] | None:
        """The current document to merge into, or None when it is missing or unusable."""
        try:
            document = self._read()
        except (OSError, TokenFileError):
            return None
        if document is not None:
            with contextlib.suppress(TokenFileError):
                self._shape = self._parse(document)[1]
        return document

    def _parse(self, document: Any) -> tuple[TokenSet, FileShape]:
        if is_logged_out_by_claude_code(document):
            self._shape = "claude_code"
            raise TokenFileError(str(self.path), LOGGED_OUT_BY_CLAUDE_CODE, LOG_IN_WITH_CLAUDE_CODE)
        try:
            return parse_token_document(document)
        except TokenFormatError as error:
            raise TokenFileError(str(self.path), str(error)) from None


def _age(tokens: TokenSet, path: Path) -> tuple[float, int]:
    """How new a saved token set is: its expiry, then when its file was written."""
    try:
        written = os.stat(path).st_mtime_ns
    except OSError:
        written = -1
    return (tokens.expires_at if tokens.expires_at is not None else -1.0, written)


def path_of(store: object) -> Path | None:
    """The file behind a store, when it has one."""
    path = getattr(store, "path", None)
    return path if isinstance(path, Path) else None
