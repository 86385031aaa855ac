"""The storage protocol: where a token set lives, and how its writers take turns.

A store holds one :class:`TokenSet`. The token manager never knows which backend it has:
it loads, watches ``version()``, takes ``lock()`` around a refresh, and saves with
compare-and-set so that a writer whose view is stale never overwrites a newer login.
"""

from __future__ import annotations

from collections.abc import Hashable
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from .._tokens import TokenSet

__all__ = ["DEFAULT_LOCK_TIMEOUT", "TokenStore", "Version"]

DEFAULT_LOCK_TIMEOUT = 60.0

Version = Hashable
"""A cheap change marker: equal versions mean nothing changed. ``None`` means empty."""


@runtime_checkable
class TokenStore(Protocol):
    """Where one OAuth token set lives.

    - ``load()``: the stored tokens, ``None`` when the store is empty; raises ``StoreError``
      (``TokenFileError`` for files) when it holds something unusable.
    - ``save(tokens, expected_version=v)``: write only if ``version()`` is still ``v``
      (``None``: the store must be empty), else raise ``StoreConflict``.
    - ``version()``: a cheap change marker (``None`` when empty).
    - ``lock(timeout)``: a context manager, exclusive across every process (and, for a shared
      store, every host) using this store; raises :class:`~claude_oauth_auth.StoreError` on timeout.
    - ``delete()``: remove the stored tokens.
    - ``location``: where the tokens live, with no secret in it (for status and logs).
    - ``writable``: whether a save can succeed, checked before a refresh token is spent.

    Optional attribute ``poll_interval`` (seconds, default 1.0): how often a fresh token's
    store is checked for a rotation made elsewhere; ``None`` never checks until the token is
    due (right for shared stores where every writer holds the lock).

    Optional method ``may_restore() -> bool``: for a store that can lose its data (Redis),
    whether an empty store lost it rather than had it deleted on purpose; a worker that still
    holds the login then writes it back (compare-and-set on empty). Without it, an empty
    store is never written back.

    Optional method ``restore(tokens, *, version)``: for such a store whose versions are
    ordered integers, write back a login under the version it was read at, unless the store
    holds that version or a newer one (``StoreConflict``). A worker holding a newer login
    than the one written back then replaces it, so the newest login wins.

    Optional method ``holds_lock() -> bool``: for a lock that can be lost while held (a Redis
    lease, after a flush or when it ran out), whether the calling thread still holds it;
    checked right before a refresh token is spent, and the lock is taken again if not.
    """

    @property
    def location(self) -> str: ...

    @property
    def writable(self) -> bool: ...

    def load(self) -> TokenSet | None: ...

    def save(self, tokens: TokenSet, *, expected_version: Version) -> None: ...

    def version(self) -> Version: ...

    def lock(self, timeout: float = DEFAULT_LOCK_TIMEOUT) -> AbstractContextManager[None]: ...

    def delete(self) -> None: ...
