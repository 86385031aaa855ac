"""The credential cascade: named sources, each checked into a report and maybe a credential."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import _clock, _config
from .._config import ENV, default_auth_file
from .._errors import StoreError
from .._tokens import mask
from ._credential import Credential, Kind, SourceReport
from ._profiles import check_active_profile, check_profile_env, check_workload_identity
from ._store_check import check_store, format_duration, judged_with

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


def check_source(
    name: str, settings: Mapping[str, Any] | None = None
) -> tuple[SourceReport, Credential | None]:
    """Look at one non-explicit source; never raises for missing or broken input.

    ``settings``: the arguments the manager would get (``refresh_threshold``, ``token_url``),
    which win over the environment and the file when judging the source's configuration.
    """
    if settings:
        with judged_with(settings):
            return check_source(name)
    checks: dict[str, Callable[[], tuple[SourceReport, Credential | None]]] = {
        "auth_file_env": _check_auth_file_env,
        "token_store_env": _check_token_store_env,
        "auth_file": lambda: check_token_file("auth_file", _config.default_auth_file()),
        "claude_code": _check_claude_code,
        "claude_code_env": lambda: _check_env("claude_code_env", ENV.CODE_OAUTH_TOKEN, "oauth"),
        "auth_token_env": lambda: _check_env("auth_token_env", ENV.AUTH_TOKEN, "auth_token"),
        "api_key_env": lambda: _check_env("api_key_env", ENV.API_KEY, "api_key"),
        "anthropic_profile": check_profile_env,
        "workload_identity": check_workload_identity,
        "anthropic_profile_active": check_active_profile,
    }
    return checks[name]()


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
    from ..stores._file import FileStore

    return check_store(source, FileStore(path))


def _check_claude_code() -> tuple[SourceReport, Credential | None]:
    from ..stores._claude_code import ClaudeCodeStore

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
    from ..stores._url import store_from_url

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


def describe_expiry(expires_at: float | None) -> str:
    """A short human phrase for an expiry time."""
    if expires_at is None:
        return "no expiry recorded"
    left = expires_at - _clock.now()
    if left == float("inf"):
        return "no expiry recorded"
    return (
        f"expires in {format_duration(left)}"
        if left > 0
        else f"expired {format_duration(left)} ago"
    )
