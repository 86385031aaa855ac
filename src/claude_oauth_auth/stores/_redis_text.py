"""Secret-free words for RedisStore: where it points, and why a command failed.

redis-py's own messages may name the server or echo a URL, so none of them is shown.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .._errors import StoreError

__all__ = ["address_of", "address_of_url", "failure_reason", "refusal_reason", "unreachable_reason"]


def address_of_url(url: str, key: str) -> str:
    """``redis://host:port/db`` from a URL, leaving out user, password and query."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname or "localhost"
    if scheme not in ("redis", "rediss"):
        raise StoreError(
            f"{scheme or '?'}://{host} key={key}",
            "not a Redis URL",
            "use redis://[:password@]host[:port][/db], or rediss:// for TLS",
        )
    try:
        port = parts.port or 6379
    except ValueError:
        raise StoreError(
            f"{scheme}://{host} key={key}", "the Redis URL has an invalid port"
        ) from None
    db_text = (parse_qs(parts.query).get("db") or [unquote(parts.path).replace("/", "") or "0"])[0]
    try:
        db = int(db_text)
    except ValueError:
        raise StoreError(
            f"{scheme}://{host_port(host, port)} key={key}",
            "the Redis database in the URL must be a number",
        ) from None
    return f"{scheme}://{host_port(host, port)}/{db}"


def address_of(client: Any) -> str:
    """The same description for a ready client, from its connection pool's settings."""
    pool = getattr(client, "connection_pool", None)
    settings: dict[str, Any] = dict(getattr(pool, "connection_kwargs", None) or {})
    connection_class = getattr(pool, "connection_class", None)
    db = settings.get("db", 0)
    if settings.get("path"):
        return f"unix://{settings['path']}?db={db}"
    scheme = "rediss" if "SSL" in getattr(connection_class, "__name__", "") else "redis"
    host = str(settings.get("host", "localhost"))
    return f"{scheme}://{host_port(host, settings.get('port', 6379))}/{db}"


def host_port(host: str, port: object) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def unreachable_reason(error: BaseException) -> str:
    """A short cause for a connection failure, never redis-py's text (it names the server)."""
    name = type(error).__name__
    text = str(error).lower()
    if name in ("AuthenticationError", "AuthorizationError") or "auth" in text:
        return "authentication failed"
    if name == "BusyLoadingError":
        return "Redis is still loading its data"
    if "timeout" in name.lower() or "timed out" in text:
        return "timed out"
    if "refused" in text:
        return "connection refused"
    if any(
        word in text for word in ("name or service", "nodename", "getaddrinfo", "name resolution")
    ):
        return "host not found"
    if "ssl" in text or "certificate" in text:
        return "TLS handshake failed"
    if "closed" in text or "reset" in text:
        return "connection closed by the server"
    return "connection failed"


_CODE_OF_CLASS = {
    "NoPermissionError": "NOPERM",
    "ReadOnlyError": "READONLY",
    "OutOfMemoryError": "OOM",
}


def refusal_reason(error: BaseException, key: str) -> str:
    """What the server refused, from its error code only."""
    words = str(error).split()
    code = words[0] if words and words[0].isupper() else ""
    # redis-py strips the code off the errors it has a class for
    code = _CODE_OF_CLASS.get(type(error).__name__, code)
    reasons = {
        "NOAUTH": "Redis needs a password: put it in the URL",
        "WRONGPASS": "Redis refused the user name or password",
        "NOPERM": "the Redis user may not run this command or use this key",
        "WRONGTYPE": f"the Redis key {key} holds another kind of value",
        "READONLY": "the Redis server is a read-only replica",
        "OOM": "Redis is out of memory",
    }
    return reasons.get(code, f"Redis refused the command ({code or type(error).__name__})")


def failure_reason(error: BaseException, key: str) -> str:
    """Why a Redis command failed, in our words: refused by the server, or unreachable."""
    import redis.exceptions

    if isinstance(error, redis.exceptions.ResponseError):
        return refusal_reason(error, key)
    return unreachable_reason(error)
