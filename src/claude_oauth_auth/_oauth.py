"""OAuthTokenManager: an SDK provider that refreshes once across threads and processes."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from . import _config
from ._errors import TokenFileError, TokenRefreshError
from ._refresh import RefreshRefused, request_refresh
from ._store import (
    Keychain,
    KeychainUnavailable,
    file_lock,
    file_signature,
    read_json_file,
    read_keychain,
    write_json_atomic,
)
from ._tokens import (
    FileShape,
    TokenFormatError,
    TokenSet,
    mask,
    parse_token_document,
    render_token_document,
)

if TYPE_CHECKING:
    from anthropic.lib.credentials import AccessToken

__all__ = ["OAuthTokenManager", "default_token_file"]

log = logging.getLogger("claude_oauth_auth")

FORCED_REFRESH_DEBOUNCE_SECONDS = 5.0
SAVE_RETRY_INTERVAL_SECONDS = 1.0
KEYCHAIN_POLL_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 60.0

_access_token_class: Any = None


def _make_access_token(token: str) -> AccessToken:
    global _access_token_class
    if _access_token_class is None:
        from anthropic.lib.credentials import AccessToken as imported

        _access_token_class = imported
    # expires_at=0: the SDK asks us before every request, so a token rotated on disk is seen.
    token_object: AccessToken = _access_token_class(token, expires_at=0)
    return token_object


def default_token_file() -> Path:
    """The first existing of CLAUDE_AUTH_FILE, our auth.json, Claude Code's file; else our path."""
    named = _config.env_value(_config.ENV.AUTH_FILE)
    ours = _config.expand_path(named) if named else _config.default_auth_file()
    for candidate in (ours, _config.claude_code_file()):
        if candidate.is_file():
            return candidate
    return ours


class OAuthTokenManager:
    """Holds an OAuth token pair, refreshes it before expiry and saves rotated tokens.

    Call it like any SDK credentials provider: ``anthropic.Anthropic(credentials=manager)``.
    Subclasses may override ``_load_tokens``/``_save_tokens`` to change how tokens are stored;
    every read and write, including the re-read under the cross-process lock, goes through them.
    """

    access_token: str | None
    refresh_token: str | None
    token_expiry: float | None

    def __init__(
        self,
        access_token: str | None = None,
        refresh_token: str | None = None,
        token_expiry: float | None = None,
        *,
        token_file: str | os.PathLike[str] | None = None,
        client_id: str | None = None,
        token_url: str | None = None,
        refresh_threshold: float | None = None,
        _keychains: list[Keychain] | None = None,
    ) -> None:
        self._explicit_client_id = client_id or _config.env_value(_config.ENV.CLIENT_ID)
        self._explicit_token_url = token_url or _config.env_value(_config.ENV.TOKEN_URL)
        self.client_id = self._explicit_client_id or _config.DEFAULT_CLIENT_ID
        self.token_url = _config.validate_token_url(
            self._explicit_token_url or _config.DEFAULT_TOKEN_URL
        )
        self.refresh_threshold = _config.refresh_threshold(refresh_threshold)
        self._lock = threading.Lock()
        self._generation = 0
        self._last_refresh_at = -1e9
        self._retry_not_before = 0.0
        self._backoff = 0.0
        self._failure: tuple[str, str | None, int | None] | None = (
            None  # message, refresh token, status
        )
        self._unsaved = False
        self._last_save_attempt = 0.0
        self._signature: tuple[int, int, int] | None = None
        self._shape: FileShape = "ours"
        self._document: dict[str, Any] | None = None
        self._keychains = list(_keychains or [])
        self._keychain_item: Keychain | None = None
        self._keychain_raw: str | None = None
        self._keychain_document: dict[str, Any] | None = None
        self._keychain_polled = 0.0
        self.access_token = None
        self.refresh_token = None
        self.token_expiry = None
        if access_token is not None or refresh_token is not None:
            self.token_file = _config.expand_path(token_file) if token_file is not None else None
            self.access_token = access_token
            self.refresh_token = refresh_token
            self.token_expiry = None if token_expiry is None else float(token_expiry)
            if self.token_file is not None and self.token_file.exists():
                self._shape, self._document = self._peek_document(self.token_file)
                self._signature = file_signature(self.token_file)
        else:
            self.token_file = (
                _config.expand_path(token_file) if token_file is not None else default_token_file()
            )
            self._reload()

    # ----- representation -------------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(access_token={mask(self.access_token)!r}, "
            f"refresh_token={mask(self.refresh_token)!r}, token_expiry={self.token_expiry!r}, "
            f"token_file={str(self.token_file) if self.token_file else None!r})"
        )

    # ----- the SDK provider protocol ------------------------------------------------------------

    def __call__(self, *, force_refresh: bool = False) -> AccessToken:
        """A valid token as an SDK ``AccessToken`` (``expires_at=0``: ask again next time)."""
        return _make_access_token(self.get_valid_token(force_refresh=force_refresh))

    # ----- public API -----------------------------------------------------------------------

    def get_valid_token(self, *, force_refresh: bool = False) -> str:
        """A token that is not within the refresh threshold of expiry, refreshing if needed."""
        if not force_refresh:
            token = self.peek_valid_token()
            if token is not None:
                return token
        return self._slow_token(force=force_refresh, rejected=None)

    async def async_get_valid_token(self, *, force_refresh: bool = False) -> str:
        """Like ``get_valid_token``; a refresh runs in a worker thread, never on the event loop."""
        if not force_refresh:
            token = self.peek_valid_token()
            if token is not None:
                return token
        import anyio.to_thread

        return await anyio.to_thread.run_sync(
            lambda: self._slow_token(force=force_refresh, rejected=None)
        )

    def peek_valid_token(self) -> str | None:
        """The current token if fresh and unchanged on disk; never blocks, never refreshes."""
        if self._unsaved or self._failure is not None or self._storage_changed():
            return None
        token = self.access_token
        expiry = self.token_expiry
        if token is None or token is not self.access_token:
            return None
        if expiry is None or expiry - time.time() > self.refresh_threshold:
            return token
        return None

    def refresh_rejected(self, rejected_token: str) -> str:
        """The API refused ``rejected_token``: refresh unless someone already replaced it."""
        return self._slow_token(force=True, rejected=rejected_token)

    async def async_refresh_rejected(self, rejected_token: str) -> str:
        """``refresh_rejected`` in a worker thread."""
        import anyio.to_thread

        return await anyio.to_thread.run_sync(self.refresh_rejected, rejected_token)

    def refresh(self) -> str:
        """Force a refresh now (one POST, under both locks) and return the new access token."""
        with self._lock:
            return self._refresh_across_processes(force=True, rejected=None, adopt=False)

    def is_token_valid(self) -> bool:
        """True when there is an access token and it has not expired."""
        return self.access_token is not None and (
            self.token_expiry is None or self.token_expiry > time.time()
        )

    def needs_refresh(self) -> bool:
        """True when the token is within the refresh threshold of expiry (or missing)."""
        return self.access_token is None or (
            self.token_expiry is not None
            and self.token_expiry - time.time() <= self.refresh_threshold
        )

    @property
    def permanent_failure(self) -> str | None:
        """Why OAuth stopped working for this manager (the endpoint's words), or None."""
        return None if self._failure is None else self._failure[0]

    @property
    def can_refresh(self) -> bool:
        return self.refresh_token is not None

    # ----- storage hooks (override these two to store tokens elsewhere) ---------------------

    def _load_tokens(self) -> None:
        """Read storage and set ``access_token``, ``refresh_token`` and ``token_expiry``."""
        file_tokens: tuple[TokenSet, FileShape, dict[str, Any]] | None = None
        path = self.token_file
        missing_reason = "does not exist"
        if path is not None:
            try:
                document = read_json_file(path)
            except FileNotFoundError:
                document = None
            if document is not None:
                try:
                    tokens, shape = parse_token_document(document)
                except TokenFormatError as error:
                    raise TokenFileError(str(path), str(error)) from None
                file_tokens = (tokens, shape, document)
        keychain_tokens = self._read_keychain()
        chosen = _fresher(file_tokens, keychain_tokens)
        if chosen is None:
            fix = "log in with Claude Code, or run `claude-oauth-auth save`"
            raise TokenFileError(str(path), missing_reason, fix)
        tokens, shape, document = chosen
        if file_tokens is not None:
            self._shape, self._document = file_tokens[1], file_tokens[2]
        else:
            self._shape = "claude_code"
        self.access_token = tokens.access_token
        self.refresh_token = tokens.refresh_token
        self.token_expiry = tokens.expires_at
        if shape == "ours":
            if not self._explicit_client_id and "client_id" in tokens.extra:
                self.client_id = str(tokens.extra["client_id"])
            if not self._explicit_token_url and "token_url" in tokens.extra:
                self.token_url = _config.validate_token_url(str(tokens.extra["token_url"]))

    def _save_tokens(self) -> None:
        """Write ``access_token``, ``refresh_token`` and ``token_expiry`` to storage."""
        if self.access_token is None:
            return
        tokens = TokenSet(self.access_token, self.refresh_token, self.token_expiry)
        if self._keychain_item is not None:
            keychain_document = render_token_document(
                tokens, "claude_code", self._keychain_document
            )
            raw = json.dumps(keychain_document)
            self._keychain_item.write(raw)
            self._keychain_document, self._keychain_raw = keychain_document, raw
        path = self.token_file
        if path is None or (self._keychain_item is not None and not path.exists()):
            return
        document = render_token_document(tokens, self._shape, self._document)
        write_json_atomic(path, document)
        self._document = document

    # ----- internals ------------------------------------------------------------------------

    def _read_keychain(self) -> tuple[TokenSet, FileShape, dict[str, Any]] | None:
        self._keychain_polled = time.monotonic()
        entry, notes = read_keychain(self._keychains)
        for note in notes:
            log.debug("%s", note)
        if entry is None:
            return None
        self._keychain_item, self._keychain_raw = entry.item, entry.raw
        self._keychain_document = entry.document
        return entry.tokens, "claude_code", entry.document

    def _storage_changed(self) -> bool:
        path = self.token_file
        if path is not None and file_signature(path) != self._signature:
            return True
        if self._keychains and time.monotonic() - self._keychain_polled > KEYCHAIN_POLL_SECONDS:
            self._keychain_polled = time.monotonic()
            item = self._keychain_item or self._keychains[0]
            try:
                return item.read() != self._keychain_raw
            except KeychainUnavailable:
                return False
        return False

    def _reload(self) -> None:
        """Re-read storage through ``_load_tokens`` and remember what we saw."""
        signature = file_signature(self.token_file) if self.token_file is not None else None
        self._load_tokens()
        self._signature = signature
        if self._failure is not None and self.refresh_token != self._failure[1]:
            log.info("New OAuth tokens found in storage; OAuth is usable again")
            self._failure = None

    def _reload_quietly(self) -> None:
        """Re-read storage, keeping what is in memory if storage is unreadable right now."""
        if self._unsaved:
            return
        saved = (self.access_token, self.refresh_token, self.token_expiry)
        try:
            self._reload()
        except (TokenFileError, OSError, ValueError) as error:
            self.access_token, self.refresh_token, self.token_expiry = saved
            self._signature = (
                file_signature(self.token_file) if self.token_file is not None else None
            )
            log.warning("Could not re-read OAuth tokens (%s); keeping the ones in memory", error)

    @staticmethod
    def _peek_document(path: Path) -> tuple[FileShape, dict[str, Any] | None]:
        try:
            document = read_json_file(path)
            return parse_token_document(document)[1], document
        except (OSError, TokenFileError, TokenFormatError):
            return "ours", None

    def _fresh(self) -> bool:
        return self.access_token is not None and (
            self.token_expiry is None or self.token_expiry - time.time() > self.refresh_threshold
        )

    def _slow_token(self, *, force: bool, rejected: str | None) -> str:
        generation = self._generation
        if not force and self._failure is None and self.is_token_valid():
            # Advisory window: serve the still-valid token rather than queue behind a refresh.
            if not self._lock.acquire(blocking=False):
                token = self.access_token
                if token is not None:
                    return token
                self._lock.acquire()
        else:
            self._lock.acquire()
        try:
            return self._decide(force=force, rejected=rejected, generation=generation)
        finally:
            self._lock.release()

    def _decide(self, *, force: bool, rejected: str | None, generation: int) -> str:
        if self._unsaved:
            self._retry_save()
        if force and self.access_token is not None:
            if rejected is not None and self.access_token != rejected:
                return self.access_token  # already replaced
            recently = time.monotonic() - self._last_refresh_at < FORCED_REFRESH_DEBOUNCE_SECONDS
            if rejected is None and (self._generation != generation or recently):
                return self.access_token  # a burst of forced calls after one refresh
        if not force:
            if self._storage_changed():
                self._reload_quietly()
            if self._failure is None and self._fresh():
                return self._current()
        if self._failure is not None:
            self._raise_refused(self._failure[0], self._failure[2])
        if not force and time.monotonic() < self._retry_not_before and self.is_token_valid():
            return self._current()
        try:
            return self._refresh_across_processes(force=force, rejected=rejected, adopt=True)
        except TokenRefreshError as error:
            self._backoff = min(MAX_BACKOFF_SECONDS, max(1.0, self._backoff * 2))
            wait = error.retry_after if error.retry_after is not None else self._backoff
            self._retry_not_before = time.monotonic() + wait
            if not force and self.is_token_valid():
                log.warning(
                    "OAuth token refresh failed (%s); using the current token, which is still "
                    "valid for %.0f s, and retrying in %.0f s",
                    error,
                    (self.token_expiry or 0) - time.time(),
                    wait,
                )
                return self._current()
            raise

    def _current(self) -> str:
        token = self.access_token
        if token is None:
            raise TokenRefreshError("no OAuth access token is loaded")
        return token

    @contextlib.contextmanager
    def _process_lock(self) -> Iterator[None]:
        if self.token_file is None:
            yield
            return
        with file_lock(self.token_file):
            yield

    def _refresh_across_processes(self, *, force: bool, rejected: str | None, adopt: bool) -> str:
        before = self.access_token
        with self._process_lock():
            if self.token_file is not None:
                self._reload_quietly()
                replaced = self.access_token != before and self.access_token != rejected
                usable = adopt and self._failure is None and self.is_token_valid()
                if usable and (replaced or (not force and self._fresh())):
                    self._mark_refreshed()
                    log.debug("Adopted OAuth tokens another process refreshed")
                    return self._current()
            if self._failure is not None:
                self._raise_refused(self._failure[0], self._failure[2])
            return self._post_and_save()

    def _post_and_save(self) -> str:
        refresh_token = self.refresh_token
        if refresh_token is None:
            message = "the OAuth access token has expired and there is no refresh token"
            if self.token_file is not None:
                message += f" in {self.token_file}"
            self._raise_refused(message + "; log in again", None)
        try:
            fresh = request_refresh(
                self.token_url, refresh_token, self.client_id, user_agent=_user_agent()
            )
        except RefreshRefused as refused:
            if self._adopt_rotation_by_other_program(refresh_token):
                return self._current()
            message = f"the token endpoint refused the refresh token ({refused})"
            self._failure = (message, refresh_token, refused.status)
            self._raise_refused(message, refused.status)
        self.access_token = fresh.access_token
        self.refresh_token = fresh.refresh_token
        self.token_expiry = fresh.expires_at
        self._mark_refreshed()
        self._backoff = 0.0
        self._persist()
        log.info(
            "Refreshed the OAuth access token (valid for %.0f s)%s",
            (fresh.expires_at or 0) - time.time(),
            f"; saved to {self.token_file}" if self.token_file and not self._unsaved else "",
        )
        return fresh.access_token

    def _adopt_rotation_by_other_program(self, spent_refresh_token: str) -> bool:
        """After invalid_grant: a program that ignores our lock may have rotated the tokens."""
        if self.token_file is None and not self._keychains:
            return False
        self._reload_quietly()
        if self.refresh_token != spent_refresh_token and self.is_token_valid():
            self._mark_refreshed()
            log.info("Adopted OAuth tokens another program refreshed")
            return True
        return False

    def _mark_refreshed(self) -> None:
        self._generation += 1
        self._last_refresh_at = time.monotonic()

    def _persist(self) -> None:
        """Save through ``_save_tokens``; on failure keep tokens in memory and retry later."""
        self._last_save_attempt = time.monotonic()
        try:
            self._save_tokens()
        except Exception as error:
            if not self._unsaved:
                where = self.token_file or "token storage"
                log.error(
                    "Could not save the rotated OAuth tokens to %s (%s). They are kept in memory "
                    "and the save is retried; free disk space or fix permissions on that folder, "
                    "or this login is lost when the process exits.",
                    where,
                    getattr(error, "strerror", None) or error,
                )
            self._unsaved = True
            return
        if self._unsaved:
            log.info(
                "Saved the rotated OAuth tokens to %s after an earlier failure", self.token_file
            )
        self._unsaved = False
        self._signature = file_signature(self.token_file) if self.token_file else None

    def _retry_save(self) -> None:
        if time.monotonic() - self._last_save_attempt < SAVE_RETRY_INTERVAL_SECONDS:
            return
        try:
            with self._process_lock():
                self._persist()
        except TokenFileError as error:
            log.debug("Save retry could not take the lock: %s", error)

    def _raise_refused(self, message: str, status: int | None) -> NoReturn:
        from ._sdk_errors import OAuthRefreshError

        raise OAuthRefreshError(message, token_url=self.token_url, endpoint_status=status)


def _fresher(
    first: tuple[TokenSet, FileShape, dict[str, Any]] | None,
    second: tuple[TokenSet, FileShape, dict[str, Any]] | None,
) -> tuple[TokenSet, FileShape, dict[str, Any]] | None:
    if first is None or second is None:
        return first or second
    first_expiry = first[0].expires_at or 0.0
    second_expiry = second[0].expires_at or 0.0
    return second if second_expiry > first_expiry else first


def _user_agent() -> str:
    from . import __version__

    return f"claude-oauth-auth/{__version__}"
