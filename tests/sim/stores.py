"""Stores behind fault-injecting wrappers, with their locks on virtual time.

A ``Backend`` is the shared place (one Redis key, one token file) with its fault windows and
lock; each actor reaches it through its own ``SimStore``, every call a yield point. The data
operations go to an ``inner`` store: the Redis-like ``ModelRedis`` here, or the real
``FileStore``/``RedisStore`` (``backends.py``). The lock is the backend's, on virtual time: a
Redis lease renewed every third of its length while its holder lives and the store answers,
or a file lock that the OS frees when its holder dies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from claude_oauth_auth._errors import StoreConflict, StoreError
from claude_oauth_auth._tokens import TokenSet
from claude_oauth_auth.stores._base import DEFAULT_LOCK_TIMEOUT, Version

from .scheduler import Killed, Scheduler

__all__ = ["Backend", "ModelRedis", "Owner", "SimRedisStore", "SimStore"]

SOCKET_TIMEOUT_SECONDS = 5.0  # RedisStore's socket_timeout: a call to a stalled Redis fails
KEPT_EXTRAS = ("client_id", "token_url")


class Owner(Protocol):
    """Who uses a store: a worker or a foreign program."""

    name: str
    dead: bool
    died_at: float
    fault_hit: bool


class Inner(Protocol):
    def version(self) -> Version: ...

    def load(self) -> TokenSet | None: ...

    def save(self, tokens: TokenSet, *, expected_version: Version) -> None: ...

    def delete(self) -> None: ...


@dataclass(eq=False)
class Lease:
    holder: SimStore
    tick: float  # the renewer's last tick
    expires_at: float
    hold_until: float = 0.0  # ``extend_lock``: the renewer keeps it at least this long


class Backend:
    """The shared store: fault windows, the lock, the history the snapshots come from."""

    kind = "abstract"
    times_out = True  # a stalled call fails after SOCKET_TIMEOUT_SECONDS (Redis), else hangs
    roll_back_drops_lock = True  # a restarted Redis forgets its lease; a restored file's lock stays
    location = "sim"

    def __init__(self, sched: Scheduler, lease_seconds: float) -> None:
        self.sched = sched
        self.lease_seconds = lease_seconds
        self.lease: Lease | None = None
        self.stalls: list[tuple[float, float]] = []
        self.unwritable: list[tuple[float, float]] = []
        self.history: list[tuple[float, Any]] = []
        self._peeked: tuple[str | None] | None = None

    # ----- what every subclass provides --------------------------------------------------------

    def inner_for(self, owner: Owner) -> Inner:
        raise NotImplementedError

    def snapshot(self) -> Any:
        raise NotImplementedError

    def put_back(self, snapshot: Any) -> None:
        """Make the store hold ``snapshot`` again (a restore from backup: no mark)."""
        raise NotImplementedError

    def wipe(self) -> None:
        raise NotImplementedError

    def read_refresh_token(self) -> str | None:  # what the store holds, for the invariants
        raise NotImplementedError

    def lease_gone(self) -> None: ...  # the lease ran out or was lost (Redis drops its key)

    def close(self) -> None: ...

    def first_login(self, tokens: TokenSet) -> None:  # the login the run starts with
        raise NotImplementedError

    # ----- what the invariants look at ----------------------------------------------------------

    def peek(self) -> str | None:
        """The refresh token the store holds now (cached until the next write)."""
        if self._peeked is None:
            self._peeked = (self.read_refresh_token(),)
        return self._peeked[0]

    def changed(self) -> None:
        self._peeked = None
        self.history.append((self.sched.now, self.snapshot()))

    # ----- faults -----------------------------------------------------------------------------

    def stalled(self, when: float) -> bool:
        return any(start <= when < end for start, end in self.stalls)

    def stall_end(self, when: float) -> float:
        return max([end for start, end in self.stalls if start <= when < end], default=when)

    def refuses_writes(self) -> bool:
        now = self.sched.now
        return any(start <= now < end for start, end in self.unwritable)

    def flush(self) -> None:
        self.wipe()
        self.drop_lease()
        self.changed()

    def roll_back(self, age: float) -> None:
        """Restart from the newest snapshot at least ``age`` seconds old."""
        cutoff = self.sched.now - age
        older = [snapshot for when, snapshot in self.history if when <= cutoff]
        if older:
            self.put_back(older[-1])
        if self.roll_back_drops_lock:
            self.drop_lease()
        self.changed()

    def drop_lease(self) -> None:
        if self.lease is not None:
            self.lease = None
            self.lease_gone()

    def holder_died(self, owner: Owner) -> None:
        """A file lock dies with its holder; a lease runs out on its own."""

    # ----- the lock ---------------------------------------------------------------------------

    def _renew(self) -> None:
        lease = self.lease
        if lease is None:
            return
        period = self.lease_seconds / 3
        now = self.sched.now
        while lease.tick + period <= now and lease.tick + period < lease.expires_at:
            lease.tick += period
            holder = lease.holder.owner
            if holder.died_at > lease.tick and not self.stalled(lease.tick):
                lease.expires_at = max(lease.tick + self.lease_seconds, lease.hold_until)
        if now >= lease.expires_at:
            self.drop_lease()

    def lock_free(self) -> bool:
        self._renew()
        return self.lease is None

    def lock_wake(self) -> float:
        self._renew()
        return self.sched.now if self.lease is None else self.lease.expires_at

    def holder(self) -> SimStore | None:
        self._renew()
        return None if self.lease is None else self.lease.holder

    def take(self, store: SimStore) -> bool:
        if not self.lock_free():
            return False
        now = self.sched.now
        self.lease = Lease(store, now, now + self.lease_seconds)
        return True

    def give_back(self, store: SimStore) -> None:
        if self.holder() is store:
            self.lease = None


class SimStore:
    """One actor's view of a backend: the store protocol, a yield point in every call."""

    poll_interval: float | None = 1.0

    def __init__(self, backend: Backend, owner: Owner) -> None:
        self.backend = backend
        self.owner = owner
        self.sched = backend.sched
        self.inner = backend.inner_for(owner)
        self.holding = False
        self.read_under_lock: TokenSet | None = None

    def __repr__(self) -> str:
        return f"SimStore({self.backend.kind}, {self.owner.name})"

    @property
    def location(self) -> str:
        return self.backend.location

    @property
    def writable(self) -> bool:
        return not self.backend.refuses_writes()

    def why_not_writable(self) -> str:
        return "the store refuses writes (simulated)" if self.backend.refuses_writes() else ""

    def version(self) -> Version:
        self._call("version")
        return self.inner.version()

    def load(self) -> TokenSet | None:
        self._call("load")
        tokens = self.inner.load()
        if self.holding:
            self.read_under_lock = tokens
        return tokens

    def save(self, tokens: TokenSet, *, expected_version: Version) -> None:
        self._call("save")
        self._refuse_writes()
        try:
            self.inner.save(tokens, expected_version=expected_version)
        finally:
            self.backend.changed()

    def delete(self) -> None:
        self._call("delete")
        self._refuse_writes()
        self.inner.delete()
        self.backend.changed()

    def lock(
        self, timeout: float = DEFAULT_LOCK_TIMEOUT
    ) -> contextlib.AbstractContextManager[None]:
        self._call("lock")
        return self.virtual_lock(timeout)

    @contextlib.contextmanager
    def virtual_lock(self, timeout: float) -> Iterator[None]:
        """The backend's lock on virtual time (a Redis lease, a file lock the OS frees)."""
        backend, sched = self.backend, self.sched
        deadline = sched.now + timeout
        while not self._take():
            if sched.now >= deadline:
                raise StoreError(
                    self.location, f"another worker holds the refresh lease (waited {timeout:g} s)"
                )
            sched.wait(backend.lock_free, min(deadline, backend.lock_wake()), "lock wait")
            self._through_stall()
        self.holding, self.read_under_lock = True, None
        try:
            yield
        finally:
            self.holding = False
            if not self.owner.dead and not sched.closed:
                self._release()

    # ----- the faults -------------------------------------------------------------------------

    def _call(self, operation: str) -> None:
        if self.sched.closed and threading.current_thread() is threading.main_thread():
            raise StoreError(self.location, "the simulation is over")  # an exit hook, later
        if self.owner.dead or self.sched.closed:
            raise Killed
        self.sched.pause(f"store.{operation}")
        self._through_stall()

    def _through_stall(self) -> None:
        backend, sched = self.backend, self.sched
        started = sched.now
        while backend.stalled(sched.now):
            if not backend.times_out:
                sched.sleep(backend.stall_end(sched.now) - sched.now, "store stalled")
                continue
            give_up = started + SOCKET_TIMEOUT_SECONDS
            if backend.stall_end(sched.now) > give_up:
                sched.sleep(give_up - sched.now, "store stalled")
                self.owner.fault_hit = True
                raise StoreError(self.location, "cannot reach Redis (timed out)", "simulated stall")
            sched.sleep(backend.stall_end(sched.now) - sched.now, "store stalled")

    def _refuse_writes(self) -> None:
        if self.backend.refuses_writes():
            self.owner.fault_hit = True
            raise StoreError(self.location, "the store refuses writes (simulated)")

    def _take(self) -> bool:
        return self.backend.take(self)

    def _release(self) -> None:
        try:
            self._call("unlock")
        except StoreError:
            return  # unreachable: the lease runs out on its own
        self.backend.give_back(self)


class SimRedisStore(SimStore):
    """Like ``RedisStore``: never polled, ``restore``/``may_restore``/``holds_lock``."""

    poll_interval: float | None = None

    def restore(self, tokens: TokenSet, *, version: Version) -> None:
        self._call("restore")
        self._refuse_writes()
        restore = getattr(self.inner, "restore")  # noqa: B009  (every Redis inner has it)
        try:
            restore(tokens, version=version)
        finally:
            self.backend.changed()

    def may_restore(self) -> bool:
        self._call("may_restore")
        may: bool = getattr(self.inner, "may_restore")()  # noqa: B009
        return may

    def holds_lock(self) -> bool:
        self._call("holds_lock")
        return self.backend.holder() is self

    def extend_lock(self, seconds: float) -> bool:
        """Like ``RedisStore.extend_lock``: the lease lasts ``seconds`` more, if still ours."""
        self._call("extend_lock")
        lease = self.backend.lease if self.backend.holder() is self else None
        if lease is None:
            return False
        until = self.sched.now + max(seconds, self.backend.lease_seconds)
        lease.hold_until, lease.expires_at = until, max(lease.expires_at, until)
        return True


class ModelRedis(Backend):
    """An in-memory store with ``RedisStore``'s semantics (its Lua scripts, in Python)."""

    kind = "model-redis"
    location = "redis://model/0 key=sim"

    def __init__(self, sched: Scheduler, lease_seconds: float) -> None:
        super().__init__(sched, lease_seconds)
        self.tokens: TokenSet | None = None
        self.ver: int | None = None
        self.restored = False
        self.deleted = False

    def inner_for(self, owner: Owner) -> ModelRedis:
        return self

    def snapshot(self) -> tuple[TokenSet | None, int | None]:
        return self.tokens, self.ver

    def put_back(self, snapshot: Any) -> None:
        self.tokens, self.ver = snapshot
        self.restored = self.deleted = False

    def wipe(self) -> None:
        self.tokens, self.ver = None, None
        self.restored = self.deleted = False

    def read_refresh_token(self) -> str | None:
        return None if self.tokens is None else self.tokens.refresh_token

    # ----- RedisStore's operations -------------------------------------------------------------

    def version(self) -> Version:
        return self.ver

    def load(self) -> TokenSet | None:
        if self.tokens is None or not self.restored:
            return self.tokens
        return dataclasses.replace(self.tokens, extra={**self.tokens.extra, "restored": True})

    def save(self, tokens: TokenSet, *, expected_version: Version) -> None:
        expected = expected_version
        if expected is None and self.ver is not None:
            raise StoreConflict(self.location)
        if expected is not None and (not _is_version(expected) or expected != self.ver):
            raise StoreConflict(self.location)
        self.ver = self.ver + 1 if self.ver is not None else int(self.sched.now * 1e6)
        self.tokens = _kept(tokens)
        self.restored = self.deleted = False

    def restore(self, tokens: TokenSet, *, version: Version) -> None:
        if not _is_version(version):
            raise StoreConflict(self.location, "the version is not one of this store's")
        assert isinstance(version, int)
        if self.deleted:
            raise StoreConflict(self.location, "the login was deleted")
        if self.ver is not None and self.ver >= version:
            raise StoreConflict(self.location, "it holds the same or a newer login")
        self.tokens, self.ver, self.restored = _kept(tokens), version, True

    def delete(self) -> None:
        self.wipe()
        self.deleted = True

    def may_restore(self) -> bool:
        return self.tokens is None and self.ver is None and not self.deleted

    def first_login(self, tokens: TokenSet) -> None:
        self.save(tokens, expected_version=None)
        self.changed()


def _is_version(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kept(tokens: TokenSet) -> TokenSet:
    extra = {k: tokens.extra[k] for k in KEPT_EXTRAS if isinstance(tokens.extra.get(k), str)}
    return dataclasses.replace(tokens, extra=extra)
