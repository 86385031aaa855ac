"""``claude-oauth-auth move --from SOURCE --to URL``: a login into a store, kept in one place.

A refresh token is single-use: two stores holding copies of one login cannot both keep it.
So the login is written to the target first (an atomic, fsynced file or a compare-and-set in
Redis), read back, and only then deleted from the source, all under the source's lock so that
nobody refreshes it in between. Claude Code's own store is never a source: Claude Code would
keep refreshing its copy and log the moved one out.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .._errors import ClaudeAuthError
from ..stores._file import path_of
from ._command_base import CommandError, Console, Result
from ._command_stores import (
    delete_login,
    previous_document,
    refuse_claude_code_store,
    same_place,
)

if TYPE_CHECKING:
    from .._tokens import TokenSet
    from ..cascade._profiles import SdkProfile
    from ..stores._base import TokenStore

__all__ = ["MoveOutcome", "add_move_arguments", "move_login", "run_move"]

STORE_SCHEMES = ("file", "keyring", "redis", "rediss")


def add_move_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--from",
        dest="source",
        metavar="SOURCE",
        required=True,
        help="a token file (path) or a store URL (file:///PATH, keyring:, redis://…)",
    )
    command.add_argument(
        "--to", dest="target", metavar="URL", required=True, help="the store URL to move it to"
    )


@dataclass(frozen=True)
class MoveOutcome:
    """What ``move`` did, without a secret: where from, where to, the token's last 4 chars."""

    source: str
    target: str
    access_token_end: str
    had_refresh_token: bool

    @property
    def text(self) -> str:
        refresh = "and its refresh token" if self.had_refresh_token else "(no refresh token)"
        return (
            f"Moved the OAuth login ({self.access_token_end}) {refresh} from {self.source} to "
            f"{self.target}, and removed it from {self.source}. Point your programs at the "
            "new store with CLAUDE_TOKEN_STORE (the --to URL), and restart the ones that "
            "used the old place."
        )

    @property
    def document(self) -> dict[str, Any]:
        return {"moved": True, "from": self.source, "to": self.target}


def run_move(arguments: argparse.Namespace, console: Console) -> Result:
    outcome = move_login(arguments.source, arguments.target)
    return Result(outcome.text, outcome.document)


def move_login(source_text: str, target_url: str) -> MoveOutcome:
    """Copy the login in ``source_text`` (a path or a store URL) to ``target_url``, then delete
    it from the source. Raises ``CommandError`` with what to do when it cannot."""
    from .._tokens import mask
    from ..stores._url import store_from_url

    source, profile = _source_store(source_text)
    target = store_from_url(target_url)
    _refuse_claude_code_source(source)
    target_path = path_of(target)
    if target_path is not None:
        refuse_claude_code_store(target_path, "move a login into it")
    if same_place(source, target):
        raise CommandError(
            f"{source.location} is both the source and the target", "name another --to store"
        )
    with source.lock():
        _refuse_claude_code_source(source)  # checked again under the lock
        tokens = source.load()
        if tokens is None:
            raise CommandError(
                f"{source.location} holds no OAuth login; nothing was moved",
                "check --from, or run `claude-oauth-auth status`",
            )
        if profile is not None:
            tokens = _with_profile_settings(tokens, profile)
        _write_and_check(target, tokens, _as_url(source, source_text))
        try:
            delete_login(source)
        except (ClaudeAuthError, OSError) as error:
            raise CommandError(
                f"copied the login to {target.location}, but could not remove it from "
                f"{source.location} ({_reason(error)}): the same refresh token is now in both, "
                "and the first refresh on either side logs the other out",
                f"delete it from the source now with `claude-oauth-auth logout --yes --store "
                f"{_as_url(source, source_text)}` (running `move` again does that too)",
            ) from None
    return MoveOutcome(
        source.location,
        target.location,
        mask(tokens.access_token),
        tokens.refresh_token is not None,
    )


def _write_and_check(target: TokenStore, tokens: TokenSet, source_url: str) -> None:
    """Save into ``target`` unless it holds another login; read it back before going on."""
    with target.lock():
        existing = target.load()
        if existing is not None and _pair(existing) != _pair(tokens):
            raise CommandError(
                f"{target.location} already holds another OAuth login; moving would throw its "
                "refresh token away, so nothing was moved",
                "delete that login first with `claude-oauth-auth logout --store URL`, or move "
                "to another store; if it is this login, moved earlier and refreshed since, "
                f"delete the stale source instead: `claude-oauth-auth logout --yes --store "
                f"{source_url}`",
            )
        if existing is None:  # else: a move interrupted after this step, being run again
            target.save(tokens, expected_version=target.version())
        written = target.load()
    if written is None or _pair(written) != _pair(tokens):
        raise CommandError(
            f"{target.location} did not keep the login that was written to it; the source "
            "was left as it was",
            "check that store, then run `move` again",
        )


def _pair(tokens: TokenSet) -> tuple[str, str | None]:
    return tokens.access_token, tokens.refresh_token


def _source_store(text: str) -> tuple[TokenStore, SdkProfile | None]:
    """A store URL (file:, keyring:, redis:, rediss:) or else a path to a token file (an SDK
    profile's ``credentials/<name>.json`` comes with its profile)."""
    from ..cascade._profiles import profile_of_credentials
    from ..stores._file import FileStore
    from ..stores._url import store_from_url

    stripped = text.strip()
    if urlsplit(stripped).scheme.lower() in STORE_SCHEMES:
        store = store_from_url(stripped)
        path = path_of(store)
        profile = profile_of_credentials(path) if path is not None else None
        return (store, None) if profile is None else _profile_source(path, profile)
    from .._config import expand_path

    path = expand_path(stripped)
    if not path.is_file():
        raise CommandError(
            f"{path} is not a token file; nothing was moved",
            "give --from a token file's path or a store URL",
        )
    profile = profile_of_credentials(path)
    return (FileStore(path), None) if profile is None else _profile_source(path, profile)


def _profile_source(path: Path | None, profile: SdkProfile) -> tuple[TokenStore, SdkProfile]:
    """An SDK profile's credentials, read in the SDK's shape; one without a ``client_id`` is
    refreshed by another program, so moving it would break that program's login."""
    from ..stores._sdk_profile import SdkProfileStore

    assert path is not None
    if profile.client_id is None:
        raise CommandError(
            f"SDK profile {profile.name!r} has no client_id in {profile.config_path}: another "
            "program refreshes its tokens, and a moved copy would be refreshed by nobody "
            "(or with the wrong client); nothing was moved",
            "move a login you made yourself (`claude-oauth-auth save --store URL`), or add the "
            "profile's client_id to its config first",
        )
    return SdkProfileStore(path, profile=profile.name), profile


def _with_profile_settings(tokens: TokenSet, profile: SdkProfile) -> TokenSet:
    """The profile's client id and token URL travel with its tokens (kept in the target)."""
    from dataclasses import replace

    extra = {**tokens.extra, "client_id": profile.client_id, "token_url": profile.token_url()}
    return replace(tokens, extra=extra)


def _refuse_claude_code_source(store: TokenStore) -> None:
    from ..stores._claude_code import ClaudeCodeStore

    path = path_of(store)
    if isinstance(store, ClaudeCodeStore) or (path is not None and _is_claude_codes(path)):
        raise CommandError(
            f"{store.location} is Claude Code's own login, and claude-oauth-auth will not move "
            "it: Claude Code would keep refreshing its copy, and the first refresh on either "
            "side would log the other out",
            "log in separately for your programs and `claude-oauth-auth save --store URL` "
            "those tokens, or let them share Claude Code's login where it is",
        )


def _is_claude_codes(path: Path) -> bool:
    try:
        refuse_claude_code_store(path, "move it", previous_document(path))
    except CommandError:
        return True
    return False


def _as_url(store: TokenStore, text: str) -> str:
    from ..stores._url import redact_url

    path = path_of(store)
    return f"file://{path}" if path is not None else redact_url(text.strip())


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError):
        return error.strerror or type(error).__name__
    return getattr(error, "reason", None) or str(error)
