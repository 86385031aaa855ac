"""The subclass pattern (``_load_tokens``/``_save_tokens`` overrides) as a TokenStore."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._errors import StoreConflict
from .._tokens import TokenSet
from ..stores._base import DEFAULT_LOCK_TIMEOUT, Version
from ..stores._files import file_lock, file_signature, folder_writable

__all__ = ["HookStore", "overrides_hooks"]

HOOKS = ("_load_tokens", "_save_tokens")


def overrides_hooks(manager: object) -> bool:
    """True when a subclass replaced the storage hooks of ``OAuthTokenManager``."""
    return any(
        getattr(type(manager), name).__qualname__ != f"OAuthTokenManager.{name}" for name in HOOKS
    )


class HookStore:
    """Reads and writes through a manager's own hooks; ``token_file`` (if any) gives the
    version (its stat) and the cross-process lock beside it."""

    def __init__(self, manager: Any, path: Path | None) -> None:
        self._manager = manager
        self.path = path
        self.poll_interval: float | None = 1.0 if path is not None else None
        self._writes = itertools.count(1)
        self._written = 0

    def __repr__(self) -> str:
        return f"HookStore({self.location!r})"

    @property
    def location(self) -> str:
        return str(self.path) if self.path is not None else f"{type(self._manager).__name__}"

    @property
    def writable(self) -> bool:
        return self.path is None or folder_writable(self.path)[0]

    def why_not_writable(self) -> str:
        """Why a save would fail, or an empty string."""
        return "" if self.path is None else folder_writable(self.path)[1]

    def version(self) -> Version:
        if self.path is not None:
            return file_signature(self.path)
        return self._written or None

    def load(self) -> TokenSet | None:
        manager = self._manager
        # Masked holders, not bare strings: the hook may raise, and tracebacks record locals.
        saved = TokenSet(manager.access_token or "", manager.refresh_token, manager.token_expiry)
        try:
            manager._load_tokens()
            expiry = manager.token_expiry
            loaded = TokenSet(
                str(manager.access_token or ""),
                manager.refresh_token,
                None if expiry is None else float(expiry),
            )
        finally:
            manager.access_token = saved.access_token or None
            manager.refresh_token = saved.refresh_token
            manager.token_expiry = saved.expires_at
        return loaded if loaded.access_token else None

    def save(self, tokens: TokenSet, *, expected_version: Version) -> None:
        if self.version() != expected_version:
            raise StoreConflict(self.location)
        manager = self._manager
        manager.access_token = tokens.access_token
        manager.refresh_token = tokens.refresh_token
        manager.token_expiry = tokens.expires_at
        manager._save_tokens()
        self._written = next(self._writes)

    @contextlib.contextmanager
    def lock(self, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[None]:
        if self.path is None:
            yield
            return
        with file_lock(self.path, timeout):
            yield

    def delete(self) -> None:
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
