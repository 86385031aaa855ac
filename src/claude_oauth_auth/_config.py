"""Environment variables, default paths and defaults, read at call time (never cached)."""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_REFRESH_THRESHOLD",
    "DEFAULT_TOKEN_URL",
    "ENV",
    "claude_code_file",
    "default_auth_file",
    "env_value",
    "expand_path",
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
    """Claude Code's credentials file (``$CLAUDE_CONFIG_DIR`` or ``~/.claude``)."""
    config_dir = env_value(ENV.CONFIG_DIR)
    base = expand_path(config_dir) if config_dir else Path.home() / ".claude"
    return base / ".credentials.json"


def refresh_threshold(argument: float | None = None) -> float:
    """Seconds before expiry at which a token is refreshed."""
    if argument is not None:
        if argument < 0:
            raise ValueError("refresh_threshold must be zero or more seconds")
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
    """Refuse anything but https, except http to a loopback address."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return url
    raise ValueError(
        f"token URL {url!r} must use https:// (plain http:// is allowed only for loopback)"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
