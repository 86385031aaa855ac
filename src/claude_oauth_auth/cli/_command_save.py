"""``claude-oauth-auth save``: check token JSON from standard input and store it."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from .. import _clock
from .._config import ENV, env_value
from .._errors import ClaudeAuthError
from .._tokens import TokenSet
from ..stores._file import path_of
from ._command_base import CommandError, Console, Result, describe_expiry
from ._command_stores import (
    Target,
    previous_document,
    refuse_claude_code_store,
    same_place,
    target_store,
)

__all__ = ["run_save"]

MAX_INPUT_BYTES = 1024 * 1024
MILLISECONDS_THRESHOLD = 1e11  # a unix time in seconds this large is the year 5138


def run_save(arguments: argparse.Namespace, console: Console) -> Result:
    target = target_store(arguments.store)
    store = target.store
    path = path_of(store)
    if path is not None:
        refuse_claude_code_store(path, "save tokens to it")
    raw = console.read_input(
        "Paste the token JSON (it is not shown), then press Ctrl-D:", MAX_INPUT_BYTES + 1
    )
    tokens, ignored = _validated_tokens(raw)
    with store.lock():
        if path is not None:
            refuse_claude_code_store(path, "save tokens to it", previous_document(path))
        store.save(tokens, expected_version=store.version())
    from .._tokens import mask

    expiry = tokens.expires_at or 0.0
    refresh = (
        "with a refresh token"
        if tokens.refresh_token is not None
        else "without a refresh token (it cannot be renewed)"
    )
    left = (
        "has already expired and is refreshed on first use"
        if expiry <= _clock.now()
        else f"expires at {describe_expiry(expiry)}"
    )
    notes = (
        (f"claude-oauth-auth: ignored unknown field(s): {', '.join(ignored)}",) if ignored else ()
    )
    text = (
        f"Saved the OAuth access token ({mask(tokens.access_token)}) {refresh} to "
        f"{target.where}; the access token {left}."
    )
    document = {
        "saved": True,
        "location": store.location,
        "chosen_by": target.chosen_by,
        "hint": mask(tokens.access_token),
        "can_refresh": tokens.refresh_token is not None,
        "expires_at": int(expiry),
        "expires_in": max(0, int(expiry - _clock.now())),
        "ignored_fields": ignored,
    }
    return Result(text, document, notes=notes + _unread_note(target))


def _unread_note(target: Target) -> tuple[str, ...]:
    """A login saved with ``--store`` where clients do not look first: say so, not shadow it."""
    from ..stores._url import store_from_url

    if target.chosen_by != "--store":
        return ()
    try:
        first = target_store(None)
        named = env_value(ENV.TOKEN_STORE)
        named_here = named is not None and same_place(target.store, store_from_url(named))
    except (ClaudeAuthError, ValueError):
        return ()  # a broken CLAUDE_TOKEN_STORE: `status` explains it
    if same_place(target.store, first.store):
        return ()
    if named_here:
        return (f"claude-oauth-auth: note: clients look in {first.where} before this store",)
    return (
        f"claude-oauth-auth: note: clients use this store only when {ENV.TOKEN_STORE} names "
        f"it; now they look in {first.where}",
    )


KNOWN_INPUT_KEYS = {
    "access_token",
    "refresh_token",
    "token_expiry",
    "expires_in",
    "client_id",
    "token_url",
    "scopes",
    "scope",
    "token_type",
}


def _bad_input(message: str) -> CommandError:
    return CommandError(
        f"{message}; nothing was saved",
        "pipe one JSON object with access_token, refresh_token and token_expiry or expires_in "
        "(see `claude-oauth-auth save --help`)",
    )


def _validated_tokens(raw: bytes) -> tuple[TokenSet, list[str]]:
    """Check the JSON on standard input (our file shape, or a token endpoint's answer);
    return the tokens and the unknown fields it ignored."""
    from .._config import validate_token_url
    from .._tokens import TokenFormatError, json_kind, parse_token_document

    if len(raw) > MAX_INPUT_BYTES:
        raise _bad_input("standard input is larger than a token document can be")
    if not raw.strip():
        raise _bad_input("standard input is empty")
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _bad_input("standard input is not UTF-8 text") from None
    except json.JSONDecodeError as error:  # never quote the input: it may hold a secret
        where = f"line {error.lineno}, column {error.colno}"
        raise _bad_input(f"standard input is not valid JSON ({error.msg} at {where})") from None
    if not isinstance(document, dict):
        raise _bad_input(f"expected a JSON object, got a JSON {json_kind(document)}")
    if "claudeAiOauth" in document:
        raise _bad_input(
            "this is Claude Code's credentials file, which claude-oauth-auth already reads "
            "directly (a copy would spend the same single-use refresh token as Claude Code)"
        )
    document = {**document, "token_expiry": _expiry(document)}
    document.setdefault("scopes", document.get("scope"))
    try:
        tokens, _shape = parse_token_document(document)
    except TokenFormatError as error:
        raise _bad_input(str(error)) from None
    for name in ("access_token", "refresh_token"):
        value = getattr(tokens, name)
        if value is not None and (any(c.isspace() for c in value) or not value.isprintable()):
            raise _bad_input(f'"{name}" contains spaces or control characters')
    if tokens.seconds_left(_clock.now()) <= 0 and tokens.refresh_token is None:
        raise _bad_input("the access token has expired and there is no refresh token to renew it")
    for name in ("client_id", "token_url"):
        if name in document and name not in tokens.extra:
            raise _bad_input(f'"{name}" must be a non-empty string')
    if "token_url" in tokens.extra:
        try:
            validate_token_url(tokens.extra["token_url"])
        except ValueError as error:
            raise _bad_input(str(error)) from None
    return tokens, sorted(set(document) - KNOWN_INPUT_KEYS)


def _expiry(document: dict[str, Any]) -> float:
    """``token_expiry`` (unix seconds) or ``now + expires_in``: exactly one must be given."""
    has_expiry, has_lifetime = "token_expiry" in document, "expires_in" in document
    if has_expiry == has_lifetime:
        raise _bad_input('give exactly one of "token_expiry" (unix seconds) or "expires_in"')
    name = "token_expiry" if has_expiry else "expires_in"
    value = document[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad_input(f'"{name}" must be a number of seconds')
    if value <= 0:
        raise _bad_input(f'"{name}" must be greater than zero')
    if has_lifetime:
        if value > 10 * 365 * 86400:
            raise _bad_input('"expires_in" is longer than ten years')
        return _clock.now() + float(value)
    if value > MILLISECONDS_THRESHOLD:
        raise _bad_input('"token_expiry" looks like milliseconds; give unix seconds')
    return float(value)
