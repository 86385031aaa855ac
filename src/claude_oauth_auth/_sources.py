"""The credential cascade: named sources, each checked into a report and maybe a credential."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from . import _config
from ._config import ENV, default_auth_file
from ._errors import StoreError
from ._tokens import TokenSet, mask
from .stores._base import TokenStore
from .stores._file import path_of

if TYPE_CHECKING:
    from ._profiles import SdkProfile

__all__ = [
    "FALLBACK_SOURCES",
    "SOURCE_NAMES",
    "Credential",
    "SourceReport",
    "check_source",
    "check_store",
    "describe_expiry",
    "explain_reports",
    "format_duration",
    "validate_sources",
]

SOURCE_NAMES: tuple[str, ...] = (
    "explicit",
    "auth_file_env",
    "token_store_env",
    "auth_file",
    "claude_code",
    "claude_code_env",
    "api_key_env",
    "auth_token_env",
    "anthropic_profile",
    "workload_identity",
    "anthropic_profile_active",
)

FALLBACK_SOURCES = ("api_key_env", "auth_token_env")

State = Literal["used", "available", "absent", "invalid", "not_checked"]
Kind = Literal["oauth", "api_key", "auth_token"]


@dataclass
class SourceReport:
    """What one source of the cascade held: its state, why, and where."""

    name: str
    state: State = "not_checked"
    detail: str = ""
    path: str | None = None
    configuration_error: bool = False  # invalid because of a setting, not the stored tokens
    fix: str | None = None  # what the store's own error says to run, when it says
    refused: str | None = None  # the endpoint's verdict on the stored refresh token, if any
    final: bool = False  # as in the SDK, the cascade stops here: no later source is tried

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "detail": self.detail, "path": self.path}


@dataclass(repr=False)
class Credential:
    """A credential found by a source. ``repr`` masks every secret."""

    kind: Kind
    source: str
    secret: str | None = None
    tokens: TokenSet | None = None
    path: Path | None = None
    provider: Callable[..., Any] | None = None
    store: TokenStore | None = None
    profile: SdkProfile | None = None  # an SDK profile (``anthropic_profile*`` steps)

    @property
    def auth_method(self) -> str:
        return "oauth" if self.kind == "oauth" else "api_key"

    def __repr__(self) -> str:
        parts = [f"kind={self.kind!r}", f"source={self.source!r}"]
        if self.secret is not None:
            parts.append(f"secret={mask(self.secret)!r}")
        if self.tokens is not None:
            parts.append(f"tokens={self.tokens!r}")
        if self.path is not None:
            parts.append(f"path={str(self.path)!r}")
        return f"Credential({', '.join(parts)})"


def validate_sources(sources: Sequence[str] | None) -> tuple[str, ...]:
    """Check a ``sources=`` list: known names, no repeats."""
    if sources is None:
        return SOURCE_NAMES
    if isinstance(sources, str):
        raise TypeError("sources= takes a list of source names, not a string")
    chosen = tuple(sources)
    unknown = [name for name in chosen if name not in SOURCE_NAMES]
    if unknown:
        raise ValueError(
            f"unknown source name(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(SOURCE_NAMES)}"
        )
    if len(set(chosen)) != len(chosen):
        raise ValueError("sources= names a source twice")
    return chosen


_SETTINGS: ContextVar[Mapping[str, Any] | None] = ContextVar(
    "claude_oauth_auth_settings", default=None
)
"""The client's own ``refresh_threshold=`` / ``token_url=`` while its sources are checked."""


def check_source(
    name: str, settings: Mapping[str, Any] | None = None
) -> tuple[SourceReport, Credential | None]:
    """Look at one non-explicit source; never raises for missing or broken input.

    ``settings``: the arguments the manager would get (``refresh_threshold``, ``token_url``),
    which win over the environment and the file when judging the source's configuration.
    """
    if settings:
        token = _SETTINGS.set(settings)
        try:
            return check_source(name)
        finally:
            _SETTINGS.reset(token)
    checks: dict[str, Callable[[], tuple[SourceReport, Credential | None]]] = {
        "auth_file_env": _check_auth_file_env,
        "token_store_env": _check_token_store_env,
        "auth_file": lambda: check_token_file("auth_file", _config.default_auth_file()),
        "claude_code": _check_claude_code,
        "claude_code_env": lambda: _check_env("claude_code_env", ENV.CODE_OAUTH_TOKEN, "oauth"),
        "auth_token_env": lambda: _check_env("auth_token_env", ENV.AUTH_TOKEN, "auth_token"),
        "api_key_env": lambda: _check_env("api_key_env", ENV.API_KEY, "api_key"),
        "anthropic_profile": _sdk_step("check_profile_env"),
        "workload_identity": _sdk_step("check_workload_identity"),
        "anthropic_profile_active": _sdk_step("check_active_profile"),
    }
    return checks[name]()


def _sdk_step(function: str) -> Callable[[], tuple[SourceReport, Credential | None]]:
    """A step of the SDK's own chain (``_profiles``, imported when the step runs)."""

    def check() -> tuple[SourceReport, Credential | None]:
        from . import _profiles

        step: Callable[[], tuple[SourceReport, Credential | None]] = getattr(_profiles, function)
        return step()

    return check


def _check_auth_file_env() -> tuple[SourceReport, Credential | None]:
    raw = os.environ.get(ENV.AUTH_FILE)
    if raw is None:
        return SourceReport("auth_file_env", "absent", f"{ENV.AUTH_FILE} is not set"), None
    if not raw.strip():
        return SourceReport("auth_file_env", "invalid", f"{ENV.AUTH_FILE} is set but empty"), None
    path = _config.expand_path(raw.strip())
    report, credential = check_token_file("auth_file_env", path)
    if report.state == "absent":
        report.state = "invalid"
        report.detail = f"{ENV.AUTH_FILE} names {path}, which does not exist"
    return report, credential


def check_token_file(source: str, path: Path) -> tuple[SourceReport, Credential | None]:
    """A token file of either shape, as a report and an OAuth credential."""
    from .stores._file import FileStore

    return check_store(source, FileStore(path))


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
        credential.store = store
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
    left = tokens.seconds_left()
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
    from ._backoff import read_shared_state, refusal_key, state_path

    state = read_shared_state(state_path(path))
    if not state.refused:
        return None
    url = _manager_setting(tokens, "token_url", ENV.TOKEN_URL) or _config.DEFAULT_TOKEN_URL
    client_id = _manager_setting(tokens, "client_id", ENV.CLIENT_ID) or _config.DEFAULT_CLIENT_ID
    key = refusal_key(str(url), str(client_id), tokens.refresh_token)
    return next((item.reason for item in state.refused if item.key == key), None)


def _check_claude_code() -> tuple[SourceReport, Credential | None]:
    from .stores._claude_code import ClaudeCodeStore

    store = ClaudeCodeStore()
    report, credential = check_store("claude_code", store)
    if report.state == "absent" and report.detail.startswith("no login in"):
        report.detail = f'no Claude login in this file ({store.location} has no "claudeAiOauth")'
    if store.notes:
        report.detail = f"{report.detail} ({'; '.join(store.notes)})"
    return report, credential


def _check_token_store_env() -> tuple[SourceReport, Credential | None]:
    raw = os.environ.get(ENV.TOKEN_STORE)
    if raw is None:
        return SourceReport("token_store_env", "absent", f"{ENV.TOKEN_STORE} is not set"), None
    if not raw.strip():
        detail = f"{ENV.TOKEN_STORE} is set but empty"
        return SourceReport("token_store_env", "invalid", detail), None
    from .stores._url import store_from_url

    try:
        store = store_from_url(raw)
    except (StoreError, ValueError) as error:  # ValueError: a URL urlsplit cannot parse
        return SourceReport("token_store_env", "invalid", f"{ENV.TOKEN_STORE}: {error}"), None
    report, credential = check_store("token_store_env", store)
    if report.state == "absent":
        report.state = "invalid"
        report.detail = f"{ENV.TOKEN_STORE} names {store.location}, which holds no login"
    elif report.state == "invalid":
        report.detail = f"{ENV.TOKEN_STORE}: {report.detail}"
    return report, credential


def _check_env(source: str, variable: str, kind: Kind) -> tuple[SourceReport, Credential | None]:
    raw = os.environ.get(variable)
    if raw is None:
        return SourceReport(source, "absent", f"{variable} is not set"), None
    value = raw.strip()
    if not value:
        return SourceReport(source, "invalid", f"{variable} is set but empty"), None
    if any(character.isspace() for character in value) or not value.isprintable():
        detail = f"{variable} contains spaces or control characters; it is not a credential"
        return SourceReport(source, "invalid", detail), None
    label = {"oauth": "OAuth token", "api_key": "API key", "auth_token": "bearer token"}[kind]
    report = SourceReport(source, "available", f"{label} ({mask(value)}) in {variable}")
    return report, Credential(kind, source, secret=value)


def explain_reports(reports: Sequence[SourceReport]) -> str:
    """The checked sources as an aligned list, then how to fix a missing credential."""
    lines = ["Sources checked, in order:"]
    width = max((len(report.name) for report in reports), default=0)
    for report in reports:
        lines.append(f"  {report.name:<{width}} {report.state:<12} {report.detail}")
    lines.append(
        f"To fix: set {ENV.API_KEY} (create a key at https://console.anthropic.com/), "
        "log in with Claude Code (run `claude`, then /login), "
        "create an SDK profile for the API (run `ant auth login`), "
        f"or write OAuth tokens to {default_auth_file()} with `claude-oauth-auth save`."
    )
    return "\n".join(lines)


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


def describe_expiry(expires_at: float | None) -> str:
    """A short human phrase for an expiry time."""
    if expires_at is None:
        return "no expiry recorded"
    left = expires_at - time.time()
    if left == float("inf"):
        return "no expiry recorded"
    return (
        f"expires in {format_duration(left)}"
        if left > 0
        else f"expired {format_duration(left)} ago"
    )
