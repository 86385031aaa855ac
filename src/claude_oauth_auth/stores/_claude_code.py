"""ClaudeCodeStore: Claude Code's own login (its credentials file, and the Keychain on macOS)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from pathlib import Path

from .. import _clock, _config
from .._errors import StoreConflict, StoreError, TokenFileError
from .._tokens import (
    CLAUDE_CODE_KEY,
    LOGGED_OUT_BY_CLAUDE_CODE,
    TokenSet,
    render_token_document,
)
from ._base import DEFAULT_LOCK_TIMEOUT, Version
from ._claude_locks import claude_code_write_lock
from ._file import FileStore
from ._keychain import Keychain, KeychainEntry, KeychainUnavailable, keychain_enabled, read_keychain

__all__ = ["ClaudeCodeStore"]

log = logging.getLogger("claude_oauth_auth")

KEYCHAIN_POLL_SECONDS = 5.0


class ClaudeCodeStore:
    """Claude Code's login: ``.credentials.json`` in ``$CLAUDE_SECURESTORAGE_CONFIG_DIR``,
    ``$CLAUDE_CONFIG_DIR`` or ``~/.claude``, and on macOS the Keychain item ``Claude
    Code-credentials`` (suffixed per folder); the fresher of the two wins.

    Tokens are written back where they were found, in Claude Code's shape, keeping every
    other key. ``delete()`` refuses: log out with ``claude`` itself.
    """

    poll_interval: float | None = 1.0

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        keychains: list[Keychain] | None = None,
    ) -> None:
        """Claude Code's file at ``path`` (default: its usual place) and, on macOS, its Keychain
        item; ``keychains`` replaces the Keychain lookups (tests, other platforms)."""
        where = path if path is not None else _config.claude_code_file()
        self.file = FileStore(where, claude_code=True)
        if keychains is None and keychain_enabled():
            keychains = Keychain.candidates(_config.claude_code_keychain_suffix_source())
        self.keychains = list(keychains or [])
        self.notes: list[str] = []
        self._entry: KeychainEntry | None = None
        self._keychain_digest: str | None = None
        self._keychain_read_at = -1e9

    def __repr__(self) -> str:
        return f"ClaudeCodeStore({self.location!r})"

    @property
    def path(self) -> Path:
        return self.file.path

    @property
    def location(self) -> str:
        if self._entry is not None:
            return f"Keychain item {self._entry.item.service!r} and {self.file.path}"
        return str(self.file.path)

    @property
    def shape(self) -> str:
        return "claude_code"

    @property
    def writable(self) -> bool:
        return self._entry is not None or self.file.writable

    def why_not_writable(self) -> str:
        """Why a save would fail, or an empty string."""
        return "" if self._entry is not None else self.file.why_not_writable()

    def recover_interrupted_save(self) -> bool:
        """Adopt the temp file a killed save to the credentials file left (see FileStore)."""
        return self.file.recover_interrupted_save()

    def version(self) -> Version:
        if self.keychains and _clock.monotonic() - self._keychain_read_at > KEYCHAIN_POLL_SECONDS:
            self._read_keychain()
        return self._current_version()

    def _current_version(self) -> Version:
        marker = (self.file.version(), self._keychain_digest)
        return None if marker == (None, None) else marker

    def load(self) -> TokenSet | None:
        from_keychain = self._read_keychain()
        document = self.file.read_document()
        has_login = document is not None and CLAUDE_CODE_KEY in document
        try:
            from_file = self.file.load() if has_login else None
        except TokenFileError as error:
            if from_keychain is None or error.reason != LOGGED_OUT_BY_CLAUDE_CODE:
                raise
            from_file = None  # the Keychain holds the login Claude Code uses
        if from_keychain is None:
            return from_file
        if from_file is None:
            return from_keychain
        later = (from_keychain.expires_at or 0.0) > (from_file.expires_at or 0.0)
        return from_keychain if later else from_file

    def save(self, tokens: TokenSet, *, expected_version: Version) -> None:
        with claude_code_write_lock(self.file.path, location=self.location):
            self._save(tokens, expected_version)

    def _save(self, tokens: TokenSet, expected_version: Version) -> None:
        if self.keychains:
            self._read_keychain()
        if self._current_version() != expected_version:
            raise StoreConflict(self.location)
        entry = self._entry
        if entry is not None:
            try:  # the document inline, never a bare local: tracebacks may record locals
                entry.item.write(
                    json.dumps(render_token_document(tokens, "claude_code", entry.document))
                )
            except KeychainUnavailable as error:
                raise StoreError(f"Keychain item {entry.item.service!r}", str(error)) from None
            self._read_keychain()
            if not self.file.path.exists():
                return
        self.file.save(tokens, expected_version=self.file.version())

    def lock(
        self, timeout: float = DEFAULT_LOCK_TIMEOUT
    ) -> contextlib.AbstractContextManager[None]:
        """The file's lock: ours beside it, then Claude Code's two refresh locks."""
        return self.file.lock(timeout)

    def holds_lock(self) -> bool:
        """Under ``lock()``: False when a process took Claude Code's lock from us meanwhile."""
        return self.file.holds_lock()

    def delete(self) -> None:
        raise StoreError(
            self.location,
            "is Claude Code's own login, which claude-oauth-auth does not delete",
            "log out with `claude` (/logout)",
        )

    def _read_keychain(self) -> TokenSet | None:
        self._keychain_read_at = _clock.monotonic()
        if not self.keychains:
            return None
        entry, self.notes = read_keychain(self.keychains)
        for note in self.notes:
            log.debug("%s", note)
        if entry is None:
            if any("unavailable" in note for note in self.notes) and self._entry is not None:
                return self._entry.tokens  # locked for a moment: keep what we had
            self._entry, self._keychain_digest = None, None
            return None
        self._entry = entry
        self._keychain_digest = hashlib.sha256(entry.raw.encode("utf-8")).hexdigest()
        return entry.tokens
