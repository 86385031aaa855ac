"""A cooperative scheduler on virtual time: real blocking code in threads, one at a time.

Each actor runs in its own thread, but only the holder of the baton runs. An actor hands the
baton back at its yield points (``pause``, ``sleep``, ``wait``): every store call, the token
endpoint, a sleep, a lock. The scheduler then picks the next runnable actor with its seeded
``random.Random``. Virtual time moves only when every live actor waits; timers (faults) fire
then. Blocking is never real: a contended lock or a sleep is a wait in virtual time, so no
thread ever blocks on something a baton-less thread holds.

A killed actor is simply never resumed; at ``close()`` its thread is woken with ``Killed`` (a
``BaseException``, which the library never catches) so it unwinds without touching anything.
"""

from __future__ import annotations

import heapq
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Actor", "Killed", "Scheduler", "Violation"]


class Killed(BaseException):
    """Raised in a killed actor's thread when it is woken to unwind (never caught)."""


class Violation(Exception):
    """An invariant broke: ``invariant`` names it, ``detail`` says how."""

    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant
        self.detail = detail


def _closed_gate() -> threading.Lock:
    gate = threading.Lock()
    gate.acquire()
    return gate


@dataclass(eq=False)
class Actor:
    """One thread of the simulation; runnable at ``wake_at`` or as soon as ``ready()``."""

    name: str
    main: Callable[[], None]
    gate: threading.Lock = field(default_factory=_closed_gate)
    wake_at: float = -math.inf
    ready: Callable[[], bool] | None = None
    label: str = "start"
    done: bool = False
    dead: bool = False
    crashed: BaseException | None = None
    thread: threading.Thread | None = None
    parent: Actor | None = None  # a thread of the same process (it is frozen with it)
    frozen_until: float = -math.inf  # the process is paused (SIGSTOP) until then

    def thawed_at(self) -> float:
        """When its process may run again (it is paused until then)."""
        if self.parent is None:
            return self.frozen_until
        return max(self.frozen_until, self.parent.thawed_at())


class Scheduler:
    """Runs actors one at a time on virtual time; one seed, one schedule."""

    def __init__(self, seed: int, start: float) -> None:
        self.rng = random.Random(seed)
        self.now = start
        self.start = start
        self.actors: list[Actor] = []
        self.current: Actor | None = None
        self.steps = 0
        self.trace: list[tuple[float, str, str]] = []
        self._back = _closed_gate()
        self._timers: list[tuple[float, int, str, Callable[[], None]]] = []
        self._step_hooks: dict[int, list[tuple[str, Callable[[], None]]]] = {}
        self._order = 0
        self.closed = False
        self._paused = False  # some actor was ever paused (the check costs a call per actor)

    # ----- setting up (scheduler side) ---------------------------------------------------------

    def spawn(
        self,
        name: str,
        main: Callable[[], None],
        at: float | None = None,
        parent: Actor | None = None,
    ) -> Actor:
        """A new actor, first runnable at ``at`` (now by default); ``parent``: the actor whose
        process it is a thread of."""
        actor = Actor(name, main, wake_at=self.now if at is None else at, parent=parent)
        actor.thread = threading.Thread(
            target=self._thread_main, args=(actor,), name=f"sim-{name}", daemon=True
        )
        self.actors.append(actor)
        actor.thread.start()
        return actor

    def at(self, when: float, label: str, action: Callable[[], None]) -> None:
        """Run ``action`` in the scheduler at virtual time ``when`` (a fault, a restart, an
        actor's timer: no trace line when ``label`` is empty)."""
        self._order += 1
        heapq.heappush(self._timers, (when, self._order, label, action))

    def at_step(self, step: int, label: str, action: Callable[[], None]) -> None:
        """Run ``action`` in the scheduler just before global step ``step``."""
        self._step_hooks.setdefault(step, []).append((label, action))

    def note(self, who: str, what: str) -> None:
        self.trace.append((self.now, who, what))

    # ----- yield points (actor side) -----------------------------------------------------------

    def pause(
        self, label: str, *, wake_at: float | None = None, ready: Callable[[], bool] | None = None
    ) -> None:
        """Hand the baton back; resume when runnable again (``Killed`` if killed meanwhile)."""
        actor = self.current
        if actor is None or self.closed:
            raise Killed
        actor.label = label
        actor.wake_at = self.now if wake_at is None else wake_at
        actor.ready = ready
        self._back.release()
        actor.gate.acquire()
        if actor.dead:
            raise Killed

    def sleep(self, seconds: float, label: str = "sleep") -> None:
        self.pause(label, wake_at=self.now + max(0.0, seconds))

    def wait(self, ready: Callable[[], bool], wake_at: float, label: str) -> bool:
        """Wait until ``ready()`` or virtual time ``wake_at``; True when ready."""
        if ready():
            return True
        self.pause(label, wake_at=wake_at, ready=ready)
        return ready()

    # ----- running (scheduler side) ------------------------------------------------------------

    def run(self, after_step: Callable[[], None], max_steps: int) -> None:
        """Step until every actor is done, dead or waiting forever; ``after_step`` checks the
        invariants (it raises ``Violation``)."""
        while True:
            hooks = self._step_hooks.pop(self.steps + 1, None)
            if hooks:
                for label, action in hooks:
                    self.note("fault", label)
                    action()
                    after_step()
            live = [actor for actor in self.actors if not actor.done and not actor.dead]
            runnable = [
                actor
                for actor in live
                if (actor.wake_at <= self.now or (actor.ready is not None and actor.ready()))
                and (not self._paused or actor.thawed_at() <= self.now)
            ]
            if not runnable:
                waiting = [a.wake_at for a in live]
                if self._paused:  # a paused actor runs again when thawed, at the earliest
                    waiting = [max(a.wake_at, a.thawed_at()) for a in live]
                    waiting += [a.thawed_at() for a in live if a.thawed_at() > self.now]
                upcoming = min([*waiting, self._timers[0][0] if self._timers else math.inf])
                if upcoming == math.inf:
                    return
                self.now = max(self.now, upcoming)
                while self._timers and self._timers[0][0] <= self.now:
                    _, _, label, action = heapq.heappop(self._timers)
                    if label:
                        self.note("fault", label)
                    action()
                    after_step()
                continue
            actor = runnable[0] if len(runnable) == 1 else self.rng.choice(runnable)
            self.steps += 1
            self.trace.append((self.now, actor.name, actor.label))
            self.current = actor
            actor.gate.release()
            self._back.acquire()
            self.current = None
            if actor.crashed is not None:
                raise actor.crashed
            after_step()
            if self.steps >= max_steps:
                raise Violation(
                    "3-request-ends", f"more than {max_steps} steps: a livelock, no request ends"
                )

    def freeze(self, actor: Actor, until: float) -> None:
        """Pause the actor's process (it and its threads) until virtual time ``until``."""
        actor.frozen_until = max(actor.frozen_until, until)
        self._paused = True

    def kill(self, actor: Actor) -> None:
        """The actor's thread is never resumed (it unwinds at ``close``)."""
        actor.dead = True

    def close(self) -> None:
        """Unwind every thread that has not finished; afterwards no yield point blocks."""
        self.closed = True
        for actor in self.actors:
            if actor.done:
                continue
            actor.dead = True
            actor.gate.release()
            self._back.acquire()
        for actor in self.actors:
            if actor.thread is not None:
                actor.thread.join()

    def _thread_main(self, actor: Actor) -> None:
        actor.gate.acquire()
        try:
            if not actor.dead:
                actor.main()
        except Killed:
            pass
        except BaseException as error:  # a bug in the simulator itself: report it
            actor.crashed = error
        finally:
            actor.done = True
            self._back.release()
