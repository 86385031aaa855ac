"""get_auth_status(): every source's state and what would be used; never a secret, never raises."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._sources import (
    FALLBACK_SOURCES,
    Credential,
    SourceReport,
    check_source,
    describe_expiry,
    explain_reports,
    validate_sources,
)
from ._tokens import mask

__all__ = ["get_auth_status"]


def get_auth_status(sources: Sequence[str] | None = None) -> dict[str, Any]:
    """Check every source of the cascade and describe what a client would use.

    Keys: ``summary``, ``auth_method``, ``source``, ``oauth_available``, ``oauth_token_valid``,
    ``oauth_token_expiry``, ``oauth_token_file``, ``api_key_available``, ``api_key_source``,
    ``sources`` (name, state, detail, path for each) and ``recommendation``.
    """
    names = validate_sources(sources)
    reports: list[SourceReport] = []
    found: list[tuple[SourceReport, Credential]] = []
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
        if credential is not None:
            found.append((report, credential))

    used = found[0][1] if found else None
    if found:
        found[0][0].state = "used"
        from ._profiles import note_shadowed

        note_shadowed(reports, found[0][1].source)
    oauth = next((credential for _report, credential in found if credential.kind == "oauth"), None)
    key = next((c for _r, c in found if c.kind != "oauth" and c.source in FALLBACK_SOURCES), None)
    tokens = oauth.tokens if oauth is not None else None
    invalid = [report for report in reports if report.state == "invalid"]

    status: dict[str, Any] = {
        "summary": _summary(used, invalid),
        "auth_method": used.auth_method if used else None,
        "source": used.source if used else None,
        "oauth_available": oauth is not None,
        "oauth_token_valid": bool(tokens and tokens.seconds_left() > 0)
        or bool(oauth is not None and tokens is None),
        "oauth_token_expiry": tokens.expires_at if tokens else None,
        "oauth_token_file": str(oauth.path) if oauth is not None and oauth.path else None,
        "oauth_token_hint": mask(tokens.access_token) if tokens else None,
        "oauth_refreshable": bool(tokens and tokens.refresh_token),
        "api_key_available": key is not None,
        "api_key_source": key.source if key else None,
        "sources": [report.as_dict() for report in reports],
        "recommendation": _recommendation(used, oauth, key, invalid),
    }
    return status


def _summary(used: Credential | None, invalid: list[SourceReport]) -> str:
    broken = f" ({len(invalid)} source(s) broken: {', '.join(r.name for r in invalid)})"
    if used is None:
        return "No usable Claude credentials found" + (broken if invalid else "") + "."
    what = {"oauth": "OAuth", "api_key": "an API key", "auth_token": "a bearer token"}[used.kind]
    text = f"Using {what} from {used.source}"
    if used.tokens is not None:
        text += f", {describe_expiry(used.tokens.expires_at)}"
    return text + (broken if invalid else "") + "."


def _recommendation(
    used: Credential | None,
    oauth: Credential | None,
    key: Credential | None,
    invalid: list[SourceReport],
) -> str | None:
    if used is None:
        return explain_reports([]).split("\n")[-1]
    if invalid:
        first = invalid[0]
        return f"Fix or remove {first.name}: {first.detail}"
    if used.kind == "oauth" and key is None and used.profile is None:
        return (
            "Set ANTHROPIC_API_KEY as a fallback: subscription (Pro/Max) OAuth tokens are "
            "only authorized for Claude Code, and the API may refuse them."
        )
    return None
