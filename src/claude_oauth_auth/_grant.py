"""The OAuth refresh grant: one POST to the token endpoint, answers sorted into kinds."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from ._errors import TokenRefreshError
from ._tokens import TokenSet

__all__ = ["RefreshRefused", "request_refresh"]

REFRESH_TIMEOUT_SECONDS = 30.0
MAX_ANSWER_BYTES = 256 * 1024


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


def request_refresh(
    token_url: str,
    refresh_token: str,
    client_id: str,
    *,
    user_agent: str,
    extra_headers: Mapping[str, str] | None = None,
) -> TokenSet:
    """POST the refresh grant; RefreshRefused when refused, TokenRefreshError when transient.

    ``extra_headers``: e.g. the OAuth beta flag the SDK sends when refreshing a profile."""
    import urllib.error  # here, not at the top: `status` never refreshes and starts faster
    import urllib.request

    body = json.dumps(
        {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    ).encode("utf-8")
    request = urllib.request.Request(
        token_url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": user_agent,
            **(extra_headers or {}),
        },
    )
    started = time.time()
    try:
        with urllib.request.urlopen(request, timeout=REFRESH_TIMEOUT_SECONDS) as response:
            status = int(response.status)
            raw = response.read(MAX_ANSWER_BYTES)
            retry_after = response.headers.get("Retry-After")
    except urllib.error.HTTPError as error:
        status = error.code
        try:
            raw = error.read(MAX_ANSWER_BYTES)
        except OSError:
            raw = b""
        retry_after = error.headers.get("Retry-After") if error.headers else None
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise TokenRefreshError(
            f"could not reach the token endpoint {token_url} ({_scrub(str(reason), refresh_token)})"
        ) from None

    if status == 200:
        return _parse_success(raw, token_url, started, refresh_token)
    answer = _json_or_none(raw)
    error_code, description = _error_fields(answer, refresh_token)
    if status in (400, 401, 403) or (400 <= status < 500 and status not in (408, 429)):
        raise RefreshRefused(status, error_code, description)
    raise TokenRefreshError(
        f"token endpoint {token_url} answered HTTP {status}"
        + (f" ({error_code})" if error_code else ""),
        retry_after=_seconds(retry_after),
    )


def _parse_success(raw: bytes, token_url: str, started: float, refresh_token: str) -> TokenSet:
    answer = _json_or_none(raw)
    where = f"token endpoint {token_url}"
    if not isinstance(answer, dict):
        raise TokenRefreshError(f"{where} answered 200 without a JSON object")
    access = answer.get("access_token")
    if not isinstance(access, str) or not access.strip():
        raise TokenRefreshError(f'{where} answered 200 without an "access_token"')
    new_refresh = answer.get("refresh_token")
    if new_refresh is not None and (not isinstance(new_refresh, str) or not new_refresh.strip()):
        raise TokenRefreshError(f'{where} answered a malformed "refresh_token"')
    expires_in = answer.get("expires_in")
    if isinstance(expires_in, str):
        try:
            expires_in = float(expires_in)
        except ValueError:
            expires_in = None
    if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)):
        raise TokenRefreshError(f'{where} answered 200 without a numeric "expires_in"')
    if not 0 < expires_in < 10 * 365 * 86400:
        raise TokenRefreshError(f'{where} answered an out-of-range "expires_in"')
    scope = answer.get("scope")
    return TokenSet(
        access_token=access.strip(),
        refresh_token=new_refresh.strip() if isinstance(new_refresh, str) else refresh_token,
        expires_at=started + float(expires_in),
        scopes=tuple(scope.split()) if isinstance(scope, str) else (),
    )


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def _error_fields(answer: Any, refresh_token: str) -> tuple[str, str]:
    if not isinstance(answer, dict):
        return "", ""
    error = answer.get("error")
    if isinstance(error, dict):  # Anthropic's API error shape
        return (
            _scrub(str(error.get("type", "")), refresh_token),
            _scrub(str(error.get("message", "")), refresh_token),
        )
    description = answer.get("error_description", "")
    return _scrub(str(error or ""), refresh_token), _scrub(str(description or ""), refresh_token)


def _scrub(text: str, secret: str) -> str:
    """Endpoint text goes into messages: cut it short and never echo the token."""
    if secret:
        text = text.replace(secret, "<refresh token>")
    return text[:300]


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 3600 else None
