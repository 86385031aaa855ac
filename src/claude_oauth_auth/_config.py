"""Environment variables, default paths and defaults, read at call time (never cached)."""

from __future__ import annotations

import ipaddress
import os
import sys
import unicodedata
from pathlib import Path
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_REFRESH_THRESHOLD",
    "DEFAULT_TOKEN_URL",
    "ENV",
    "claude_code_file",
    "claude_code_keychain_suffix_source",
    "default_auth_file",
    "env_value",
    "expand_path",
    "redact_url",
    "refresh_threshold",
    "validate_token_url",
]

DEFAULT_TOKEN_URL = "https://platform.claude.com/v1/oauth/token"
DEFAULT_CLIENT_ID = "9d1c250a-e61b-44d9-88ed-5944d1962f5e"  # Claude Code's public client
DEFAULT_REFRESH_THRESHOLD = 300.0


class ENV:
    """Names of every environment variable the library reads."""

    AUTH_FILE = "CLAUDE_AUTH_FILE"
    TOKEN_STORE = "CLAUDE_TOKEN_STORE"
    CONFIG_DIR = "CLAUDE_CONFIG_DIR"
    SECURE_STORAGE_DIR = "CLAUDE_SECURESTORAGE_CONFIG_DIR"  # where Claude Code keeps its login
    CODE_OAUTH_TOKEN = "CLAUDE_CODE_OAUTH_TOKEN"
    AUTH_TOKEN = "ANTHROPIC_AUTH_TOKEN"
    API_KEY = "ANTHROPIC_API_KEY"
    REFRESH_THRESHOLD = "CLAUDE_TOKEN_REFRESH_THRESHOLD"
    TOKEN_URL = "CLAUDE_OAUTH_TOKEN_URL"
    CLIENT_ID = "CLAUDE_OAUTH_CLIENT_ID"
    # The SDK's own configuration (SDK profiles and workload identity)
    BASE_URL = "ANTHROPIC_BASE_URL"
    PROFILE = "ANTHROPIC_PROFILE"
    SDK_CONFIG_DIR = "ANTHROPIC_CONFIG_DIR"
    FEDERATION_RULE_ID = "ANTHROPIC_FEDERATION_RULE_ID"
    ORGANIZATION_ID = "ANTHROPIC_ORGANIZATION_ID"
    IDENTITY_TOKEN = "ANTHROPIC_IDENTITY_TOKEN"
    IDENTITY_TOKEN_FILE = "ANTHROPIC_IDENTITY_TOKEN_FILE"
    SERVICE_ACCOUNT_ID = "ANTHROPIC_SERVICE_ACCOUNT_ID"
    WORKSPACE_ID = "ANTHROPIC_WORKSPACE_ID"
    SCOPE = "ANTHROPIC_SCOPE"


def env_value(name: str) -> str | None:
    """The stripped value of an environment variable; None when unset, empty or blank."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def expand_path(raw: str | os.PathLike[str]) -> Path:
    """``~`` expanded; a ``~user`` naming no user is left as written (it then does not exist)."""
    path = Path(raw)
    try:
        return path.expanduser()
    except RuntimeError:
        return path


def default_auth_file() -> Path:
    """``~/.config/claude/auth.json``, or ``%APPDATA%\\claude\\auth.json`` on Windows."""
    if sys.platform == "win32":
        appdata = env_value("APPDATA")
        base = Path(appdata) if appdata else Path.home() / "AppData" / "Roaming"
        return base / "claude" / "auth.json"
    return Path.home() / ".config" / "claude" / "auth.json"


def claude_code_file() -> Path:
    """Claude Code's credentials file, in ``$CLAUDE_SECURESTORAGE_CONFIG_DIR`` when that is set
    (set but empty: ``~/.claude``), else ``$CLAUDE_CONFIG_DIR``, else ``~/.claude``."""
    secure = os.environ.get(ENV.SECURE_STORAGE_DIR)
    config_dir = env_value(ENV.CONFIG_DIR) if secure is None else secure.strip()
    base = expand_path(config_dir) if config_dir else Path.home() / ".claude"
    return base / ".credentials.json"


def claude_code_keychain_suffix_source() -> str | None:
    """What Claude Code hashes into its Keychain item's name (``Claude Code-credentials-<first
    8 hex of sha256>``): ``$CLAUDE_SECURESTORAGE_CONFIG_DIR`` when set, else
    ``$CLAUDE_CONFIG_DIR``; None when the item has no suffix."""
    secure = os.environ.get(ENV.SECURE_STORAGE_DIR)
    chosen = os.environ.get(ENV.CONFIG_DIR) if secure is None else secure
    return unicodedata.normalize("NFC", chosen) if chosen else None


def refresh_threshold(argument: float | None = None) -> float:
    """Seconds before expiry at which a token is refreshed."""
    if argument is not None:
        if isinstance(argument, bool) or not isinstance(argument, (int, float)):
            raise ValueError("refresh_threshold must be a number of seconds")
        if not 0 <= argument < float("inf"):
            raise ValueError("refresh_threshold must be zero or more seconds (and finite)")
        return float(argument)
    raw = env_value(ENV.REFRESH_THRESHOLD)
    if raw is None:
        return DEFAULT_REFRESH_THRESHOLD
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(
            f"{ENV.REFRESH_THRESHOLD} must be a number of seconds, got {raw[:20]!r}"
        ) from None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{ENV.REFRESH_THRESHOLD} must be a finite number of seconds >= 0")
    return value


def validate_token_url(url: str) -> str:
    """Refuse anything but https (http only to loopback), and URLs carrying credentials."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a malformed port)
    except ValueError:
        raise ValueError(f"token URL {redact_url(url)!r} is not a valid URL") from None
    if "@" in parts.netloc:
        raise ValueError(
            f"token URL {redact_url(url)!r} must not contain a user name or password "
            "(user:password@); the refresh token is the only credential it is sent"
        )
    if any(ord(character) < 0x21 or ord(character) == 0x7F for character in url):
        raise ValueError(f"token URL {redact_url(url)!r} contains spaces or control characters")
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return url
    if not parts.scheme or not parts.hostname:  # not a URL at all: maybe a pasted token
        raise ValueError(
            f"the token URL is not a URL ({len(url)} characters, not shown); it must be "
            "https://host/path (plain http:// is allowed only for loopback)"
        )
    raise ValueError(
        f"token URL {redact_url(url)!r} must use https:// "
        "(plain http:// is allowed only for loopback)"
    )


def redact_url(url: str) -> str:
    """``url`` without any ``user:password@`` part (and cut short), safe to show."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        scheme, rest = "", url
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    shown = (f"{scheme}://" if separator else "") + authority + slash + path
    shown = "".join(character if character.isprintable() else "?" for character in shown)
    return shown if len(shown) <= 200 else shown[:200] + "..."


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
