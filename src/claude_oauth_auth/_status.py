"""get_auth_status(): every source's state and what would be used; never a secret, never raises."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from . import _clock, _config
from ._config import ENV
from ._tokens import mask, plain_label
from .cascade._sources import (
    FALLBACK_SOURCES,
    Credential,
    SourceReport,
    check_source,
    describe_expiry,
    explain_reports,
    format_duration,
    validate_sources,
)

__all__ = ["DEFAULT_API_BASE_URL", "FALLBACK_ADVICE", "expiry_text", "get_auth_status"]

FALLBACK_ADVICE = (
    "Set ANTHROPIC_API_KEY as a fallback: subscription (Pro/Max) OAuth tokens are "
    "only authorized for Claude Code, and the API may refuse them."
)

DEFAULT_API_BASE_URL = "https://api.anthropic.com"  # the SDK's default

ENV_OF_SOURCE = {
    "claude_code_env": ENV.CODE_OAUTH_TOKEN,
    "auth_token_env": ENV.AUTH_TOKEN,
    "api_key_env": ENV.API_KEY,
}


def get_auth_status(sources: Sequence[str] | None = None) -> dict[str, Any]:
    """Check every source of the cascade and describe what a client would use.

    Keys: ``summary``, ``auth_method``, ``source``, ``oauth_available``, ``oauth_token_valid``,
    ``oauth_token_expiry``, ``oauth_token_file``, ``api_key_available``, ``api_key_source``,
    ``credential`` (what the used source holds: kind, location, expiry, scopes, subscription,
    whether it can refresh), ``api_base_url``, ``token_url``, ``sources`` (name, state, detail,
    path and fix for each), ``configuration_errors``, ``refused`` (the token endpoint's verdict
    when it refused the refresh token of the login in use: it stops working at its expiry),
    ``recommendation`` and ``fix``.
    """
    names = validate_sources(sources)
    reports: list[SourceReport] = []
    found: list[tuple[SourceReport, Credential]] = []
    final: SourceReport | None = None
    for name in names:
        if name == "explicit":
            continue
        try:
            report, credential = check_source(name)
        except Exception as error:  # a status call must describe, not fail
            report, credential = (
                SourceReport(name, "invalid", f"could not be checked: {error}"),
                None,
            )
        reports.append(report)
        if final is not None and report.state == "available":
            report.state = "not_checked"
            report.detail += f" (not tried: the cascade stops at {final.name}, as the SDK does)"
        elif credential is not None:
            found.append((report, credential))
        if report.final and final is None and not found:
            final = report

    for report, credential in found:
        _note_unsaveable(report, credential)
    used = found[0][1] if found else None
    used_report = found[0][0] if found else None
    if used_report is not None:
        used_report.state = "used"
        from .cascade._profiles import note_shadowed

        note_shadowed(reports, used_report.name)
    oauth = next((credential for _report, credential in found if credential.kind == "oauth"), None)
    key = next((c for _r, c in found if c.kind != "oauth" and c.source in FALLBACK_SOURCES), None)
    tokens = oauth.tokens if oauth is not None else None
    invalid = [report for report in reports if report.state == "invalid"]
    blocking = _blocking_report(reports, used_report)

    refused = used_report.refused if used_report is not None else None
    status: dict[str, Any] = {
        "summary": _summary(used, invalid, refused),
        "auth_method": used.auth_method if used else None,
        "source": used.source if used else None,
        "credential": _credential_details(used, used_report),
        "api_base_url": _api_base_url(used),
        "token_url": _token_url(used),
        "oauth_available": oauth is not None,
        "oauth_token_valid": bool(tokens and tokens.seconds_left(_clock.now()) > 0)
        or bool(oauth is not None and tokens is None),
        "oauth_token_expiry": tokens.expires_at if tokens else None,
        "oauth_token_file": str(oauth.path) if oauth is not None and oauth.path else None,
        "oauth_token_hint": mask(tokens.access_token) if tokens else None,
        "oauth_refreshable": bool(tokens and tokens.refresh_token),
        "api_key_available": key is not None,
        "api_key_source": key.source if key else None,
        "sources": [{**report.as_dict(), "fix": _fix_for(report)} for report in reports],
        "configuration_errors": [r.name for r in reports if r.configuration_error],
        "refused": refused,
        "recommendation": _recommendation(used, key, invalid),
        "fix": _fix_line(used, blocking, used_report if refused else None),
    }
    return status


def _credential_details(used: Credential | None, report: SourceReport | None) -> dict[str, Any]:
    """What the used source holds, secret-free: the fields `status` shows about it."""
    if used is None or report is None:
        return {}
    variable = ENV_OF_SOURCE.get(used.source)
    details: dict[str, Any] = {
        "kind": used.kind,
        "source": used.source,
        "location": f"environment variable {variable}" if variable else report.path,
        "hint": mask(used.secret if used.tokens is None else used.tokens.access_token),
        "can_refresh": bool(used.tokens and used.tokens.refresh_token),
        "expires_at": None,
        "expires_at_local": None,
        "expires_in": None,
        "scopes": [],
        "subscription_type": None,
        "rate_limit_tier": None,
        "notes": [],
    }
    tokens = used.tokens
    if tokens is None:
        return details
    if tokens.expires_at is not None:
        local = datetime.fromtimestamp(tokens.expires_at).astimezone()
        details["expires_at"] = int(tokens.expires_at)
        details["expires_at_local"] = local.isoformat(timespec="seconds")
        details["expires_in"] = int(tokens.expires_at - _clock.now())
    details["scopes"] = [s for s in tokens.scopes if plain_label(s, "scope")]
    for field, name, kind in (
        ("subscription_type", "subscriptionType", "plan"),
        ("rate_limit_tier", "rateLimitTier", "tier"),
    ):
        details[field] = plain_label(tokens.extra.get(name), kind)
    notes = tokens.extra.get("notes")
    details["notes"] = [str(note) for note in notes] if isinstance(notes, list) else []
    return details


def _note_unsaveable(report: SourceReport, credential: Credential) -> None:
    """A login whose store cannot be saved is never refreshed (its refresh token would be
    lost): the row says why (a read-only folder, a Redis user without a needed command)."""
    store, tokens = credential.store, credential.tokens
    explain = getattr(store, "why_not_writable", None)
    if tokens is None or tokens.refresh_token is None or not callable(explain):
        return
    try:
        why = explain()
    except Exception as error:  # a status call must describe, not fail
        why = f"could not be checked: {error}"
    if why:
        report.detail += f"; it cannot be refreshed here, since it cannot be saved ({why})"


def _api_base_url(used: Credential | None) -> str:
    """The host a client built now sends to: the variable, else an SDK profile's, else the API."""
    named = _config.env_value("ANTHROPIC_BASE_URL")
    profile = used.profile if used is not None else None
    return named or (profile.base_url if profile else None) or DEFAULT_API_BASE_URL


def _token_url(used: Credential | None) -> str | None:
    """The token endpoint a refresh of the used credential would call (None: no refresh)."""
    if used is None or used.tokens is None:
        return None
    if used.profile is not None:
        return used.profile.token_url()  # as the client builds it: the profile's host first
    from_file = used.tokens.extra.get("token_url")
    named = _config.env_value(ENV.TOKEN_URL) or (from_file if isinstance(from_file, str) else None)
    return named or _config.DEFAULT_TOKEN_URL


def _blocking_report(reports: list[SourceReport], used: SourceReport | None) -> SourceReport | None:
    """The first broken source above the one used (or anywhere, when none is usable)."""
    for report in reports:
        if report is used:
            return None
        if report.state == "invalid":
            return report
    return None


def _summary(used: Credential | None, invalid: list[SourceReport], refused: str | None) -> str:
    names = ", ".join(report.name for report in invalid)
    broken = f" ({len(invalid)} {'source is' if len(invalid) == 1 else 'sources are'} broken: "
    broken += f"{names})"
    if used is None:
        return "No usable Claude credentials found" + (broken if invalid else "") + "."
    text = f"Using {_kind_phrase(used)} from {used.source}"
    if used.tokens is not None:
        text += f", {describe_expiry(used.tokens.expires_at)}"
    if refused is not None:
        text += ", but its refresh token was refused: it stops working then"
    return text + (broken if invalid else "") + "."


def _kind_phrase(used: Credential) -> str:
    return {"oauth": "OAuth", "api_key": "an API key", "auth_token": "a bearer token"}[used.kind]


def _recommendation(
    used: Credential | None, key: Credential | None, invalid: list[SourceReport]
) -> str | None:
    if used is None:
        if invalid:
            first = invalid[0]
            return f"Fix {first.name}: {_fix_for(first)}."
        return explain_reports([]).split("\n")[-1]
    if invalid:
        first = invalid[0]
        return f"Fix or remove {first.name}: {first.detail}"
    if used.kind == "oauth" and key is None and used.profile is None:
        return FALLBACK_ADVICE
    return None


def _fix_line(
    used: Credential | None, blocking: SourceReport | None, refused: SourceReport | None
) -> str | None:
    """The "To fix" line: the broken source in the way, or the refused login in use, and the
    command that fixes it."""
    if blocking is not None:
        return f"{blocking.name} is broken; {_fix_for(blocking)}"
    if refused is not None:
        return f"{refused.name}'s login was refused; {_repair(refused)}"
    if used is None:
        return explain_reports([]).split("\n")[-1].removeprefix("To fix: ").rstrip(".")
    return None


def _fix_for(report: SourceReport) -> str | None:
    """The command that repairs one source (None for a source that needs nothing)."""
    if report.state != "invalid":
        return None
    return _repair(report)


def _repair(report: SourceReport) -> str:
    """The command that repairs a source whose login is broken or refused."""
    if report.fix:
        return report.fix
    detail = report.detail
    if report.configuration_error:
        if ENV.REFRESH_THRESHOLD in detail:
            return f"set {ENV.REFRESH_THRESHOLD} to a number of seconds (e.g. 300), or unset it"
        if '"token_url"' in detail:
            return f'correct or remove "token_url" in {report.path}'
        return f"set {ENV.TOKEN_URL} to an https:// URL, or unset it"
    if report.name == "claude_code":
        return "log in again with Claude Code: run `claude`, then /login"
    if report.name == "claude_code_env":
        return f"create a new token with `claude setup-token` and set {ENV.CODE_OAUTH_TOKEN}"
    if report.name in ENV_OF_SOURCE:
        return f"correct {ENV_OF_SOURCE[report.name]}, or unset it"
    if report.name == "token_store_env":
        return (
            f"correct {ENV.TOKEN_STORE}, or store a login there with "
            f'`claude-oauth-auth save --store "${ENV.TOKEN_STORE}"`'
        )
    if report.name == "auth_file_env" and "does not exist" in detail:
        return f"create it with `claude-oauth-auth save`, or unset {ENV.AUTH_FILE}"
    where = report.path or "the file"
    if "log in again" in detail or "expired" in detail:
        return f"store new tokens in {where} with `claude-oauth-auth save`"
    return f"fix or delete {where}, or replace it with `claude-oauth-auth save`"


def expiry_text(expires_at: float | None) -> str:
    """Absolute local time and relative time: ``2026-11-27 17:30 CET (in 5 h)``."""
    if expires_at is None:
        return "no expiry recorded"
    local = datetime.fromtimestamp(expires_at).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    left = expires_at - _clock.now()
    relative = f"in {format_duration(left)}" if left > 0 else f"expired {format_duration(left)} ago"
    return f"{local} ({relative})"
