"""Claude Code itself, as a foreign program on its own credentials file.

Written from Claude Code's protocol (docs/claude-code.md), not from our ``_claude_locks``, so
that the two are checked against each other. Its locks are proper-lockfile's: a directory made
with ``mkdir``, its mtime set to the (virtual) time and touched every 5 s while held; one
untouched for longer than the stale time (10 s in 2.1.197, 60 s in 2.1.336; 15 s for the
write lock) is removed and taken. At each request it reads ``.credentials.json``; 5 minutes
before ``expiresAt`` it refreshes: ``<dir>/.oauth_refresh.lock``, then ``<realpath(dir)>.lock``
(when that one is busy it lets go of the first), up to 6 tries 1-2 s apart, else it gives up
for this request; under them it reads the file again and POSTs only if the login is still due;
it writes the file under ``<dir>/.storage-write.lock``; after ``invalid_grant`` it blanks the
login. It can be killed at any of its steps: its lock directories are left to go stale.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path

from claude_oauth_auth._errors import TokenRefreshError
from claude_oauth_auth._tokens import TokenSet
from claude_oauth_auth.lifecycle._grant import PartialAnswer, RefreshRefused

from .claude_store import ClaudeCodeBackend, read_login, write_document
from .endpoint import Endpoint
from .plan import Fault
from .scheduler import Scheduler

__all__ = ["ClaudeCode"]

REFRESH_BEFORE_SECONDS = 300.0  # it refreshes 5 minutes before expiresAt
TOUCH_SECONDS = 5.0  # proper-lockfile's update interval as Claude Code sets it
WRITE_STALE_SECONDS = 15.0
TRIES = 6  # the first and 5 retries
WRITE_WAIT_SECONDS = 60.0


class ClaudeCode:
    """One Claude Code process, making its requests at ``spec.times``."""

    lockless = False

    def __init__(
        self,
        spec: Fault,
        index: int,
        incarnation: int,
        sched: Scheduler,
        endpoint: Endpoint,
        backend: ClaudeCodeBackend,
        restart: Callable[[ClaudeCode], None],
    ) -> None:
        name = f"claude-code-{index}"
        self.name = name if incarnation == 0 else f"{name}#{incarnation}"
        self.spec, self.index, self.incarnation = spec, index, incarnation
        self.sched, self.endpoint, self.backend = sched, endpoint, backend
        self.restart = restart
        folder = backend.folder
        self.credentials = folder / ".credentials.json"
        self.refresh_locks = (
            folder / ".oauth_refresh.lock",
            Path(f"{os.path.realpath(folder)}.lock"),
        )
        self.write_lock = folder / ".storage-write.lock"
        self.stale = spec.stale or 10.0
        self.held: dict[Path, int] = {}  # lock -> the mtime_ns it last set
        self.touching = False
        self.steps = 0
        self.in_hand: list[str] = []
        self.dead = False
        self.died_at = math.inf
        self.fault_hit = False
        self.request_started: float | None = None

    def clock(self) -> float:
        return self.sched.now

    def holds(self, refresh_token: str) -> bool:
        return refresh_token in self.in_hand

    def requests(self, after: float) -> list[float]:
        """Its request times (virtual), those from ``after`` on."""
        return [self.sched.start + at for at in self.spec.times if self.sched.start + at >= after]

    def main(self) -> None:
        for when in self.requests(self.sched.now):
            self.sched.pause("request", wake_at=when)
            self.request_started = self.sched.now
            self._request()
            self.request_started = None
            self.in_hand.clear()

    # ----- one request -------------------------------------------------------------------------

    def _request(self) -> None:
        login = self._read()
        self._step("read .credentials.json")
        if login is None or not self._due(login):
            return  # it uses the token it has
        if not self._take_refresh_locks():
            self.sched.note(self.name, "gives up refreshing for this request: locks busy")
            return
        login = self._read()
        self._step("read .credentials.json under the refresh locks")
        if login is None or not self._due(login) or not login.refresh_token:
            self._release_refresh_locks()
            return
        try:
            fresh = self.endpoint.post(self, login.refresh_token)
        except PartialAnswer as partial:
            fresh = TokenSet(login.access_token, partial.tokens.refresh_token, login.expires_at)
        except RefreshRefused:
            self._step("refresh refused")
            self._write(None)
            self._release_refresh_locks()
            return
        except TokenRefreshError:
            self._step("refresh failed")
            self._release_refresh_locks()
            return
        self._step("refreshed")
        self._write(fresh)
        self._release_refresh_locks()

    def _due(self, login: TokenSet) -> bool:
        expires = login.expires_at
        return expires is None or self.sched.now + REFRESH_BEFORE_SECONDS >= expires

    def _read(self) -> TokenSet | None:
        inner = read_login(self.credentials)
        if inner is None or not inner.get("accessToken"):
            return None
        expires = inner.get("expiresAt")
        at = expires / 1000.0 if isinstance(expires, int | float) else None
        return TokenSet(inner["accessToken"], inner.get("refreshToken") or None, at)

    def _write(self, fresh: TokenSet | None) -> None:
        """Its write, under its write lock: new tokens, or the login blanked (None)."""
        waited_until = self.sched.now + WRITE_WAIT_SECONDS
        while not self._take(self.write_lock, WRITE_STALE_SECONDS):
            if self.sched.now >= waited_until:
                self.sched.note(self.name, "gives up writing: the write lock stays busy")
                return
            self._step("write lock busy", round(self.sched.rng.uniform(0.05, 0.3), 3))
        self._step("took .storage-write.lock")
        try:
            with open(self.credentials, encoding="utf-8") as handle:
                document = json.load(handle)
        except (OSError, ValueError):
            document = {}
        inner = dict(document.get("claudeAiOauth") or {})
        if fresh is None:
            inner.update(accessToken="", refreshToken="", expiresAt=0)
        else:
            inner["accessToken"] = fresh.access_token
            inner["refreshToken"] = fresh.refresh_token
            expires = fresh.expires_at
            inner["expiresAt"] = None if expires is None else int(expires * 1000)
        document["claudeAiOauth"] = inner
        write_document(self.credentials, document)
        self.backend.changed()
        self._step("wrote .credentials.json")
        self._let_go(self.write_lock)
        self._step("let go of .storage-write.lock")

    # ----- proper-lockfile ---------------------------------------------------------------------

    def _take_refresh_locks(self) -> bool:
        first, second = self.refresh_locks
        for attempt in range(TRIES):
            if attempt:
                self._step("backs off", round(self.sched.rng.uniform(1.0, 2.0), 3))
            if not self._take(first, self.stale):
                self._step(f"{first.name} busy")
                continue
            self._step(f"took {first.name}")
            if self._take(second, self.stale):
                self._step(f"took {second.name}")
                return True
            self._let_go(first)
            self._step(f"{second.name} busy: let go of {first.name}")
        return False

    def _release_refresh_locks(self) -> None:
        for lock in reversed(self.refresh_locks):
            self._let_go(lock)
            self._step(f"let go of {lock.name}")

    def _take(self, lock: Path, stale: float) -> bool:
        """mkdir; a lock untouched for over ``stale`` seconds is removed and made again."""
        try:
            os.mkdir(lock, 0o700)
        except FileExistsError:
            try:
                untouched = self.sched.now - os.stat(lock).st_mtime
            except FileNotFoundError:
                return False
            if untouched <= stale:
                return False
            self.sched.note(self.name, f"takes over {lock.name}, untouched for {untouched:.1f} s")
            try:
                os.rmdir(lock)
                os.mkdir(lock, 0o700)
            except OSError:
                return False
        self.held[lock] = self._set_mtime(lock)
        if not self.touching:
            self.touching = True
            self.sched.at(self.sched.now + TOUCH_SECONDS, "", self._touch)
        return True

    def _let_go(self, lock: Path) -> None:
        self.held.pop(lock, None)
        with contextlib.suppress(OSError):
            os.rmdir(lock)

    def _set_mtime(self, lock: Path) -> int:
        moment = int(self.sched.now * 1e9)
        os.utime(lock, ns=(moment, moment))
        return moment

    def _touch(self) -> None:
        """proper-lockfile's update timer: touch each held lock; one whose mtime someone else
        changed is compromised (noted; Claude Code carries on)."""
        if self.dead or not self.held or self.sched.closed:
            self.touching = False
            return
        self.sched.note(self.name, "touches its locks")
        for lock, mtime_ns in list(self.held.items()):
            try:
                current = os.stat(lock).st_mtime_ns
            except FileNotFoundError:
                current = None
            if current != mtime_ns:
                self.sched.note(self.name, f"its {lock.name} was compromised")
                del self.held[lock]
                continue
            self.held[lock] = self._set_mtime(lock)
        self.sched.at(self.sched.now + TOUCH_SECONDS, "", self._touch)

    # ----- its steps -----------------------------------------------------------------------------

    def _step(self, label: str, seconds: float = 0.0) -> None:
        """A yield point; the ``at_step``-th is where a kill strikes, as it would resume (its
        locks stay behind)."""
        self.steps += 1
        self.sched.sleep(seconds, label)
        if self.steps == self.spec.at_step:
            self.dead, self.died_at = True, self.sched.now
            self.endpoint.abandon(self.name)
            self.sched.note(self.name, f"killed after {label!r}, holding {len(self.held)} locks")
            actor = self.sched.current
            assert actor is not None
            self.sched.kill(actor)
            self.restart(self)
            self.sched.pause("killed")
