"""SdkProfileStore: an SDK profile's ``credentials/<profile>.json``, with our lock beside it."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from typing import Any

from .. import _config
from .._errors import StoreConflict, TokenFileError
from .._tokens import GENERATION_KEY, TokenSet, parse_generation, put_generation
from ._base import DEFAULT_LOCK_TIMEOUT, Version
from ._files import file_lock, file_signature, folder_writable, read_json_file, write_json_atomic

__all__ = ["CREDENTIALS_TYPE", "SdkProfileStore"]

CREDENTIALS_TYPE = "oauth_token"
CREDENTIALS_VERSION = "1.0"


class SdkProfileStore:
    """The SDK's credentials file for one profile (``ant auth login`` writes it).

    Read and written in the SDK's shape: ``access_token``, ``refresh_token``, ``expires_at``
    (unix **seconds**), ``type`` ``"oauth_token"``, and our ``generation``; every other key is
    kept (the SDK's own refresh keeps ours, as it found it). The SDK's refusals
    are kept too: a symlink, or a file group or others may read. ``refreshable=False`` (a
    profile without a ``client_id``, rotated by another program) hides the refresh token, so
    the file is re-read and never refreshed. The lock is ``<file>.oauth.lock`` beside it.
    """

    poll_interval: float | None = 1.0

    def __init__(
        self, path: str | os.PathLike[str], *, profile: str = "default", refreshable: bool = True
    ) -> None:
        """The SDK's ``credentials/<profile>.json`` at ``path``; ``refreshable=False`` for a
        profile without a ``client_id`` (its tokens are re-read, never refreshed)."""
        self.path = _config.expand_path(path)
        self.profile = profile
        self.refreshable = refreshable

    def __repr__(self) -> str:
        return f"SdkProfileStore({str(self.path)!r}, profile={self.profile!r})"

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def writable(self) -> bool:
        return folder_writable(self.path)[0]

    def version(self) -> Version:
        return file_signature(self.path)

    def load(self) -> TokenSet | None:
        document = self._read()
        if document is None:
            return None
        return self._parse(document)

    def save(self, tokens: TokenSet, *, expected_version: Version) -> None:
        if file_signature(self.path) != expected_version:
            raise StoreConflict(self.location)
        try:
            previous = self._read() or {}
        except TokenFileError:
            previous = {}
        document: dict[str, Any] = dict(previous)
        document["version"] = CREDENTIALS_VERSION
        document["type"] = CREDENTIALS_TYPE
        document["access_token"] = tokens.access_token
        if tokens.expires_at is not None:
            document["expires_at"] = int(tokens.expires_at)
        if tokens.refresh_token is not None:
            document["refresh_token"] = tokens.refresh_token
        put_generation(document, tokens)
        write_json_atomic(self.path, document)

    @contextlib.contextmanager
    def lock(self, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[None]:
        with file_lock(self.path, timeout):
            yield

    def delete(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    # ----- reading ------------------------------------------------------------------------

    def _read(self) -> dict[str, Any] | None:
        where = str(self.path)
        if os.name == "posix":
            try:
                info = os.stat(self.path, follow_symlinks=False)
            except FileNotFoundError:
                return None
            except OSError as error:
                raise TokenFileError(where, f"cannot be inspected ({error.strerror})") from None
            if stat.S_ISLNK(info.st_mode):
                raise TokenFileError(
                    where,
                    "is a symlink, which the SDK refuses to follow",
                    "move the real file into place",
                )
            mode = stat.S_IMODE(info.st_mode)
            if stat.S_ISREG(info.st_mode) and mode & 0o077:
                raise TokenFileError(
                    where,
                    f"is accessible by group or others (mode {mode:#o}), which the SDK refuses",
                    f"run chmod 600 {where}",
                )
        try:
            document = read_json_file(self.path)
        except FileNotFoundError:
            return None
        if not isinstance(document, dict):
            raise TokenFileError(where, "must hold a JSON object")
        found: dict[str, Any] = document
        return found

    def _parse(self, document: dict[str, Any]) -> TokenSet:
        where = str(self.path)
        kind = document.get("type")
        if kind is not None and kind != CREDENTIALS_TYPE:
            raise TokenFileError(where, f"has type {kind!r}; expected {CREDENTIALS_TYPE!r}")
        access = document.get("access_token")
        if not isinstance(access, str) or not access.strip():
            raise TokenFileError(where, 'has no "access_token"', "run `ant auth login` again")
        refresh = document.get("refresh_token")
        if refresh is not None and not isinstance(refresh, str):
            raise TokenFileError(where, '"refresh_token" must be a string')
        return TokenSet(
            access_token=access.strip(),
            refresh_token=(refresh.strip() or None) if refresh and self.refreshable else None,
            expires_at=_expires_at(document.get("expires_at"), where),
            generation=parse_generation(document.get(GENERATION_KEY)),
        )


def _expires_at(value: object, where: str) -> float | None:
    """``expires_at`` as the SDK reads it: an integer number of unix seconds."""
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise TypeError
        return float(int(value))  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        raise TokenFileError(
            where, '"expires_at" must be an integer unix timestamp in seconds'
        ) from None
