"""RedisStore: one token set shared by a fleet of workers, refreshed by exactly one of them.

The tokens live in one Redis hash: ``tokens`` (our JSON shape) and ``version`` (an integer
bumped by every save); ``delete()`` leaves only a ``deleted`` mark, so a logout is told apart
from lost data. After lost data, ``restore()`` writes a login back under the version it had,
so the newest login any worker holds wins. A save is one Lua script, so the compare-and-set
is atomic on the server.
The lock is a Redis lease (``<key>:lock``) that a daemon thread renews while it is held, so
it outlives a slow refresh; a holder that dies frees it when the lease runs out.

``redis`` is imported on first use, never when this module is imported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .. import _clock
from .._errors import StoreConflict, StoreError
from .._install import install_hint
from .._tokens import TokenFormatError, TokenSet, parse_token_document, render_token_document
from ._base import DEFAULT_LOCK_TIMEOUT, Version
from ._redis_lease import LeaseRenewer
from ._redis_scripts import DELETE_SCRIPT, PERMISSIONS_SCRIPT, RESTORE_SCRIPT, SAVE_SCRIPT
from ._redis_text import (
    address_of,
    address_of_url,
    failure_reason,
    refusal_reason,
    unreachable_reason,
)

if TYPE_CHECKING:
    import redis
    from redis.lock import Lock

__all__ = ["RedisStore"]

log = logging.getLogger("claude_oauth_auth")

DEFAULT_KEY = "claude-oauth-auth:default"
_REACH_FIX = "check that Redis is running and CLAUDE_TOKEN_STORE is right"
_KEPT_EXTRAS = ("client_id", "token_url")
TIMEOUT_PAUSE_SECONDS = 1.0
"""After a command timed out, fail at once for this long instead of waiting out another
timeout: threads queued behind a hung Redis get their error quickly, one at a time."""


class RedisStore:
    """Tokens in a Redis hash, shared by every worker that points at the same ``key``.

    Pass ``url`` (``redis://[[user]:password@]host[:port][/db]``, or ``rediss://`` for TLS)
    or a ready ``client``. ``lease_seconds`` is how long a dead lock holder can block the
    others; a live holder renews its lease every ``lease_seconds / 3``.
    """

    poll_interval: float | None = None
    """Never poll a fresh token's store: every writer takes the lock, so nothing changes
    under a worker whose token is still fresh, and a request then costs no Redis command."""

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        key: str = DEFAULT_KEY,
        lease_seconds: float = 90.0,
    ) -> None:
        """Tokens under ``key`` in the Redis at ``url`` (``redis://``/``rediss://``), or on a
        ``client`` you built (Sentinel, Cluster, TLS). ``lease_seconds`` is how long a refresh
        lease lasts if its holder dies; it is renewed while the holder works. Needs the
        ``[redis]`` extra.
        """
        if (url is None) == (client is None):
            raise TypeError("RedisStore needs exactly one of url= or client=")
        if not isinstance(key, str) or not key:
            raise ValueError("RedisStore key must be a non-empty string")
        if not lease_seconds > 0:
            raise ValueError("RedisStore lease_seconds must be positive")
        self.key = key
        self.lease_seconds = float(lease_seconds)
        self._url = url
        self._client = client
        self._address = address_of_url(url, key) if url is not None else address_of(client)
        self._setup = threading.Lock()
        self._scripts: dict[str, Any] = {}
        self._leases: dict[int, Lock] = {}
        self._renewers: dict[int, LeaseRenewer] = {}
        self._timed_out_until = 0.0

    def __repr__(self) -> str:
        return f"RedisStore({self.location!r})"

    @property
    def location(self) -> str:
        return f"{self._address} key={self.key}"

    # ----- the protocol -------------------------------------------------------------------

    def version(self) -> Version:
        raw = self._field("version")
        if raw is None:
            return None
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise StoreError(
                self.location, "the stored version is not an integer", self._reset_fix()
            ) from None

    def load(self) -> TokenSet | None:
        """The stored tokens; ``extra["restored"]`` is True while they are a login a worker
        wrote back after lost data (until the next save), which may be older than another's."""
        client = self._redis()
        with self._translate():
            reads = client.pipeline(transaction=False)
            reads.hget(self.key, "tokens")
            reads.hget(self.key, "restored")
            raw, restored = reads.execute()
        if raw is None:
            return None
        try:
            tokens, _shape = parse_token_document(json.loads(raw))
        except (TokenFormatError, ValueError) as error:
            reason = str(error) if isinstance(error, TokenFormatError) else "not valid JSON"
            raise StoreError(
                self.location, f"the stored tokens are unusable: {reason}", self._reset_fix()
            ) from None
        if restored is not None:
            tokens = dataclasses.replace(tokens, extra={**tokens.extra, "restored": True})
        return tokens

    def save(self, tokens: TokenSet, *, expected_version: Version) -> None:
        if expected_version is None:
            expected = ""
        elif _is_version(expected_version):
            expected = str(expected_version)
        else:
            raise StoreConflict(self.location, "the expected version is not one of this store's")
        written = self._run(SAVE_SCRIPT, expected, self._document(tokens))
        if not written:
            raise StoreConflict(self.location)

    def restore(self, tokens: TokenSet, *, version: Version) -> None:
        """Write back a login held in memory, under the ``version`` it had, after Redis lost
        its data; StoreConflict when the store holds that version or a newer one (so the
        newest login a worker holds wins), or the login was deleted on purpose."""
        if not _is_version(version):
            raise StoreConflict(self.location, "the version is not one of this store's")
        written = self._run(RESTORE_SCRIPT, str(version), self._document(tokens))
        if written == -1:
            raise StoreConflict(self.location, "the login was deleted")
        if not written:
            raise StoreConflict(self.location, "it holds the same or a newer login")

    @contextlib.contextmanager
    def lock(self, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[None]:
        """Hold the refresh lease ``<key>:lock``; StoreError when another worker keeps it."""
        client = self._redis()
        lease = client.lock(
            f"{self.key}:lock",
            timeout=self.lease_seconds,
            blocking_timeout=max(float(timeout), 0.0),
            thread_local=False,
        )
        with self._translate():
            acquired = lease.acquire()
        if not acquired:
            raise StoreError(
                self.location,
                f"another worker holds the refresh lease (waited {timeout:g} s)",
                "it is released when that worker's refresh ends, "
                f"or within {self.lease_seconds:g} s if that worker died",
            )
        renewer = LeaseRenewer(lease, self.lease_seconds, self.location, self.key)
        renewer.start()
        holder = threading.get_ident()
        self._leases[holder] = lease
        self._renewers[holder] = renewer
        try:
            yield
        finally:
            self._leases.pop(holder, None)
            self._renewers.pop(holder, None)
            renewer.stop()
            self._release(lease)

    @property
    def writable(self) -> bool:
        """False when the Redis user may not run a command a save or the lease needs (checked
        in one round trip, without writing); an unreachable Redis reports itself later."""
        return not self.why_not_writable()

    def why_not_writable(self) -> str:
        """The command the Redis user may not run (what ``status`` shows), or an empty string."""
        exceptions = self._import_redis().exceptions
        client = self._redis()
        keys = [self.key, f"{self.key}:lock"]
        try:
            refused = client.register_script(PERMISSIONS_SCRIPT)(keys=keys)
        except exceptions.NoPermissionError:
            return "the Redis user may not run scripts (EVALSHA, SCRIPT LOAD), which saves use"
        except (exceptions.RedisError, OSError):
            return ""  # unreachable, or another failure: the save itself reports it
        if isinstance(refused, bytes):
            refused = refused.decode("ascii", "replace")
        if not refused:
            return ""
        return f"the Redis user may not run {refused} on {self.key}, which saves or the lease use"

    def extend_lock(self, seconds: float) -> bool:
        """Make this thread's lease last at least ``seconds`` from now (a refresh POST's
        timeout), and say whether it is still ours: False when a stall or a flush let it run
        out. One command; the renewer keeps it at least that long until then."""
        holder = threading.get_ident()
        lease, renewer = self._leases.get(holder), self._renewers.get(holder)
        if lease is None or renewer is None:
            return False
        exceptions = self._import_redis().exceptions
        ttl = max(seconds, self.lease_seconds)
        with self._translate():
            try:
                lease.extend(ttl, replace_ttl=True)
            except exceptions.LockError:
                return False
        renewer.hold_for(ttl)
        return True

    def holds_lock(self) -> bool:
        """True while this thread's lease is still ours in Redis (one command). A flush or a
        lease that ran out frees it while held: the caller takes it again before spending."""
        lease = self._leases.get(threading.get_ident())
        if lease is None:
            return False
        with self._translate():
            return bool(lease.owned())

    def delete(self) -> None:
        """Remove the login, marking it deleted on purpose (see ``may_restore``)."""
        client = self._redis()
        with self._translate():
            client.eval(DELETE_SCRIPT, 1, self.key)

    def may_restore(self) -> bool:
        """True when the key is gone without a ``delete()`` (FLUSHALL, a restart without
        persistence): a worker that still holds the login may write it back."""
        client = self._redis()
        with self._translate():
            return not client.exists(self.key)

    # ----- Redis --------------------------------------------------------------------------

    def _redis(self) -> redis.Redis:
        """The client, built (and ``redis`` imported) on first use."""
        if self._client is None:
            with self._setup:
                if self._client is None:
                    module = self._import_redis()
                    assert self._url is not None
                    with self._translate():
                        self._client = module.Redis.from_url(
                            self._url, socket_connect_timeout=2, socket_timeout=5
                        )
        return self._client

    def _field(self, name: str) -> Any:
        """One field of the token hash (``None`` when absent), read with errors translated."""
        client = self._redis()
        with self._translate():
            return client.hget(self.key, name)

    def _run(self, source: str, *args: str) -> Any:
        """Run one of our Lua scripts on the token hash (registered once, sent by digest)."""
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self._redis().register_script(source)
        with self._translate():
            return script(keys=[self.key], args=list(args))

    @staticmethod
    def _document(tokens: TokenSet) -> str:
        kept = {
            name: tokens.extra[name]
            for name in _KEPT_EXTRAS
            if isinstance(tokens.extra.get(name), str)
        }
        return json.dumps(render_token_document(tokens, "ours", kept))

    def _import_redis(self) -> ModuleType:
        try:
            import redis
        except ImportError:
            raise StoreError(
                self.location, "the redis library is not installed", install_hint("redis")
            ) from None
        return redis

    @contextlib.contextmanager
    def _translate(self) -> Iterator[None]:
        """Turn redis-py's errors (whose text may name the server) into our own messages."""
        exceptions = self._import_redis().exceptions
        if _clock.monotonic() < self._timed_out_until:
            raise StoreError(
                self.location, "cannot reach Redis (timed out a moment ago)", _REACH_FIX
            )
        try:
            yield
        except (exceptions.ConnectionError, exceptions.TimeoutError, OSError) as error:
            reason = unreachable_reason(error)
            if reason == "timed out":
                self._timed_out_until = _clock.monotonic() + TIMEOUT_PAUSE_SECONDS
            raise StoreError(self.location, f"cannot reach Redis ({reason})", _REACH_FIX) from None
        except exceptions.ResponseError as error:
            raise StoreError(self.location, refusal_reason(error, self.key), _REACH_FIX) from None
        except exceptions.RedisError as error:
            raise StoreError(
                self.location, f"Redis failed ({type(error).__name__})", _REACH_FIX
            ) from None
        except ValueError:  # from_url on a malformed query argument
            raise StoreError(
                self.location, "the Redis URL has an invalid option", _REACH_FIX
            ) from None

    def _release(self, lease: Lock) -> None:
        exceptions = self._import_redis().exceptions
        try:
            lease.release()
        except exceptions.LockError:
            log.warning(
                "%s: the refresh lease was gone before it was released (it ran out, or "
                "Redis lost its data); another worker may have taken it meanwhile",
                self.location,
            )
        except (exceptions.RedisError, OSError) as error:
            log.warning(
                "%s: could not release the refresh lease (%s); it frees itself within %g s",
                self.location,
                failure_reason(error, self.key),
                self.lease_seconds,
            )

    def _reset_fix(self) -> str:
        return f"log in again to overwrite it, or delete the Redis key {self.key}"


def _is_version(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
