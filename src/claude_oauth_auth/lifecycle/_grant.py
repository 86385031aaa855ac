"""The OAuth refresh grant: one POST to the token endpoint, answers sorted into kinds.

No secret is ever a bare ``str`` local in a frame that can raise (tracebacks that record
locals stay clean): the refresh token travels as a :class:`Secret`, answers as masked
containers. Every error is raised outside ``except`` blocks, so no chained exception keeps
``urllib``'s frames (which hold the request body) alive.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

from .. import _clock
from .._errors import TokenRefreshError
from .._tokens import Secret, TokenSet, has_control_characters

__all__ = ["PartialAnswer", "RefreshRefused", "request_refresh", "retry_after_seconds"]

log = logging.getLogger("claude_oauth_auth")

REFRESH_TIMEOUT_SECONDS = 30.0
MAX_ANSWER_BYTES = 256 * 1024
MAX_RETRY_AFTER_SECONDS = 300.0
MAX_LIFETIME_SECONDS = 10 * 365 * 86400


class RefreshRefused(Exception):
    """The endpoint refused the refresh token (permanent until the user logs in again)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(status, error, description)
        self.status = status
        self.error = error
        self.description = description

    def __str__(self) -> str:
        text = self.error or f"HTTP {self.status}"
        if self.description:
            text += f": {self.description}"
        return text


class PartialAnswer(TokenRefreshError):
    """A 200 answer that rotated the refresh token but is unusable otherwise.

    ``tokens`` holds what must be saved before anything else (``access_token`` empty when
    the answer had none): the old refresh token is spent, so dropping it loses the login.
    """

    def __init__(self, message: str, tokens: TokenSet) -> None:
        super().__init__(message)
        self.tokens = tokens


class _Masked(dict[str, Any]):
    """A parsed answer: a dict whose repr never shows the tokens inside."""

    def __repr__(self) -> str:
        return f"<token endpoint answer with keys {sorted(self)}>"


class _Body:
    """Raw answer bytes, masked in reprs."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"<{len(self.data)} bytes>"


def _opener() -> Any:
    """urllib's opener, except that a 3xx is an error, never followed."""
    import urllib.request

    class NoRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    return urllib.request.build_opener(NoRedirects)


def _build_request(
    token_url: str,
    refresh_token: Secret,
    client_id: str,
    user_agent: str,
    extra_headers: Mapping[str, str] | None = None,
) -> Any:
    import urllib.request

    body = {"grant_type": "refresh_token", "refresh_token": "", "client_id": client_id}
    body["refresh_token"] = refresh_token.reveal()
    return urllib.request.Request(
        token_url,
        data=json.dumps(body).encode("utf-8"),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": user_agent,
            **(extra_headers or {}),
        },
    )


def request_refresh(
    token_url: str,
    refresh_token: Secret,
    client_id: str,
    *,
    user_agent: str,
    extra_headers: Mapping[str, str] | None = None,
    timeout: float = REFRESH_TIMEOUT_SECONDS,
) -> TokenSet:
    """POST the refresh grant; RefreshRefused when refused, TokenRefreshError when transient.

    ``extra_headers``: e.g. the OAuth beta flag the SDK sends when refreshing a profile."""
    import urllib.error  # here, not at the top: `status` never refreshes and starts faster

    request = _build_request(token_url, refresh_token, client_id, user_agent, extra_headers)
    started = _clock.now()
    unreachable: str | None = None
    location: str | None = None
    retry_after: str | None = None
    status = 0
    raw = _Body(b"")
    try:
        with _opener().open(request, timeout=timeout) as response:
            status = int(response.status)
            raw = _Body(response.read(MAX_ANSWER_BYTES))
            retry_after = response.headers.get("Retry-After")
    except urllib.error.HTTPError as error:
        status = error.code
        headers = error.headers
        retry_after = headers.get("Retry-After") if headers else None
        location = headers.get("Location") if headers else None
        try:
            raw = _Body(error.read(MAX_ANSWER_BYTES))
        except OSError:
            raw = _Body(b"")
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        unreachable = _scrub(str(getattr(error, "reason", None) or error), refresh_token)
    if unreachable is not None:
        raise TokenRefreshError(f"could not reach the token endpoint {token_url} ({unreachable})")
    if 300 <= status < 400:
        target = urlsplit(urljoin(token_url, location)).hostname if location else None
        raise TokenRefreshError(
            f"token endpoint {token_url} answered HTTP {status}, a redirect "
            + (f"to host {target}" if target else "without a Location")
            + "; redirects are not followed, so the refresh token is sent only to the "
            "configured URL (check CLAUDE_OAUTH_TOKEN_URL or token_url=)"
        )
    if status == 200:
        return _parse_success(raw, token_url, started, refresh_token)
    answer = _json_or_none(raw)
    error_code, description = _error_fields(answer, refresh_token)
    if status in (400, 401, 403) or (400 <= status < 500 and status not in (408, 429)):
        raise RefreshRefused(status, error_code, description)
    raise TokenRefreshError(
        f"token endpoint {token_url} answered HTTP {status}"
        + (f" ({error_code})" if error_code else ""),
        retry_after=retry_after_seconds(retry_after),
    )


def _token_field(answer: _Masked, name: str) -> Secret | None:
    """A usable token from the answer, or None (missing, not a string, blank, or with CR/LF)."""
    value = answer.get(name)
    if not isinstance(value, str) or not value.strip() or has_control_characters(value.strip()):
        return None
    return Secret(value.strip())


def _lifetime(answer: _Masked) -> float | None:
    """``expires_in`` in seconds, or None when missing or unusable (RFC 6749: optional)."""
    value = answer.get("expires_in")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value) or not 0 < value < MAX_LIFETIME_SECONDS:
        return None
    return float(value)


def _parse_success(raw: _Body, token_url: str, started: float, spent: Secret) -> TokenSet:
    """Sort a 200 answer: whatever rotated is kept, even when other fields are odd."""
    answer = _json_or_none(raw)
    where = f"token endpoint {token_url}"
    if answer is None:
        raise TokenRefreshError(f"{where} answered 200 without a JSON object")
    access = _token_field(answer, "access_token")
    rotated = _token_field(answer, "refresh_token")
    if "refresh_token" in answer and rotated is None:
        log.warning('The %s answered a malformed "refresh_token"; keeping the current one', where)
    scope = answer.get("scope")
    scopes = tuple(scope.split()) if isinstance(scope, str) else ()
    if access is None:
        problem = f'{where} answered 200 without a usable "access_token"'
        if rotated is None:
            raise TokenRefreshError(problem)
        tokens = TokenSet("", rotated.reveal(), None, scopes)
        raise PartialAnswer(problem + "; the new refresh token it sent was saved", tokens)
    lifetime = _lifetime(answer)
    if lifetime is None:
        log.warning(
            'The %s answered no usable "expires_in"; the new tokens are saved and refreshed '
            "at their next use",
            where,
        )
    refresh = rotated.reveal() if rotated is not None else spent.reveal()
    expires_at = started + lifetime if lifetime is not None else started
    return TokenSet(access.reveal(), refresh, expires_at, scopes)


def _json_or_none(raw: _Body) -> _Masked | None:
    """The answer's JSON object (masked), or None; no exception escapes with the body."""
    try:
        answer = json.loads(raw.data.decode("utf-8"), object_pairs_hook=_Masked)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return answer if isinstance(answer, _Masked) else None


def _error_fields(answer: _Masked | None, refresh_token: Secret) -> tuple[str, str]:
    if answer is None:
        return "", ""
    error = answer.get("error")
    if isinstance(error, dict):  # Anthropic's API error shape
        return (
            _scrub(str(error.get("type", "")), refresh_token),
            _scrub(str(error.get("message", "")), refresh_token),
        )
    description = answer.get("error_description", "")
    return _scrub(str(error or ""), refresh_token), _scrub(str(description or ""), refresh_token)


def _scrub(text: str, secret: Secret) -> str:
    """Endpoint text goes into messages: cut it short and never echo the token."""
    if secret:
        text = text.replace(secret.reveal(), "<refresh token>")
    return text[:300]


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as seconds, capped at 5 minutes."""
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime  # rare: only for a date

        try:
            moment = parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            return None
        seconds = moment.timestamp() - (_clock.now() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
