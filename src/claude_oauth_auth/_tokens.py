"""Token values, masking, expiry arithmetic and the two token-file shapes."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from . import _clock

__all__ = [
    "CLAUDE_CODE_KEY",
    "GENERATION_KEY",
    "LOGGED_OUT_BY_CLAUDE_CODE",
    "LOG_IN_WITH_CLAUDE_CODE",
    "FileShape",
    "Generation",
    "Secret",
    "TokenDocument",
    "TokenSet",
    "escape_control_characters",
    "has_control_characters",
    "is_logged_out_by_claude_code",
    "json_kind",
    "mask",
    "parse_generation",
    "parse_token_document",
    "put_generation",
    "render_token_document",
]

FileShape = Literal["ours", "claude_code"]
CLAUDE_CODE_KEY = "claudeAiOauth"
OURS_EXTRA_KEYS = ("client_id", "token_url")
CLAUDE_CODE_EXTRA_KEYS = ("subscriptionType", "rateLimitTier")
SECONDS_LOOKALIKE_MS = 1e11  # an "expiresAt" below this (1973 in ms) was written in seconds
GENERATION_KEY = "generation"  # in our shape
CLAUDE_CODE_GENERATION_KEY = "claudeOauthAuthGeneration"  # top level of Claude Code's file


def mask(secret: str | None) -> str:
    """Show at most the last 4 characters of a secret."""
    if not secret:
        return "<none>"
    if len(secret) < 12:
        return "****"
    return f"...{secret[-4:]}"


def has_control_characters(value: str) -> bool:
    """True when ``value`` holds a character that must never reach an HTTP header (CR, LF, NUL…)."""
    return any(ord(character) < 0x20 or ord(character) == 0x7F for character in value)


_CONTROL_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F)}


def escape_control_characters(text: str) -> str:
    """``text`` with each control character shown as ``\\xNN``: a path or URL printed in a
    message or a table row cannot start a new line or change the terminal's colors."""
    return text.translate(_CONTROL_ESCAPES)


LABELS = {
    "plan": re.compile(r"[a-z][a-z0-9_-]{0,10}"),
    "tier": re.compile(r"[a-z][a-z0-9_]{0,10}|default_claude_[a-z0-9_]{1,24}"),
    "scope": re.compile(r"(user|org):[a-z_:]{1,40}"),
}
"""What a plan name (``max``), a rate-limit tier (``default_claude_max_20x``) and an OAuth
scope (``user:inference``) look like; anything else is not shown."""


def plain_label(value: object, kind: str) -> str | None:
    """``value`` when it reads as a label of ``kind`` (``LABELS``); None for anything else,
    which could be a secret put in the wrong field."""
    if not isinstance(value, str) or not LABELS[kind].fullmatch(value):
        return None
    return value


class Secret:
    """A secret string whose ``repr`` and ``str`` are masked; ``reveal()`` gives the value.

    Held instead of a bare ``str`` in frames that can raise, so tracebacks that record
    locals (error trackers, ``traceback.TracebackException(capture_locals=True)``) show
    only the last four characters.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({mask(self._value)!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True, slots=True)
class Generation:
    """Which chain of refreshes a saved login belongs to (``lineage``) and how far along it
    (``number``, one more per refresh). Every writer of ours labels what it saves; a foreign
    writer keeps the label it read or drops it, never makes one larger, so a login labelled
    with a smaller number of the same lineage is an older one."""

    lineage: str
    number: int

    def older_than(self, other: Generation | None) -> bool:
        """Same chain, fewer refreshes along it."""
        return other is not None and other.lineage == self.lineage and self.number < other.number

    def as_json(self) -> dict[str, Any]:
        return {"lineage": self.lineage, "number": self.number}


@dataclass(frozen=True)
class TokenSet:
    """An OAuth token pair with its expiry (unix seconds); repr never shows a secret."""

    access_token: str
    refresh_token: str | None = None
    expires_at: float | None = None
    scopes: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    generation: Generation | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.generation is not None and not isinstance(self.generation, Generation):
            # ``TokenSet(**dataclasses.asdict(tokens))``, as a store of one's own may do
            object.__setattr__(self, "generation", parse_generation(self.generation))

    def __repr__(self) -> str:
        return (
            f"TokenSet(access_token={mask(self.access_token)!r}, "
            f"refresh_token={mask(self.refresh_token)!r}, expires_at={self.expires_at!r})"
        )

    def older_than(self, other: TokenSet) -> bool:
        """An earlier login of ``other``'s chain of refreshes (both labelled)."""
        return self.generation is not None and self.generation.older_than(other.generation)

    def seconds_left(self, now: float | None = None) -> float:
        """Seconds until expiry (infinite when the expiry is unknown)."""
        if self.expires_at is None:
            return math.inf
        return self.expires_at - (_clock.now() if now is None else now)


class TokenFormatError(ValueError):
    """The JSON document is not a token file; the message says what is wrong."""


class TokenDocument(dict[str, Any]):
    """A parsed token document: a dict whose repr never shows the tokens inside."""

    def __repr__(self) -> str:
        return f"<token document with keys {sorted(self)}>"


def _masked(value: object) -> object:
    return TokenDocument(value) if type(value) is dict else value


# The validators never raise while a secret is a local of theirs: they find the problem in a
# helper that returns, drop the value, then raise (tracebacks that record locals stay clean).


def _string_problem(value: object, *, required: bool) -> str | None:
    if value is None:
        return "missing" if required else None
    if not isinstance(value, str):
        return f"must be a string, not a JSON {json_kind(value)}"
    if not value.strip():
        return "is empty" if required else None
    if has_control_characters(value.strip()):
        return "contains control characters (a line break or NUL)"
    return None


def _string(value: object, name: str, *, required: bool) -> str | None:
    problem = _string_problem(value, required=required)
    if problem is not None:
        del value
        if problem == "missing":
            raise TokenFormatError(f'missing "{name}"')
        raise TokenFormatError(f'"{name}" {problem}')
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()


def _number_problem(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be a number, not a JSON {json_kind(value)}"
    try:
        number = float(value)
    except OverflowError:
        return "is far too large to be a time"
    if not math.isfinite(number) or number < 0:
        return "must be a finite, non-negative number"
    return None


def _number(value: object, name: str) -> float | None:
    if value is None:
        return None
    problem = _number_problem(value)
    if problem is not None:
        del value
        raise TokenFormatError(f'"{name}" {problem}')
    assert isinstance(value, (int, float))
    return float(value)


def _scopes(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    del value
    raise TokenFormatError('"scopes" must be a list of strings')


def _milliseconds(value: float | None) -> float | None:
    return None if value is None else value / 1000.0


LOGGED_OUT_BY_CLAUDE_CODE = (
    "was logged out by Claude Code after the token endpoint refused its refresh token "
    "(it blanked the tokens)"
)
LOG_IN_WITH_CLAUDE_CODE = "log in again with Claude Code: run `claude`, then /login"
CLAUDE_CODE_LOGOUT_KEYS = ("loginEnded",)  # set by Claude Code on a login it ended


def parse_generation(value: object) -> Generation | None:
    """A generation label, or None for a missing or malformed one (never an error: a label
    only ranks logins, and without one the other rules apply)."""
    if not isinstance(value, dict):
        return None
    lineage, number = value.get("lineage"), value.get("number")
    if not isinstance(lineage, str) or not lineage.isalnum() or len(lineage) > 64:
        return None
    if type(number) is not int or number < 0:
        return None
    return Generation(lineage, number)


def is_logged_out_by_claude_code(document: object) -> bool:
    """Claude Code's file after it gave up a refused login: empty tokens, ``expiresAt: 0``."""
    inner = document.get(CLAUDE_CODE_KEY) if isinstance(document, dict) else None
    if not isinstance(inner, dict):
        return False
    blank = inner.get("accessToken") == "" and inner.get("refreshToken") == ""
    return blank and inner.get("expiresAt") in (0, None)


def parse_token_document(document: object) -> tuple[TokenSet, FileShape]:
    """Read either file shape; raise TokenFormatError naming what is wrong."""
    document = _masked(document)
    if not isinstance(document, dict):
        raise TokenFormatError(f"expected a JSON object, found a JSON {json_kind(document)}")
    if CLAUDE_CODE_KEY in document:
        inner = _masked(document[CLAUDE_CODE_KEY])
        if not isinstance(inner, dict):
            raise TokenFormatError(f'"{CLAUDE_CODE_KEY}" must be an object')
        expires_ms = _number(inner.get("expiresAt"), "expiresAt")
        extra = {k: v for k, v in inner.items() if k in CLAUDE_CODE_EXTRA_KEYS}
        if expires_ms is not None and 0 < expires_ms < SECONDS_LOOKALIKE_MS:
            expires_ms *= 1000.0  # written in seconds; milliseconds this small mean 1973
            extra["notes"] = ['"expiresAt" looks like seconds, not milliseconds; read as seconds']
        tokens = TokenSet(
            access_token=_string(inner.get("accessToken"), "accessToken", required=True) or "",
            refresh_token=_string(inner.get("refreshToken"), "refreshToken", required=False),
            expires_at=_milliseconds(expires_ms),
            scopes=_scopes(inner.get("scopes")),
            extra=extra,
            generation=parse_generation(document.get(CLAUDE_CODE_GENERATION_KEY)),
        )
        return tokens, "claude_code"
    tokens = TokenSet(
        access_token=_string(document.get("access_token"), "access_token", required=True) or "",
        refresh_token=_string(document.get("refresh_token"), "refresh_token", required=False),
        expires_at=_number(document.get("token_expiry"), "token_expiry"),
        scopes=_scopes(document.get("scopes")),
        extra={
            key: document[key]
            for key in OURS_EXTRA_KEYS
            if isinstance(document.get(key), str) and document[key].strip()
        },
        generation=parse_generation(document.get(GENERATION_KEY)),
    )
    return tokens, "ours"


def put_generation(document: dict[str, Any], tokens: TokenSet, key: str = GENERATION_KEY) -> None:
    """Set ``tokens``' generation label under ``key``; a login without one drops the old label
    (a new login is not part of the old chain)."""
    document.pop(key, None)
    if tokens.generation is not None:
        document[key] = tokens.generation.as_json()


def render_token_document(
    tokens: TokenSet, shape: FileShape, previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write tokens in ``shape``, keeping every key of ``previous`` we do not own."""
    document: dict[str, Any] = dict(previous or {})
    label = CLAUDE_CODE_GENERATION_KEY if shape == "claude_code" else GENERATION_KEY
    put_generation(document, tokens, label)
    if shape == "claude_code":
        inner = document.get(CLAUDE_CODE_KEY)
        inner = dict(inner) if isinstance(inner, dict) else {}
        inner["accessToken"] = tokens.access_token
        for key in CLAUDE_CODE_LOGOUT_KEYS:  # a login again, as Claude Code's own save says
            inner.pop(key, None)
        if tokens.refresh_token is not None:
            inner["refreshToken"] = tokens.refresh_token
        if tokens.expires_at is not None:
            inner["expiresAt"] = int(tokens.expires_at * 1000)
        if tokens.scopes and "scopes" not in inner:
            inner["scopes"] = list(tokens.scopes)
        document[CLAUDE_CODE_KEY] = inner
        return document
    document["access_token"] = tokens.access_token
    document.pop("refresh_token", None)
    if tokens.refresh_token is not None:
        document["refresh_token"] = tokens.refresh_token
    if tokens.expires_at is not None:
        document["token_expiry"] = int(tokens.expires_at)
    if tokens.scopes:
        document["scopes"] = list(tokens.scopes)
    for key in OURS_EXTRA_KEYS:
        if isinstance(tokens.extra.get(key), str):
            document[key] = tokens.extra[key]
    return document


def json_kind(value: object) -> str:
    """What JSON calls a parsed JSON value's type (``object``, ``array``, …): no Python names."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if value is None:
        return "null"
    return type(value).__name__
