"""Naming a store by URL (``CLAUDE_TOKEN_STORE``, ``save --store``): file, keyring, redis."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from .._errors import StoreError
from .._tokens import escape_control_characters, has_control_characters
from ._base import TokenStore

__all__ = ["SCHEMES", "redact_url", "store_from_url"]

SCHEMES = (
    "file:///PATH",
    "keyring:",
    "keyring://SERVICE/USERNAME[?backend=CLASS]",
    "redis://…",
    "rediss://…",
)
REDIS_KEY_OPTION = "key"
KEYRING_BACKEND_OPTION = "backend"


def redact_url(url: str) -> str:
    """The URL without a user name or password."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    return parts._replace(netloc=f"***@{host}").geturl()


def store_from_url(url: str) -> TokenStore:
    """The store a URL names: ``file:///abs/path``, ``keyring:``, ``keyring://SERVICE/USER``,
    ``redis://…`` or ``rediss://…`` (``?key=NAME`` picks the Redis key). Raises
    ``StoreError`` for anything else."""
    text = url.strip()
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise StoreError(redact_url(text), "a file store URL is file:///absolute/path")
        from ._file import FileStore

        return FileStore(Path(_decoded(parts.path, text)))
    if scheme == "keyring":
        from ._keyring import KeyringStore

        service = _decoded(parts.netloc, text) or "claude-oauth-auth"
        username = _decoded(parts.path.strip("/"), text) or "default"
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = sorted(set(options) - {KEYRING_BACKEND_OPTION})
        if unknown:
            reason = f"the URL option {unknown[0]!r} is not one a keyring store takes"
            raise StoreError(_shown(text), reason, "use ?backend=DOTTED.CLASS.NAME, or no option")
        return KeyringStore(service, username, backend=options.get(KEYRING_BACKEND_OPTION, ""))
    if scheme in ("redis", "rediss"):
        return _redis_store(text)
    raise StoreError(
        _shown(text) if text else "(empty)",
        "is not a store URL this library knows",
        f"use one of {', '.join(SCHEMES)}",
    )


def _shown(url: str) -> str:
    """The URL as messages show it: no credentials, control characters escaped."""
    return escape_control_characters(
        redact_url(url).encode("ascii", "backslashreplace").decode("ascii")
    )


def _decoded(part: str, url: str) -> str:
    """A %-decoded part of the URL; control characters in it are refused (they would reach
    messages and status rows as they are)."""
    value = unquote(part)
    if has_control_characters(value):
        raise StoreError(_shown(url), "holds control characters (decoded from %-escapes)")
    return value


def _redis_store(text: str) -> TokenStore:
    """``redis[s]://…[?key=NAME]``: ``key`` is ours (the hash's name), the rest is redis-py's."""
    from ._redis import RedisStore

    parts = urlsplit(text)
    options = parse_qsl(parts.query, keep_blank_values=True)
    keys = [value for name, value in options if name == REDIS_KEY_OPTION]
    if keys and not keys[-1]:
        raise StoreError(_shown(text), "the key= option of a Redis URL cannot be empty")
    rest = [(name, value) for name, value in options if name != REDIS_KEY_OPTION]
    url = parts._replace(query=urlencode(rest)).geturl()
    _check_redis_options(url, rest, _shown(text))
    return RedisStore(url=url, key=keys[-1]) if keys else RedisStore(url=text)


def _check_redis_options(url: str, options: list[tuple[str, str]], shown: str) -> None:
    """Refuse now what redis-py would refuse at the first command (an option it does not take,
    or a value it cannot read), naming the option. Without redis-py, the store says so later."""
    try:
        import redis
    except ImportError:
        return
    # A blank value is dropped by redis-py's parser: probe its name with a value.
    probe = urlsplit(url)._replace(query=urlencode([(n, v or "1") for n, v in options]))
    try:
        redis.ConnectionPool.from_url(probe.geturl()).make_connection()  # no I/O yet
    except TypeError as error:
        option = _option_named(error) or "?"
        reason = f"the URL option {option!r} is not one Redis takes"
        if option.lower() == REDIS_KEY_OPTION:
            reason += f" (the token hash is named by {REDIS_KEY_OPTION}=, in lower case)"
        elif option.startswith("ssl") and probe.scheme == "redis":
            reason += " on plain redis:// (TLS options need rediss://)"
        raise StoreError(shown, reason) from None
    except (ValueError, redis.RedisError) as error:
        named = _option_named(error)
        what = f"the URL option {named!r}" if named else f"a URL option ({error})"
        raise StoreError(shown, f"{what} has a value Redis cannot use") from None


def _option_named(error: Exception) -> str | None:
    """The option redis-py's message names (quoted one way or another)."""
    found = re.search(r"[`'\"](\w+)[`'\"]", str(error))
    return found.group(1) if found else None
