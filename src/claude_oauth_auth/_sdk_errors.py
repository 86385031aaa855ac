"""Errors that are also SDK errors (imports the SDK).

``NoCredentialsError`` and ``OAuthRefreshError`` are ``anthropic.AuthenticationError``s. Our
other errors are plain (``_errors``) until they cross into the SDK during a request:
``reaching_the_sdk`` then gives the same error as its SDK twin, a subclass of its own type and
of ``anthropic.APIError``, so the SDK neither wraps it as a connection error nor retries it,
and ``except anthropic.APIError`` still catches it.
"""

from __future__ import annotations

from typing import Any, NoReturn, TypeVar

import anthropic
import httpx2

from ._errors import ClaudeAuthError

__all__ = [
    "NoCredentialsError",
    "OAuthRefreshError",
    "raise_to_the_sdk",
    "reaching_the_sdk",
    "token_request",
]

E = TypeVar("E", bound=ClaudeAuthError)


def token_request(url: str) -> httpx2.Request:
    """The request an error names when it arose outside an API request (the token POST)."""
    return httpx2.Request("POST", url)


def _response(url: str, status: int) -> httpx2.Response:
    return httpx2.Response(status, request=token_request(url))


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


_twins: dict[type[ClaudeAuthError], type[ClaudeAuthError]] = {}


def _twin_class(kind: type[E]) -> type[E]:
    """``kind`` that is also an ``anthropic.APIError``, under the same name (made once)."""
    twin = _twins.get(kind)
    if twin is None:
        namespace = {
            "__module__": kind.__module__,
            "__qualname__": kind.__qualname__,
            "__doc__": kind.__doc__,
            "__reduce__": _reduce,
        }
        twin = type(kind.__name__, (kind, anthropic.APIError), namespace)
        _twins[kind] = twin
    return twin  # type: ignore[return-value]


def _reduce(error: ClaudeAuthError) -> tuple[Any, ...]:
    """Pickled as the plain error it twins (the SDK's request does not travel)."""
    plain = type(error).__mro__[1]
    state = {key: value for key, value in vars(error).items() if key not in ("request", "body")}
    state.pop("message", None)
    return _rebuild, (plain, error.args, state)


def _rebuild(kind: type[E], args: tuple[Any, ...], state: dict[str, Any]) -> E:
    error = kind.__new__(kind, *args)
    error.args = args
    vars(error).update(state)
    return error


def reaching_the_sdk(error: E, request: httpx2.Request) -> E:
    """``error`` as it should reach a caller through the SDK: itself if it already is an SDK
    error, else its twin with the same message, attributes and traceback."""
    if isinstance(error, anthropic.AnthropicError):
        return error
    kind = _twin_class(type(error))
    twin = kind.__new__(kind, *error.args)
    twin.args = error.args
    vars(twin).update(vars(error))
    vars(twin).update(request=request, message=str(error), body=None)  # anthropic.APIError's
    cause = error.__cause__
    # A retryable SDK error in the chain would make the SDK retry: the chain stops before it.
    twin.__cause__ = None if isinstance(cause, anthropic.AnthropicError) else cause
    return twin.with_traceback(error.__traceback__)


def raise_to_the_sdk(error: ClaudeAuthError, request: httpx2.Request) -> NoReturn:
    """Raise ``error`` (being handled) as it should reach a caller through the SDK."""
    twin = reaching_the_sdk(error, request)
    if twin is error:
        raise error
    raise twin from twin.__cause__
