"""Errors raised by claude-oauth-auth.

    ClaudeAuthError                      base of every error we raise
    ├── TokenFileError                   a token file is missing, unreadable or malformed
    ├── TokenRefreshError                the token endpoint could not be reached or answered badly
    ├── NoCredentialsError*              no source in the cascade gave a credential
    └── OAuthRefreshError*               the token endpoint refused the refresh token

Classes marked * are also ``anthropic.AuthenticationError``, so code written for the
SDK catches them; they live in ``_sdk_errors`` so importing this module never imports
``anthropic``.
"""

from __future__ import annotations

__all__ = ["ClaudeAuthError", "TokenFileError", "TokenRefreshError"]


class ClaudeAuthError(Exception):
    """Base class of every error raised by claude-oauth-auth."""


class TokenFileError(ClaudeAuthError):
    """A token file exists but cannot be used; ``path`` and ``reason`` say why."""

    def __init__(self, path: str, reason: str, fix: str | None = None) -> None:
        self.path = path
        self.reason = reason
        self.fix = fix
        message = f"{path}: {reason}"
        if fix:
            message += f" ({fix})"
        super().__init__(message)


class TokenRefreshError(ClaudeAuthError):
    """A transient refresh failure (network, 5xx, 429, a malformed answer)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)
