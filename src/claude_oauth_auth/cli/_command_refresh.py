"""``claude-oauth-auth refresh``: force a refresh of the OAuth credential in use."""

from __future__ import annotations

import argparse

from .. import _clock
from ..cascade._sources import SourceReport
from ._command_base import LOGIN_FIX, CommandError, Console, Result, describe_expiry

__all__ = ["run_refresh"]


def run_refresh(arguments: argparse.Namespace, console: Console) -> Result:
    from ..cascade._cascade import UnifiedAuthManager

    if console.is_terminal("stderr"):
        console.notice("Refreshing the OAuth token…")
    auth = UnifiedAuthManager()
    if auth.fallback_reason is not None:
        raise CommandError(
            f"the OAuth token from {auth.credential.source} could not be refreshed "
            f"({auth.fallback_reason.rstrip('.')})",
            LOGIN_FIX,
        )
    manager = auth.token_manager
    credential = auth.active_credential
    if manager is None:
        _raise_if_an_oauth_source_was_refused(auth.reports)
        what = {"api_key": "an API key", "auth_token": "a bearer token"}.get(
            credential.kind, "an OAuth token without a refresh token"
        )
        raise CommandError(
            f"there is no refreshable OAuth credential: the one in use is {what} "
            f"from {credential.source}",
            "run `claude-oauth-auth status` to see why OAuth sources were skipped, or "
            "store OAuth tokens with `claude-oauth-auth save`",
        )
    if not manager.can_refresh:
        raise CommandError(
            f"the OAuth token from {credential.source} has no refresh token", LOGIN_FIX
        )
    found = auth.credential.tokens
    if found is None or manager.access_token == found.access_token:
        manager.refresh()  # not already refreshed while the cascade was checked
    where = manager.store.location if manager.store is not None else None
    if manager.unsaved:
        raise CommandError(
            f"the refreshed tokens could not be saved to {where}, so this login is "
            "lost when the command exits",
            "free disk space or fix that folder's permissions, then log in again",
        )
    expires_at = manager.token_expiry
    document = {
        "refreshed": True,
        "source": credential.source,
        "token_file": where,
        "expires_at": None if expires_at is None else int(expires_at),
        "expires_in": None if expires_at is None else max(0, int(expires_at - _clock.now())),
    }
    origin = credential.source + (f" ({where})" if where else "")
    text = f"Refreshed the OAuth token from {origin}; it expires at {describe_expiry(expires_at)}."
    return Result(text, document)


def _raise_if_an_oauth_source_was_refused(reports: list[SourceReport]) -> None:
    """An OAuth source skipped because its refresh token was refused: say that, not "none"."""
    for report in reports:
        if report.state == "invalid" and "refused the refresh token" in report.detail:
            raise CommandError(
                f"the OAuth token from {report.name} could not be refreshed ({report.detail})",
                LOGIN_FIX,
            )
