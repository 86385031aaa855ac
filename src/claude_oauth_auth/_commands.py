"""What each ``claude-oauth-auth`` command does; ``cli`` parses and presents the results.

Secrets go to standard output only from ``token``; every other line shows at most the
last 4 characters of a token.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import ClaudeAuthError
from ._tokens import TokenSet

if TYPE_CHECKING:
    from ._cascade import UnifiedAuthManager
    from .stores._base import TokenStore

__all__ = [
    "COMMANDS",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "LOGIN_FIX",
    "CommandError",
    "is_sdk_error",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
MAX_INPUT_BYTES = 1024 * 1024
SLOW_NOTICE_SECONDS = 0.3
MILLISECONDS_THRESHOLD = 1e11  # a unix time in seconds this large is the year 5138
LOGIN_FIX = (
    "log in again with Claude Code (run `claude`, then /login) or store new tokens with "
    "`claude-oauth-auth save`"
)


class CommandError(Exception):
    """A failure explained to the user: one sentence, how to fix it, and the exit code."""

    def __init__(self, message: str, fix: str | None = None, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.code = code


def is_sdk_error(error: Exception, name: str) -> bool:
    # The SDK-derived errors live in a module that imports anthropic; if it is not loaded,
    # the error cannot be one of them (and `status` must never import anthropic).
    module = sys.modules.get("claude_oauth_auth._sdk_errors")
    return module is not None and isinstance(error, getattr(module, name))


# ----- status -------------------------------------------------------------------------------


def _status(arguments: argparse.Namespace) -> int:
    from ._status import get_auth_status

    status = get_auth_status()
    if arguments.json:
        print(json.dumps(status, indent=2))
    else:
        print(_status_table(status))
    return EXIT_OK if status["source"] is not None else EXIT_FAILED


def _status_table(status: dict[str, Any]) -> str:
    rows = [(entry["name"], entry["state"], entry["detail"]) for entry in status["sources"]]
    name_width = max(len("source"), *(len(row[0]) for row in rows))
    state_width = max(len("state"), *(len(row[1]) for row in rows))
    lines = [f"{'source':<{name_width}}  {'state':<{state_width}}  detail"]
    lines.append(f"{'-' * name_width}  {'-' * state_width}  {'-' * 6}")
    for name, state, detail in rows:
        lines.append(f"{name:<{name_width}}  {state:<{state_width}}  {detail}")
    lines.append("")
    lines.append(status["summary"])
    if status["recommendation"]:
        lines.append(status["recommendation"])
    return "\n".join(lines)


# ----- token --------------------------------------------------------------------------------


def _token(arguments: argparse.Namespace) -> int:
    if sys.stdout.isatty() and not arguments.show:
        raise CommandError(
            "refusing to print a token to a terminal, where it would stay in the scrollback",
            "pipe or capture the output (`$(claude-oauth-auth token)`), or pass --show",
            EXIT_USAGE,
        )
    from ._cascade import UnifiedAuthManager

    with _slow_notice("Refreshing the OAuth token…"):
        auth = UnifiedAuthManager()
        token = _current_token(auth)
    credential = auth.active_credential
    if not arguments.json:
        print(token)
        return EXIT_OK
    manager = auth.token_manager if credential.kind == "oauth" else None
    expires_at = manager.token_expiry if manager is not None else None
    document = {
        "token": token,
        "auth_method": credential.auth_method,
        "kind": credential.kind,
        "source": credential.source,
        "expires_at": None if expires_at is None else int(expires_at),
        "expires_in": None if expires_at is None else max(0, int(expires_at - time.time())),
    }
    print(json.dumps(document, indent=2))
    return EXIT_OK


def _current_token(auth: UnifiedAuthManager) -> str:
    """The secret the active credential sends; an OAuth token is refreshed when due."""
    credential = auth.active_credential
    if credential.kind != "oauth":
        assert credential.secret is not None
        return credential.secret
    try:
        token: str = auth.token_source.token()
    except ClaudeAuthError as error:
        if not is_sdk_error(error, "OAuthRefreshError"):
            raise
        key = auth.switch_to_fallback(str(error))
        if key is None:
            raise
        return key
    return token


@contextlib.contextmanager
def _slow_notice(message: str) -> Iterator[None]:
    """On a terminal, say what is happening when a step takes longer than a moment."""
    if not _stderr_is_terminal():
        yield
        return
    timer = threading.Timer(SLOW_NOTICE_SECONDS, lambda: print(message, file=sys.stderr))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


# ----- refresh ------------------------------------------------------------------------------


def _refresh(arguments: argparse.Namespace) -> int:
    from ._cascade import UnifiedAuthManager

    if _stderr_is_terminal():
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
        print(f"Refreshed the OAuth token from {origin}; {_describe_expiry(expires_at)}.")
    return EXIT_OK


def _describe_expiry(expires_at: float | None) -> str:
    if expires_at is None:
        return "the new token has no recorded expiry"
    minutes = max(0, round((expires_at - time.time()) / 60))
    when = datetime.fromtimestamp(expires_at).astimezone().isoformat(timespec="seconds")
    return f"it expires in {minutes} min, at {when}"


# ----- save ---------------------------------------------------------------------------------


def _save(arguments: argparse.Namespace) -> int:
    store = _target_store(arguments.store)
    path = _path_of(store)
    if path is not None:
        _refuse_claude_code_store(path, "save tokens to it")
    with _terminal_echo_off("Paste the token JSON (it is not shown), then press Ctrl-D:"):
        raw = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
    tokens = _validated_tokens(raw)
    with store.lock():
        if path is not None:
            _refuse_claude_code_store(path, "save tokens to it", _previous_document(path))
        store.save(tokens, expected_version=store.version())
    from ._tokens import mask

    expiry = tokens.expires_at or 0.0
    refresh = (
        "with a refresh token"
        if tokens.refresh_token is not None
        else "without a refresh token (it cannot be renewed)"
    )
    left = (
        "has already expired and is refreshed on first use"
        if expiry <= time.time()
        else _describe_expiry(expiry).replace("it expires", "expires")
    )
    print(
        f"Saved the OAuth access token ({mask(tokens.access_token)}) {refresh} to "
        f"{store.location}; the access token {left}."
    )
    return EXIT_OK


@contextlib.contextmanager
def _terminal_echo_off(prompt: str) -> Iterator[None]:
    """On a terminal: stop echoing, then prompt, so pasted tokens stay out of the scrollback."""
    try:
        import termios
    except ImportError:  # not POSIX
        yield
        return
    try:
        descriptor = sys.stdin.fileno()
        saved = termios.tcgetattr(descriptor)
    except (termios.error, OSError, ValueError, AttributeError):
        yield  # not a terminal
        return
    quiet = list(saved)
    quiet[3] &= ~termios.ECHO
    termios.tcsetattr(descriptor, termios.TCSADRAIN, quiet)
    print(prompt, file=sys.stderr, flush=True)
    try:
        yield
    finally:
        termios.tcsetattr(descriptor, termios.TCSADRAIN, saved)
        print(file=sys.stderr)


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


def _validated_tokens(raw: bytes) -> TokenSet:
    """Check the JSON on standard input (our file shape, or a token endpoint's answer)."""
    from ._config import validate_token_url
    from ._tokens import TokenFormatError, parse_token_document

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
        raise _bad_input(f"expected a JSON object, got a JSON {type(document).__name__}")
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
    if tokens.seconds_left() <= 0 and tokens.refresh_token is None:
        raise _bad_input("the access token has expired and there is no refresh token to renew it")
    for name in ("client_id", "token_url"):
        if name in document and name not in tokens.extra:
            raise _bad_input(f'"{name}" must be a non-empty string')
    if "token_url" in tokens.extra:
        try:
            validate_token_url(tokens.extra["token_url"])
        except ValueError as error:
            raise _bad_input(str(error)) from None
    unknown = sorted(set(document) - KNOWN_INPUT_KEYS)
    if unknown:
        print(f"claude-oauth-auth: ignored unknown field(s): {', '.join(unknown)}", file=sys.stderr)
    return tokens


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
        return time.time() + float(value)
    if value > MILLISECONDS_THRESHOLD:
        raise _bad_input('"token_expiry" looks like milliseconds; give unix seconds')
    return float(value)


def _previous_document(path: Path) -> dict[str, Any] | None:
    """The current file, if it is a readable, trustworthy JSON object."""
    from .stores._files import read_json_file

    try:
        document = read_json_file(path)
    except (OSError, ClaudeAuthError):
        return None
    return document if isinstance(document, dict) else None


# ----- logout -------------------------------------------------------------------------------


def _logout(arguments: argparse.Namespace) -> int:
    store = _target_store(arguments.store)
    path = _path_of(store)
    if path is not None:
        _refuse_claude_code_store(path, "delete it")
        if not path.exists() and not path.is_symlink():
            print(f"No token file at {path}; nothing to delete.")
            return EXIT_OK
        if path.is_dir():
            raise CommandError(f"{path} is a directory, not a token file", "remove it by hand")
        _refuse_claude_code_store(path, "delete it", _previous_document(path))
    elif store.version() is None:
        print(f"No tokens in {store.location}; nothing to delete.")
        return EXIT_OK
    if not arguments.yes:
        if not sys.stdin.isatty():
            raise CommandError(
                f"not deleting {store.location} without confirmation",
                "pass --yes to delete it without a prompt",
                EXIT_USAGE,
            )
        print(f"Delete {store.location}? [y/N] ", end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            print("Not deleted.", file=sys.stderr)
            return EXIT_FAILED
    with store.lock():
        store.delete()
    print(
        f"Deleted {store.location}. Claude Code's own login was not touched; run "
        "`claude-oauth-auth status` to see which credentials remain."
    )
    return EXIT_OK


# ----- shared -------------------------------------------------------------------------------


def _target_store(url: str | None) -> TokenStore:
    """``--store URL``, else our token file (``$CLAUDE_AUTH_FILE`` or ``auth.json``)."""
    if url is not None:
        from .stores._url import store_from_url

        return store_from_url(url)
    from .stores._file import FileStore

    return FileStore(_our_token_file())


def _path_of(store: TokenStore) -> Path | None:
    path = getattr(store, "path", None)
    return path if isinstance(path, Path) else None


def _our_token_file() -> Path:
    """Our token file: ``$CLAUDE_AUTH_FILE``, else the default ``auth.json``."""
    from ._config import ENV, default_auth_file, env_value, expand_path

    named = env_value(ENV.AUTH_FILE)
    return expand_path(named) if named else default_auth_file()


def _refuse_claude_code_store(
    path: Path, action: str, document: dict[str, Any] | None = None
) -> None:
    """Stop before writing or deleting Claude Code's own credentials."""
    from ._config import claude_code_file

    theirs = claude_code_file()
    same = path.resolve() == theirs.resolve()
    if not same and path.exists() and theirs.exists():
        with contextlib.suppress(OSError):
            same = os.path.samefile(path, theirs)
    if same or (document is not None and "claudeAiOauth" in document):
        raise CommandError(
            f"{path} is Claude Code's credentials file, and claude-oauth-auth will not {action}",
            "point CLAUDE_AUTH_FILE at a file of its own, or use `claude` to log in or out",
        )


COMMANDS = {
    "status": _status,
    "token": _token,
    "refresh": _refresh,
    "save": _save,
    "logout": _logout,
}
