"""``claude-oauth-auth keep-fresh``: a long-running refresher, so that workers never wait on one.

Run it beside a fleet (a sidecar container, a systemd unit) on the store the workers use. It
refreshes the login ``--ahead`` seconds before expiry, less a random part of ``--jitter`` so
that several of them do not line up, which is earlier than any worker's own threshold: the
workers then only ever adopt the new tokens. Each refresh is one line on standard output
(never a secret). A refused login ends it with exit 1; SIGTERM or SIGINT stops it with exit 0.
A refresh made by someone else is adopted, not repeated; an unreachable store or token
endpoint is retried with backoff (one warning line per attempt). With ``--to-profile NAME``
it also publishes the access token (never the refresh token) as the SDK profile NAME, which
plain SDK processes then use without ever refreshing it (``_published_profile``). With
``--health-port PORT`` it serves ``/healthz`` and ``/metrics`` (``_health_server``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from functools import partial
from typing import TYPE_CHECKING

from .. import _clock, _telemetry
from .._errors import StoreError, TokenFileError, TokenRefreshError
from ._command_base import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    LOGIN_FIX,
    CommandError,
    Console,
    Result,
    is_sdk_error,
)
from ._command_stores import target_store
from ._health import STALL_GRACE_SECONDS, Health, judge

if TYPE_CHECKING:
    from .._tokens import Secret, TokenSet
    from ..lifecycle._manager import OAuthTokenManager
    from ..stores._base import TokenStore
    from ._published_profile import PublishedProfile

__all__ = ["KeepFresh", "add_keep_fresh_arguments", "run_keep_fresh"]

EXTRA_LEAD_SECONDS = 300.0  # by default, refresh this long before the workers' own threshold
DEFAULT_JITTER_SECONDS = 60.0
DEFAULT_CHECK_SECONDS = 15.0
MAX_RETRY_SECONDS = 60.0
DEFAULT_HEALTH_HOST = "127.0.0.1"
RECHECK_DEAD_SECONDS = 10.0
"""After a refused refresh, how long the store is re-read for another login before the login
is declared dead (a worker holding a newer one writes it back within its refresh window)."""


def add_keep_fresh_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--ahead",
        type=float,
        metavar="SECONDS",
        help="refresh this long before expiry (default: the workers' refresh threshold "
        f"plus {EXTRA_LEAD_SECONDS:g} s)",
    )
    command.add_argument(
        "--jitter",
        type=float,
        metavar="SECONDS",
        default=DEFAULT_JITTER_SECONDS,
        help="refresh up to this much later than --ahead, at random "
        f"(default {DEFAULT_JITTER_SECONDS:g})",
    )
    command.add_argument(
        "--check-every",
        type=float,
        metavar="SECONDS",
        default=DEFAULT_CHECK_SECONDS,
        help="between refreshes, look this often whether Redis lost the login, and write "
        f"it back (default {DEFAULT_CHECK_SECONDS:g})",
    )
    command.add_argument(
        "--health-port",
        type=int,
        metavar="PORT",
        help="serve /healthz (200 while the login is alive and fresh, else 503 and why) and "
        "/metrics (Prometheus text; needs the health extra) on this port (0: any free one)",
    )
    command.add_argument(
        "--health-host",
        metavar="HOST",
        default=DEFAULT_HEALTH_HOST,
        help=f"the address --health-port listens on (default {DEFAULT_HEALTH_HOST}; "
        "0.0.0.0 for probes from outside the container, such as Kubernetes')",
    )
    command.add_argument(
        "--to-profile",
        metavar="NAME",
        help="also write the access token (never the refresh token) to the SDK profile NAME, "
        "for plain anthropic.Anthropic(profile=NAME) processes; created when missing",
    )


def run_keep_fresh(arguments: argparse.Namespace, console: Console) -> Result:
    from .._config import refresh_threshold

    ahead = arguments.ahead
    if ahead is None:
        ahead = refresh_threshold(None) + EXTRA_LEAD_SECONDS
    jitter = arguments.jitter
    check_every = arguments.check_every
    if not ahead > 0 or not 0 <= jitter < ahead or not check_every > 0:
        raise CommandError(
            "--ahead and --check-every must be positive, and --jitter at least 0 and less "
            "than --ahead",
            "for example --ahead 600 --jitter 60 --check-every 15",
            EXIT_USAGE,
        )
    store = target_store(arguments.store).store
    profile = None
    if arguments.to_profile is not None:
        from ._published_profile import PublishedProfile

        profile = PublishedProfile(arguments.to_profile)
        profile.prepare()  # before any refresh token is spent
    from ._health_server import serving_health  # http.server: only for keep-fresh

    stop = threading.Event()
    with _stopping_on_signals(stop):
        say = partial(_say, console, as_json=arguments.json)
        keeper = KeepFresh(
            store, ahead=ahead, jitter=jitter, check_every=check_every, say=say, profile=profile
        )
        with serving_health(
            keeper.health, keeper.say, arguments.health_host, arguments.health_port
        ):
            return Result(code=keeper.run(stop))


def _say(console: Console, line: str, *, as_json: bool = False) -> None:
    """One log line, after a UTC time stamp; with ``--json``, one JSON object per line."""
    moment = datetime.fromtimestamp(_clock.now(), timezone.utc)
    stamp = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    console.log_line(json.dumps({"time": stamp, "message": line}) if as_json else f"{stamp} {line}")


@contextlib.contextmanager
def _stopping_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop``; a refresh in flight finishes and is saved first."""
    handled = (signal.SIGTERM, signal.SIGINT)
    previous = {number: signal.getsignal(number) for number in handled}
    for number in handled:
        signal.signal(number, lambda _number, _frame: stop.set())
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


class KeepFresh:
    """Refreshes one store's login ahead of time through an ``OAuthTokenManager``."""

    def __init__(
        self,
        store: TokenStore,
        *,
        ahead: float,
        jitter: float,
        check_every: float = DEFAULT_CHECK_SECONDS,
        say: Callable[[str], None],
        clock: Callable[[], float] = _clock.now,
        profile: PublishedProfile | None = None,
    ) -> None:
        self.store = store
        self.profile = profile
        self.ahead = ahead
        self.jitter = jitter
        self.check_every = check_every
        self.say = say
        self.clock = clock
        self.refreshes = 0
        # What the loop last saw, for /healthz (``_health.judge``).
        self.manager: OAuthTokenManager | None = None
        self.problem: Exception | None = None
        self.dead: str | None = None
        self.heartbeat = clock()
        self.stall_after = check_every + STALL_GRACE_SECONDS

    def health(self) -> Health:
        """Whether the login is alive and fresh, and why not (``/healthz``)."""
        return judge(self)

    def run(self, stop: threading.Event) -> int:
        """Until ``stop`` is set: exit 0; on a dead login: exit 1."""
        manager = self.manager = self._first_manager(stop)
        if manager is None:
            self.say("keep-fresh: stopped before the store could be read")
            return EXIT_OK
        self.say(
            f"keep-fresh: keeping the OAuth login in {self.store.location} fresh, refreshing "
            f"{self.ahead - self.jitter:g} to {self.ahead:g} s before it expires"
        )
        if self.profile is not None:
            self.say(
                f"keep-fresh: publishing each access token to {self.profile.describe()} for "
                "plain SDK processes (never the refresh token)"
            )
            self._warn_when_the_sdk_rereads(self.profile)
        failures = 0
        wake = self._next_wake(manager)
        while not stop.is_set():
            self.heartbeat = self.clock()
            self._publish(manager)  # the first token, and each new one (refreshed or adopted)
            now = self.clock()
            refresh: Callable[[], str] = manager.get_valid_token  # or adopt another's
            if now < wake:
                stop.wait(min(wake - now, self.check_every))
                state = "running" if stop.is_set() else self._store_state(manager)
                if state in ("written back", "changed"):
                    _check_store(manager)  # puts the sidecar's newer login back, or adopts
                    wake = self._next_wake(manager)
                if state != "lost":
                    continue
                refresh = manager.refresh  # writes the login back first, then refreshes
            try:
                self._refresh_or_adopt(manager, refresh)
            except Exception as error:
                self.problem = error
                if is_sdk_error(error, "OAuthRefreshError"):
                    if self._another_login_appears(manager, stop):
                        self.say(
                            f"keep-fresh: warning: {error}; but {self.store.location} now holds "
                            "another login (a worker put back a newer one), which is kept fresh"
                        )
                        wake = self._next_wake(manager)
                        continue
                    self.dead = str(error)
                    self.say(f"keep-fresh: error: the login is dead: {error}; exiting")
                    return EXIT_FAILED
                if not isinstance(error, (StoreError, TokenRefreshError, OSError)):
                    raise
                failures += 1
                retry = min(MAX_RETRY_SECONDS, 2.0**failures)
                self.say(f"keep-fresh: warning: {error}; trying again in {retry:g} s")
                wake = self.clock() + retry
                continue
            if manager.needs_refresh():  # a failure the manager served around, with a warning
                failures += 1
                wake = self.clock() + min(MAX_RETRY_SECONDS, 2.0**failures)
                continue
            failures, self.problem = 0, None
            wake = self._next_wake(manager)
        self.say(f"keep-fresh: stopped after {self.refreshes} refresh(es)")
        return EXIT_OK

    def _warn_when_the_sdk_rereads(self, profile: PublishedProfile) -> None:
        """The SDK re-reads a profile's token before every request once it is within its
        refresh lead of expiry: the next token should be published before that."""
        from ._published_profile import SDK_REFRESH_LEAD_SECONDS as lead

        if self.ahead - self.jitter > lead:
            return
        self.say(
            f"keep-fresh: warning: --ahead less --jitter ({self.ahead - self.jitter:g} s) is not "
            f"above the SDK's own refresh lead ({lead:g} s): plain SDK processes on "
            f"{profile.describe()} re-read it before every request in the last {lead:g} s of "
            f"each token until the next one is published (give --ahead more than "
            f"{lead + self.jitter:g})"
        )

    def _publish(self, manager: OAuthTokenManager) -> None:
        """Write the manager's access token to the profile when it changed; a failure is one
        warning line, and the next pass (within ``--check-every``) tries again."""
        if self.profile is None or manager.access_token is None:
            return
        try:
            written = self.profile.publish(manager.access_token, manager.token_expiry)
        except (StoreError, OSError) as error:
            self.say(
                f"keep-fresh: warning: could not publish the access token to "
                f"{self.profile.describe()}: {error}; trying again in {self.check_every:g} s"
            )
            return
        if written and manager.token_expiry is not None:
            from .._tokens import mask

            until = datetime.fromtimestamp(int(manager.token_expiry), timezone.utc)
            self.say(
                f"keep-fresh: published the access token ({mask(manager.access_token)}) to "
                f"{self.profile.describe()}, valid until {until.isoformat(timespec='seconds')}"
            )

    def _another_login_appears(self, manager: OAuthTokenManager, stop: threading.Event) -> bool:
        """After a refused refresh, re-read the store: True once the manager holds another
        login. While the store holds a login written back after lost data (which a worker
        holding a newer one replaces, on its own requests in its refresh window), keep
        re-reading for up to ``RECHECK_DEAD_SECONDS``."""
        deadline, refused = self.clock() + RECHECK_DEAD_SECONDS, manager.refresh_token
        while True:
            _check_store(manager)
            held = manager.refresh_token
            if manager.permanent_failure is None and held is not None and held != refused:
                return True
            if self._store_state(manager) != "written back by us":
                return False  # a login nobody will replace (or none): it is dead
            if self.clock() >= deadline or stop.wait(min(self.check_every, 1.0)):
                return False

    def _first_manager(self, stop: threading.Event) -> OAuthTokenManager | None:
        """The manager, once the store answers (a sidecar may start before Redis does)."""
        failures = 0
        while not stop.is_set():
            try:
                return self._manager()
            except TokenFileError as error:
                raise CommandError(f"{error.path} {error.reason}", LOGIN_FIX) from None
            except StoreError as error:
                self.problem = error
                _telemetry.store_failed(self.store, "read", error)
                failures += 1
                retry = min(MAX_RETRY_SECONDS, 2.0**failures)
                self.say(f"keep-fresh: warning: {error}; trying again in {retry:g} s")
                stop.wait(retry)
        return None

    def _manager(self) -> OAuthTokenManager:
        from ..lifecycle._manager import OAuthTokenManager
        from ..lifecycle._spend import default_grant

        def counted(token_url: str, refresh_token: Secret, client_id: str) -> TokenSet:
            tokens = default_grant(token_url, refresh_token, client_id)
            self.refreshes += 1
            return tokens

        return OAuthTokenManager(store=self.store, refresh_threshold=self.ahead, grant=counted)

    def _next_wake(self, manager: OAuthTokenManager) -> float:
        """A random moment between ``ahead - jitter`` and ``ahead`` seconds before expiry."""
        if manager.token_expiry is None:
            return self.clock() + self.check_every
        return manager.token_expiry - self.ahead + random.uniform(0, self.jitter)

    def _store_state(self, manager: OAuthTokenManager) -> str:
        """ "lost" when Redis was emptied (or the login deleted), "written back" when it holds
        a login other than ours that a worker wrote back after lost data, "written back by us"
        when the login written back is the one we hold, "changed" when it holds another login
        (rotated elsewhere, or an older one after a rollback to a snapshot), else "running".
        Only stores that can lose their data can tell."""
        if getattr(self.store, "may_restore", None) is None:
            return "running"  # a deleted file is a logout: the next refresh reports it
        try:
            stored = self.store.load()  # one round trip: the tokens and the restored mark
        except StoreError:
            return "running"  # unreachable: the next refresh reports it
        if stored is None:
            return "lost"
        if stored.extra.get("restored") is not True:  # another login: a rotation, or a rollback
            return "running" if stored.refresh_token in (None, manager.refresh_token) else "changed"
        if stored.refresh_token == manager.refresh_token:
            return "written back by us"
        return "written back"

    def _refresh_or_adopt(self, manager: OAuthTokenManager, refresh: Callable[[], str]) -> None:
        before, started = self.refreshes, self.clock()
        refresh()  # under the store's lock
        if self.refreshes == before:
            return
        expiry = manager.token_expiry or self.clock()
        left = expiry - self.clock()
        granted = expiry - started  # at least the lifetime granted, however slow the refresh
        from .._tokens import mask

        self.say(
            f"keep-fresh: refreshed the OAuth login in {self.store.location}: the new access "
            f"token ({mask(manager.access_token)}) expires in {left:.0f} s, at "
            f"{datetime.fromtimestamp(expiry, timezone.utc).isoformat(timespec='seconds')}"
        )
        if granted <= self.ahead:
            raise CommandError(
                f"the token endpoint grants tokens for {granted:.0f} s, no longer than --ahead "
                f"({self.ahead:g} s): keep-fresh would refresh without a pause",
                "lower --ahead below the tokens' lifetime",
                EXIT_USAGE,
            )


def _check_store(manager: OAuthTokenManager) -> None:
    from ..lifecycle._manager import check_store

    check_store(manager)
