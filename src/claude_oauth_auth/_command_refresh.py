"""``claude-oauth-auth refresh``: force a refresh of the OAuth credential in use."""

from __future__ import annotations

import argparse
import json
import sys
import time

from ._command_base import (
    EXIT_OK,
    LOGIN_FIX,
    CommandError,
    describe_expiry,
    stderr_is_terminal,
)

__all__ = ["run_refresh"]


def run_refresh(arguments: argparse.Namespace) -> int:
    from ._cascade import UnifiedAuthManager

    if stderr_is_terminal():
        print("Refreshing the OAuth token…", file=sys.stderr)
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
    if arguments.json:
        document = {
            "refreshed": True,
            "source": credential.source,
            "token_file": where,
            "expires_at": None if expires_at is None else int(expires_at),
            "expires_in": None if expires_at is None else max(0, int(expires_at - time.time())),
        }
        print(json.dumps(document, indent=2))
    else:
        origin = credential.source + (f" ({where})" if where else "")
        print(f"Refreshed the OAuth token from {origin}; {describe_expiry(expires_at)}.")
    return EXIT_OK
