"""Errors raised by claude-oauth-auth.

    ClaudeAuthError                      base of every error we raise
    ├── StoreError                       a token store cannot be used (``location``, ``reason``)
    │   ├── StoreConflict                a compare-and-set save found a newer version
    │   └── TokenFileError               a token file is unreadable or malformed (``path``)
    ├── TokenRefreshError                the token endpoint could not be reached or answered badly
    ├── NoCredentialsError*              no source in the cascade gave a credential
    └── OAuthRefreshError*               the token endpoint refused the refresh token

Classes marked * are also ``anthropic.AuthenticationError``, so code written for the
SDK catches them; they live in ``_sdk_errors`` so importing this module never imports
``anthropic``. The others, raised while the SDK prepares a request, reach its caller as
their SDK twin (``_sdk_errors.reaching_the_sdk``): the same class, also an
``anthropic.APIError``, so the SDK neither wraps nor retries them.
"""

from __future__ import annotations

__all__ = [
    "ClaudeAuthError",
    "StoreConflict",
    "StoreError",
    "TokenFileError",
    "TokenRefreshError",
]


class ClaudeAuthError(Exception):
    """Base class of every error raised by claude-oauth-auth."""


class StoreError(ClaudeAuthError):
    """A token store cannot be used right now; ``location`` and ``reason`` say which and why."""

    def __init__(self, location: str, reason: str, fix: str | None = None) -> None:
        """``location`` names the store (never a secret), ``reason`` what is wrong, ``fix`` what
        to do."""
        self.location = location
        self.reason = reason
        self.fix = fix
        message = f"{location}: {reason}"
        if fix:
            message += f" ({fix})"
        super().__init__(message)


class StoreConflict(StoreError):
    """``save`` found the store at another version than expected: someone else wrote first."""

    def __init__(self, location: str, reason: str = "changed since it was read") -> None:
        """``location``: the store that moved on since it was read."""
        super().__init__(location, reason)


class TokenFileError(StoreError):
    """A token file exists but cannot be used; ``path`` and ``reason`` say why."""

    def __init__(self, path: str, reason: str, fix: str | None = None) -> None:
        """``path``: the token file; ``reason``: what is wrong with it; ``fix``: what to do."""
        self.path = path
        super().__init__(path, reason, fix)


class TokenRefreshError(ClaudeAuthError):
    """A transient refresh failure (network, 5xx, 429, a malformed answer)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        """``retry_after``: seconds until the next attempt, when known."""
        self.retry_after = retry_after
        super().__init__(message)
