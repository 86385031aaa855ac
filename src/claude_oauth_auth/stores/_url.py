"""Naming a store by URL (``CLAUDE_TOKEN_STORE``, ``save --store``): file, keyring, redis."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from .._errors import StoreError
from ._base import TokenStore

__all__ = ["SCHEMES", "redact_url", "store_from_url"]

SCHEMES = ("file:///PATH", "keyring:", "keyring://SERVICE/USERNAME", "redis://…", "rediss://…")
REDIS_KEY_OPTION = "key"


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

        return FileStore(Path(unquote(parts.path)))
    if scheme == "keyring":
        from ._keyring import KeyringStore

        service = unquote(parts.netloc) or "claude-oauth-auth"
        username = unquote(parts.path.strip("/")) or "default"
        return KeyringStore(service, username)
    if scheme in ("redis", "rediss"):
        return _redis_store(text)
    raise StoreError(
        redact_url(text) if text else "(empty)",
        "is not a store URL this library knows",
        f"use one of {', '.join(SCHEMES)}",
    )


def _redis_store(text: str) -> TokenStore:
    """``redis[s]://…[?key=NAME]``: ``key`` is ours (the hash's name), the rest is redis-py's."""
    from ._redis import RedisStore

    parts = urlsplit(text)
    options = parse_qsl(parts.query, keep_blank_values=True)
    keys = [value for name, value in options if name == REDIS_KEY_OPTION]
    if not keys:
        return RedisStore(url=text)
    if not keys[-1]:
        raise StoreError(redact_url(text), "the key= option of a Redis URL cannot be empty")
    rest = urlencode([(name, value) for name, value in options if name != REDIS_KEY_OPTION])
    return RedisStore(url=parts._replace(query=rest).geturl(), key=keys[-1])
