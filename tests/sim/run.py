"""One seeded run of the simulation, its replay, and the shrinking of a failing plan."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .backends import FileBackend, RealRedis, SimFileStore, SimRealRedisStore, make_folder
from .claude_code import ClaudeCode
from .claude_store import ClaudeCodeBackend, SimClaudeCodeStore, virtual_clock
from .endpoint import Endpoint
from .invariants import Monitor
from .plan import CLAUDE_CODE, ENDPOINT_FAULTS, FOREIGN_WRITERS, Fault, Plan, Worker
from .scheduler import Scheduler, Violation
from .stores import Backend, ModelRedis, Owner, SimRedisStore, SimStore
from .workers import Foreign, SimWorker

__all__ = ["FIGURES", "Figures", "Outcome", "format_trace", "run", "shrink"]

START = 1_700_000_000.0
MAX_STEPS = 20_000
BASE_BOUND = 400.0  # 3 lock waits of 60 s, a 30 s POST each, the write-back grace, margins


@dataclass
class Figures:
    """What the simulator did, summed over a session (printed last)."""

    schedules: int = 0
    steps: int = 0
    faults: int = 0
    checks: int = 0
    posts: int = 0
    requests: int = 0
    lost_not_ours: int = 0
    failures: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"simulator: {self.schedules} schedules, {self.steps} steps, {self.faults} faults "
            f"injected, {self.checks} invariant checks, {self.posts} POSTs, {self.requests} "
            f"requests, {self.lost_not_ours} logins lost to double faults no client survives, "
            f"{self.failures} failing, {self.seconds:.1f} s wall time"
        )


FIGURES = Figures()


@dataclass
class Outcome:
    seed: int
    plan: Plan
    violation: Violation | None
    trace: list[tuple[float, str, str]] = field(repr=False)
    lost: str = ""
    outcomes: dict[str, int] = field(default_factory=dict)


class _TraceLog(logging.Handler):
    """The library's log lines, in the trace where they happened."""

    def __init__(self, sched: Scheduler, places: dict[str, str]) -> None:
        super().__init__(logging.INFO)
        self.sched, self.places = sched, places

    def emit(self, record: logging.LogRecord) -> None:
        ours = {a.thread.ident for a in self.sched.actors if a.thread is not None}
        if record.thread not in ours and record.thread != threading.main_thread().ident:
            return  # an earlier run's actor, still unwinding on a slow machine: not this run
        who = self.sched.current.name if self.sched.current is not None else "-"
        message = record.getMessage()
        for place, name in self.places.items():  # temp folders vary
            message = message.replace(place, name)
        self.sched.note(who, f"log {record.levelname}: {message}")


def _backend(plan: Plan, sched: Scheduler, redis_url: str | None, seed: int) -> Backend:
    if plan.backend == "file":
        return FileBackend(sched, make_folder(None))
    if plan.backend == "claude-code":
        return ClaudeCodeBackend(sched, make_folder(None))
    if plan.backend == "real-redis":
        assert redis_url is not None, "real-redis plans need a redis_url"
        key = f"sim:{seed}:{time.monotonic_ns()}"
        return RealRedis(sched, plan.lease_seconds, redis_url, key)
    return ModelRedis(sched, plan.lease_seconds)


def _store_class(backend: Backend) -> type[SimStore]:
    if isinstance(backend, FileBackend):
        return SimFileStore
    if isinstance(backend, RealRedis):
        return SimRealRedisStore
    if isinstance(backend, ClaudeCodeBackend):
        return SimClaudeCodeStore
    return SimRedisStore


def run(seed: int, plan: Plan, *, redis_url: str | None = None) -> Outcome:
    """Run ``plan`` with the scheduler seeded by ``seed``; never raises a violation."""
    for thread in threading.enumerate():  # an earlier run's killed actors, still unwinding
        if thread.name.startswith("sim-") and thread is not threading.current_thread():
            thread.join(timeout=5)
    began = time.perf_counter()
    sched = Scheduler(seed, START)
    endpoint = Endpoint(sched, plan.lifetime, plan.faults)
    backend = _backend(plan, sched, redis_url, seed)
    bound = BASE_BOUND + sum(f.duration for f in plan.faults if f.kind == "stall")
    monitor = Monitor(sched, endpoint, backend, bound)
    endpoint.on_post = monitor.on_post
    store_class = _store_class(backend)

    def make_store(owner: Owner) -> SimStore:
        return store_class(backend, owner)

    live: dict[str, SimWorker] = {}

    def spawn(spec: Worker, incarnation: int, after: float) -> None:
        requests = tuple(r for r in spec.requests if r.at >= after)
        worker = SimWorker(spec, incarnation, sched, endpoint, make_store, monitor, requests)
        live[spec.name] = worker
        monitor.holders.append(worker)
        sched.spawn(worker.name, worker.main)

    faults = 0

    def fault(action: Callable[[], None]) -> Callable[[], None]:
        def apply() -> None:
            nonlocal faults
            faults += 1
            monitor.fault_step = True
            action()

        return apply

    def kill(spec: Worker, restart_after: float | None) -> None:
        worker = live[spec.name]
        actor = next(a for a in sched.actors if a.name == worker.name)
        if worker.dead or actor.done:
            return
        worker.dead, worker.died_at = True, sched.now
        sched.kill(actor)
        endpoint.abandon(worker.name)
        backend.holder_died(worker)
        if restart_after is not None:
            when = sched.now + restart_after
            restart = dataclasses.replace(spec)
            sched.at(
                when,
                f"restart {spec.name}",
                lambda: spawn(restart, worker.incarnation + 1, when - START),
            )

    def pause(spec: Worker, seconds: float) -> None:
        store = live[spec.name].store
        if isinstance(store, SimClaudeCodeStore):
            store.pause_pending = seconds

    def foreign(kind: str, index: int) -> Callable[[], None]:
        def start() -> None:
            actor = Foreign(kind, index, sched, endpoint, backend, make_store)
            monitor.holders.append(actor)
            sched.spawn(actor.name, actor.main)

        return start

    def claude_code(item: Fault, index: int, incarnation: int = 0) -> Callable[[], None]:
        def start() -> None:
            assert isinstance(backend, ClaudeCodeBackend), "Claude Code runs on its own file"
            actor = ClaudeCode(item, index, incarnation, sched, endpoint, backend, restart)
            monitor.holders.append(actor)
            sched.spawn(actor.name, actor.main)

        def restart(killed: ClaudeCode) -> None:
            if item.restart_after is not None:
                again = dataclasses.replace(item, at_step=0)
                when = sched.now + item.restart_after
                label = f"restart {killed.name}"
                sched.at(when, label, claude_code(again, index, incarnation + 1))

        return start

    backend.first_login(endpoint.login())
    for spec in plan.workers:
        spawn(spec, 0, 0.0)
    specs = {spec.name: spec for spec in plan.workers}
    for index, item in enumerate(plan.faults):
        label = _describe(item)
        when = START + item.at
        if item.kind == "kill":
            if item.target in specs:
                target, restart = specs[item.target], item.restart_after
                sched.at_step(item.at_step, label, fault(functools.partial(kill, target, restart)))
        elif item.kind in ("stall", "unwritable"):
            windows = backend.stalls if item.kind == "stall" else backend.unwritable
            windows.append((when, when + item.duration))
            sched.at(when, label, fault(lambda: None))
        elif item.kind in ENDPOINT_FAULTS:
            sched.at(when, label, fault(lambda: None))
        elif item.kind in FOREIGN_WRITERS:
            sched.at(when, label, fault(foreign(item.kind, index)))
        elif item.kind == "pause":
            if item.target in specs:
                action = functools.partial(pause, specs[item.target], item.duration)
                sched.at_step(item.at_step, label, fault(action))
        elif item.kind in CLAUDE_CODE:
            sched.at(when, label, fault(claude_code(item, index)))
        elif item.kind == "flush":
            sched.at(when, label, fault(backend.flush))
        elif item.kind == "snapshot":
            sched.at(when, label, fault(functools.partial(backend.roll_back, item.age)))
        elif item.kind == "lease_lost":
            sched.at(when, label, fault(backend.drop_lease))

    places = {backend.location: "<store>"}
    clock: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if isinstance(backend, ClaudeCodeBackend):
        places[str(backend.base)] = "<folder>"
        clock = virtual_clock(sched)
    logger = logging.getLogger("claude_oauth_auth")
    handler, propagate, level = _TraceLog(sched, places), logger.propagate, logger.level
    logger.addHandler(handler)
    logger.propagate, logger.level = False, logging.INFO
    violation: Violation | None = None
    try:
        with clock:
            try:
                sched.run(monitor.after_step, MAX_STEPS)
                monitor.at_end()
            finally:
                sched.close()
    except Violation as caught:
        violation = caught
    finally:
        logger.removeHandler(handler)
        logger.propagate, logger.level = propagate, level
        for actor in sched.actors:  # let killed actors unwind, and abandoned ``with store.lock()``
            if actor.thread is not None:  # generators finalize now, not in a later run's trace
                actor.thread.join(timeout=5)
        if isinstance(backend, RealRedis):  # real leases: their release logs a line
            gc.collect()
        backend.close()
        if isinstance(backend, FileBackend):
            shutil.rmtree(backend.path.parent, ignore_errors=True)
        if isinstance(backend, ClaudeCodeBackend):
            shutil.rmtree(backend.base, ignore_errors=True)
    FIGURES.schedules += 1
    FIGURES.steps += sched.steps
    FIGURES.faults += faults
    FIGURES.checks += monitor.checks
    FIGURES.posts += endpoint.posts
    FIGURES.requests += sum(monitor.outcomes.values())
    FIGURES.lost_not_ours += bool(monitor.lost)
    FIGURES.seconds += time.perf_counter() - began
    return Outcome(seed, plan, violation, sched.trace, monitor.lost, monitor.outcomes)


def _describe(item: Fault) -> str:
    if item.kind == "pause":
        return f"pause {item.target} for {item.duration:g} s (after step {item.at_step})"
    if item.kind in CLAUDE_CODE:
        parts = [item.kind, f"{len(item.times)} requests"]
        parts.append(f"(stale after {item.stale or 10:g} s)")
        if item.at_step:
            parts.append(f"killed at its step {item.at_step}")
        if item.restart_after is not None:
            parts.append(f"(restart after {item.restart_after:g} s)")
        return " ".join(parts)
    parts = [item.kind]
    if item.kind == "kill":
        parts.append(f"{item.target} at step {item.at_step}")
        if item.restart_after is not None:
            parts.append(f"(restart after {item.restart_after:g} s)")
    if item.duration:
        parts.append(f"for {item.duration:g} s")
    if item.delay:
        parts.append(f"delay {item.delay:g} s")
    if item.age:
        parts.append(f"{item.age:g} s old")
    return " ".join(parts)


def format_trace(trace: list[tuple[float, str, str]], last: int | None = None) -> str:
    lines = [f"{when - START:11.3f}  {who:<18} {what}" for when, who, what in trace]
    if last is not None and len(lines) > last:
        lines = [f"... {len(lines) - last} earlier steps", *lines[-last:]]
    return "\n".join(lines)


def _smaller(plan: Plan) -> Iterator[Plan]:
    """Plans one change smaller: a fault, a worker, a request fewer; no clock offset."""
    for index in range(len(plan.faults)):
        yield dataclasses.replace(plan, faults=plan.faults[:index] + plan.faults[index + 1 :])
    if len(plan.workers) > 1:
        for worker in plan.workers:
            kept = tuple(w for w in plan.workers if w is not worker)
            faults = tuple(f for f in plan.faults if f.target != worker.name)
            yield dataclasses.replace(plan, workers=kept, faults=faults)
    for position, worker in enumerate(plan.workers):
        for index in reversed(range(len(worker.requests))):
            fewer = worker.requests[:index] + worker.requests[index + 1 :]
            workers = list(plan.workers)
            workers[position] = dataclasses.replace(worker, requests=fewer)
            yield dataclasses.replace(plan, workers=tuple(workers))
        if worker.clock_offset:
            workers = list(plan.workers)
            workers[position] = dataclasses.replace(worker, clock_offset=0.0)
            yield dataclasses.replace(plan, workers=tuple(workers))


def shrink(
    seed: int, plan: Plan, invariant: str, run_plan: Callable[[int, Plan], Outcome], budget: int
) -> Outcome | None:
    """The smallest plan found (greedily) that still breaks ``invariant`` with ``seed``."""
    best: Outcome | None = None
    current = plan
    while budget > 0:
        for candidate in _smaller(current):
            budget -= 1
            outcome = run_plan(seed, candidate)
            if outcome.violation is not None and outcome.violation.invariant == invariant:
                best, current = outcome, candidate
                break
            if budget <= 0:
                break
        else:
            break
    return best
