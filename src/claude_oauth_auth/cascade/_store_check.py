"""A store's login judged as a source of the cascade: a report and maybe an OAuth credential.

Shared by the cascade's own steps (``_sources``) and the SDK-profile steps (``_profiles``).
While a client checks its sources, its own settings (``refresh_threshold=``, ``token_url=``)
win over the environment and the stored values (``judged_with``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from .. import _clock, _config
from .._config import ENV
from .._errors import StoreError
from .._tokens import TokenSet, mask
from ..stores._base import TokenStore
from ..stores._file import path_of
from ._credential import Credential, SourceReport

__all__ = ["check_store", "configuration_problem", "format_duration", "judged_with"]

_SETTINGS: ContextVar[Mapping[str, Any] | None] = ContextVar(
    "claude_oauth_auth_settings", default=None
)
"""The client's own ``refresh_threshold=`` / ``token_url=`` while its sources are checked."""


@contextmanager
def judged_with(settings: Mapping[str, Any]) -> Iterator[None]:
    """Judge stores with a client's own settings (what its token managers would get)."""
    token = _SETTINGS.set(settings)
    try:
        yield
    finally:
        _SETTINGS.reset(token)


def check_store(source: str, store: TokenStore) -> tuple[SourceReport, Credential | None]:
    """Load a store into a report and an OAuth credential; never raises for bad contents."""
    try:
        version = store.version()
        tokens = store.load()
    except StoreError as error:
        report = SourceReport(source, "invalid", str(error), store.location, fix=error.fix)
        return report, None
    except (OSError, ValueError) as error:  # e.g. a path with a NUL byte
        detail = f"{store.location}: cannot be read ({error})"
        return SourceReport(source, "invalid", detail, store.location), None
    where = store.location
    if tokens is None:
        detail = f"{where} does not exist" if version is None else f"no login in {where}"
        return SourceReport(source, "absent", detail, where), None
    shape = getattr(store, "shape", None)
    origin = f"{_shape_name(shape)} at {where}" if shape else where
    problem = configuration_problem(tokens)
    if problem is not None:
        report = SourceReport(source, "invalid", f"{origin}: {problem}", where)
        report.configuration_error = True
        return report, None
    report, credential = _token_report(source, tokens, where, origin, path_of(store))
    if credential is not None:
        credential = dataclasses.replace(credential, store=store)
    return report, credential


def configuration_problem(tokens: TokenSet) -> str | None:
    """Why a token manager would refuse these tokens' settings (threshold, token URL), or None.

    The same checks, and the same words, as ``OAuthTokenManager``: a source the client would
    refuse is reported invalid, so the cascade moves on and ``status`` agrees with the client.
    """
    settings = _SETTINGS.get() or {}
    try:
        _config.refresh_threshold(settings.get("refresh_threshold"))
        url = _manager_setting(tokens, "token_url", ENV.TOKEN_URL)
        if isinstance(url, str):
            _config.validate_token_url(url)
    except ValueError as error:
        named = _manager_setting(None, "token_url", ENV.TOKEN_URL) is None
        named = named and "token_url" in tokens.extra
        return f'its "token_url": {error}' if named and "token URL" in str(error) else str(error)
    return None


def _manager_setting(tokens: TokenSet | None, name: str, variable: str) -> Any:
    """What a manager would use for ``name`` (``token_url``, ``client_id``) with these tokens:
    the client's argument, else the variable, else the value stored with the tokens."""
    settings = _SETTINGS.get() or {}
    given = settings.get(name) or _config.env_value(variable)
    return given or (tokens.extra.get(name) if tokens is not None else None)


def _token_report(
    source: str, tokens: TokenSet, where: str, origin: str, path: Path | None
) -> tuple[SourceReport, Credential | None]:
    left = tokens.seconds_left(_clock.now())
    if left <= 0 and tokens.refresh_token is None:
        detail = f"{origin}: the access token expired {format_duration(-left)} ago and there is no "
        detail += "refresh token; log in again"
        return SourceReport(source, "invalid", detail, where), None
    if left == float("inf"):
        when = "no expiry recorded"
    elif left > 0:
        when = f"expires in {format_duration(left)}"
    else:
        when = f"expired {format_duration(-left)} ago, will be refreshed"
    refused = _recorded_refusal(tokens, path)
    if refused is not None and left <= 0:
        detail = f"{origin}: the access token expired {format_duration(-left)} ago and "
        detail += f"{refused}; log in again"
        return SourceReport(source, "invalid", detail, where, refused=refused), None
    refresh = "refresh token present" if tokens.refresh_token else "no refresh token"
    if refused is not None:
        refresh = f"but {refused}; log in again"
        when = when.replace(", will be refreshed", "")
    detail = f"OAuth token ({mask(tokens.access_token)}) in {origin}, {when}, {refresh}"
    notes = tokens.extra.get("notes")
    if isinstance(notes, list) and notes:
        detail += f" ({'; '.join(map(str, notes))})"
    credential = Credential("oauth", source, tokens=tokens, path=path)
    return SourceReport(source, "available", detail, where, refused=refused), credential


def _recorded_refusal(tokens: TokenSet, path: Path | None) -> str | None:
    """The endpoint's words when a process using this token file already had its refresh
    token refused (``invalid_grant``, kept in ``<file>.oauth.state``); else None."""
    if path is None or tokens.refresh_token is None:
        return None
    from ..lifecycle._backoff import read_shared_state, refusal_key, state_path

    state = read_shared_state(state_path(path))
    if not state.refused:
        return None
    url = _manager_setting(tokens, "token_url", ENV.TOKEN_URL) or _config.DEFAULT_TOKEN_URL
    client_id = _manager_setting(tokens, "client_id", ENV.CLIENT_ID) or _config.DEFAULT_CLIENT_ID
    key = refusal_key(str(url), str(client_id), tokens.refresh_token)
    return next((item.reason for item in state.refused if item.key == key), None)


def _shape_name(shape: str) -> str:
    return "Claude Code's credentials" if shape == "claude_code" else "token file"


def format_duration(seconds: float) -> str:
    """A length of time as people say it (``45 s``, ``12 min``, ``7 h 30 min``, ``364 days``);
    every command prints durations with this one function."""
    seconds = round(abs(seconds))
    if seconds < 120:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} min"
    if seconds < 172800:
        hours, rest = divmod(minutes, 60)
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    return f"{round(seconds / 86400)} days"
