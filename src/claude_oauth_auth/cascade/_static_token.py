"""A long-lived OAuth token with no refresh token, as a token source of the cascade."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._tokens import mask
from ..lifecycle._manager import make_access_token

if TYPE_CHECKING:
    from anthropic.lib.credentials import AccessToken

__all__ = ["StaticOAuthToken"]


class StaticOAuthToken:
    """A long-lived OAuth token with no refresh token (``CLAUDE_CODE_OAUTH_TOKEN``)."""

    def __init__(self, token: str, *, source: str) -> None:
        self._token = token
        self._source = source

    def __repr__(self) -> str:
        return f"StaticOAuthToken({mask(self._token)!r}, source={self._source!r})"

    def __call__(self, *, force_refresh: bool = False) -> AccessToken:
        return make_access_token(self._token)

    def get_valid_token(self, *, force_refresh: bool = False, rejected: str | None = None) -> str:
        if rejected is None:
            return self._token
        from .._sdk_errors import OAuthRefreshError

        raise OAuthRefreshError(
            f"the API refused the OAuth token from {self._source}, which cannot be refreshed; "
            "create a new one with `claude setup-token`",
            token_url="claude-oauth-auth://static-token",
        )

    async def async_get_valid_token(
        self, *, force_refresh: bool = False, rejected: str | None = None
    ) -> str:
        return self.get_valid_token(force_refresh=force_refresh, rejected=rejected)
