"""The real store classes inside the simulation: ``FileStore`` in a temp folder, ``RedisStore``
on a real redis-server. Only the lock (and the faults) are the simulation's.

``FileStore``'s version is the file's (inode, mtime_ns, size): thousands of simulated saves
fall in one real millisecond, where that signature can repeat (a reused inode, the same
size), so the wrapper numbers the file's writes instead and passes the real signature down
for the real compare-and-set. Everything else (parsing, rendering, atomic writes, the shared
backoff state beside the file) is the real code on the real file.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from claude_oauth_auth._errors import StoreConflict
from claude_oauth_auth._tokens import TokenSet, parse_token_document
from claude_oauth_auth.stores._base import Version
from claude_oauth_auth.stores._file import FileStore
from claude_oauth_auth.stores._files import file_signature
from claude_oauth_auth.stores._redis import RedisStore

from .scheduler import Scheduler
from .stores import Backend, Owner, SimRedisStore, SimStore

__all__ = ["FileBackend", "RealRedis", "RecoversSaves", "SimFileStore", "SimRealRedisStore"]

REAL_LEASE_SECONDS = 3600.0  # the real lease never runs out in real time: virtual time decides


class FileBackend(Backend):
    """A real token file; the lock is a file lock on virtual time, freed when its holder dies."""

    kind = "file"
    times_out = False
    roll_back_drops_lock = False  # a backup restored over the file leaves its lock alone

    def __init__(self, sched: Scheduler, folder: Path) -> None:
        super().__init__(sched, float("inf"))
        self.path = folder / "auth.json"
        self.location = str(self.path)
        self.generation = 0
        self._reader = FileStore(self.path)

    def inner_for(self, owner: Owner) -> _NumberedFile:
        return _NumberedFile(self)

    def snapshot(self) -> Any:
        """The file's bytes (a backup of it), or None when there is no file."""
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def put_back(self, snapshot: Any) -> None:
        """A backup restored over the file, as a copy tool writes it (without our lock)."""
        if snapshot is None:
            return
        temp = self.path.with_name(f".{self.path.name}.restore.tmp")
        temp.write_bytes(snapshot)
        os.chmod(temp, 0o600)
        os.replace(temp, self.path)
        self.generation += 1

    def wipe(self) -> None:
        raise NotImplementedError("a file store is not flushed (that is a logout)")

    def read_refresh_token(self) -> str | None:
        try:
            tokens = self._reader.load()
        except Exception:  # unreadable: it holds no login
            return None
        return None if tokens is None else tokens.refresh_token

    def holder_died(self, owner: Owner) -> None:
        lease = self.lease
        if lease is not None and lease.holder.owner is owner:
            self.lease = None  # the OS frees a dead process's file lock

    def first_login(self, tokens: TokenSet) -> None:
        FileStore(self.path).save(tokens, expected_version=None)
        self.generation += 1
        self.changed()


class _NumberedFile:
    """The real ``FileStore``, its version numbered by the backend."""

    def __init__(self, backend: FileBackend) -> None:
        self.backend = backend
        self.real = FileStore(backend.path)

    def version(self) -> Version:
        return self.backend.generation if self.real.path.exists() else None

    def load(self) -> TokenSet | None:
        return self.real.load()

    def save(self, tokens: TokenSet, *, expected_version: Version) -> None:
        if expected_version != self.version():
            raise StoreConflict(self.real.location)
        self.real.save(tokens, expected_version=file_signature(self.real.path))
        self.backend.generation += 1

    def delete(self) -> None:
        self.real.delete()
        self.backend.generation += 1

    def recover_interrupted_save(self) -> bool:
        recovered = self.real.recover_interrupted_save()
        if recovered:
            self.backend.generation += 1
        return recovered


class RecoversSaves(SimStore):
    """A wrapper of a real token file: a save of ours a kill left unfinished is recovered by the
    real code, and is a change of the store."""

    def recover_interrupted_save(self) -> bool:
        self._call("recover_interrupted_save")
        recover: Callable[[], bool] = getattr(self.inner, "recover_interrupted_save")  # noqa: B009
        recovered = recover()
        if recovered:
            self.backend.changed()
        return recovered


class SimFileStore(RecoversSaves):
    """Like ``FileStore``: polled every second, a ``path`` for the shared backoff state."""

    poll_interval: float | None = 1.0

    @property
    def path(self) -> Path:
        assert isinstance(self.backend, FileBackend)
        return self.backend.path

    def holds_lock(self) -> bool:
        return self.backend.holder() is self


class RealRedis(Backend):
    """A key on a real redis-server; each actor has its own ``RedisStore`` (its own client)."""

    kind = "real-redis"

    def __init__(self, sched: Scheduler, lease_seconds: float, url: str, key: str) -> None:
        super().__init__(sched, lease_seconds)
        import redis

        self.url, self.key = url, key
        self.client = redis.Redis.from_url(url)
        self.stores: list[RedisStore] = []
        self.location = RedisStore(url, key=key).location

    def inner_for(self, owner: Owner) -> RedisStore:
        store = RedisStore(self.url, key=self.key, lease_seconds=REAL_LEASE_SECONDS)
        self.stores.append(store)
        return store

    def snapshot(self) -> Any:
        return self.client.hgetall(self.key)

    def put_back(self, snapshot: Any) -> None:
        self.client.delete(self.key)
        kept = {k: v for k, v in snapshot.items() if k in (b"version", b"tokens")}
        if kept:
            self.client.hset(self.key, mapping=kept)

    def wipe(self) -> None:
        self.client.delete(self.key, f"{self.key}:lock")

    def read_refresh_token(self) -> str | None:
        raw = self.client.hget(self.key, "tokens")
        if raw is None:
            return None
        tokens, _shape = parse_token_document(json.loads(raw))
        return tokens.refresh_token

    def lease_gone(self) -> None:
        self.client.delete(f"{self.key}:lock")

    def first_login(self, tokens: TokenSet) -> None:
        RedisStore(self.url, key=self.key).save(tokens, expected_version=None)
        self.changed()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.delete(self.key, f"{self.key}:lock")
        for store in self.stores:
            client = getattr(store, "_client", None)
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
        self.client.close()


class SimRealRedisStore(SimRedisStore):
    """The real ``RedisStore`` takes its real lease whenever the virtual one is taken."""

    _held: contextlib.AbstractContextManager[None] | None = None

    def _take(self) -> bool:
        if not self.backend.take(self):
            return False
        assert isinstance(self.inner, RedisStore)
        held = self.inner.lock(0)
        try:
            held.__enter__()
        except Exception:
            self.backend.give_back(self)
            return False
        self._held = held
        return True

    def _release(self) -> None:
        super()._release()
        held, self._held = self._held, None
        if held is not None:
            held.__exit__(None, None, None)

    def holds_lock(self) -> bool:
        self._call("holds_lock")
        assert isinstance(self.inner, RedisStore)
        return self.backend.holder() is self and self.inner.holds_lock()


def make_folder(base: Path | None) -> Path:
    """A private folder for a file backend: tmpfs when there is one (fsync is free there)."""
    import tempfile

    shm = Path("/dev/shm")
    parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else base
    return Path(tempfile.mkdtemp(prefix="sim-", dir=parent))
