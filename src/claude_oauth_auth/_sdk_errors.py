"""Errors that are also ``anthropic.AuthenticationError`` (imports the SDK)."""

from __future__ import annotations

import anthropic
import httpx2

from ._errors import ClaudeAuthError

__all__ = ["NoCredentialsError", "OAuthRefreshError"]


def _response(url: str, status: int) -> httpx2.Response:
    return httpx2.Response(status, request=httpx2.Request("POST", url))


class NoCredentialsError(ClaudeAuthError, anthropic.AuthenticationError):
    """No source in the cascade gave a usable credential."""

    def __init__(self, message: str) -> None:
        """``message`` lists every source checked and how to fix the first broken one."""
        anthropic.AuthenticationError.__init__(
            self, message, response=_response("claude-oauth-auth://no-credentials", 401), body=None
        )


class OAuthRefreshError(ClaudeAuthError, anthropic.AuthenticationError):
    """The token endpoint refused the refresh token; OAuth is unusable until a new login."""

    def __init__(self, message: str, *, token_url: str, endpoint_status: int | None = None) -> None:
        """``token_url``: the endpoint that refused; ``endpoint_status``: its HTTP status."""
        anthropic.AuthenticationError.__init__(
            self, message, response=_response(token_url, 401), body=None
        )
        self.token_url = token_url
        self.endpoint_status = endpoint_status
