"""What one simulated run does: the store, the workers and their requests, the faults.

A seed generates a plan (``generate``); the scheduler's choices come from the same seed. The
named regression scenarios write their plans out by hand. Times are virtual seconds after the
start of the run.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

__all__ = [
    "BACKENDS",
    "CLAUDE_CODE",
    "ENDPOINT_FAULTS",
    "FOREIGN_WRITERS",
    "STORE_FAULTS",
    "SWEEP_EXCLUDED",
    "Fault",
    "Plan",
    "Request",
    "Worker",
    "generate",
    "sweep_plan",
]

BACKENDS = ("model-redis", "file", "real-redis", "claude-code")
"""model-redis: an in-memory store with RedisStore's semantics; file: the real FileStore in a
temp folder; real-redis: the real RedisStore on a real redis-server; claude-code: the real
ClaudeCodeStore on a ``.credentials.json`` in a temp folder, shared with Claude Code."""

STORE_FAULTS = {
    "flush": "the store restarts empty (FLUSHALL, a restart without persistence)",
    "snapshot": "the store comes back from an older snapshot (older tokens and version, no mark)",
    "stall": "every store call hangs for ``duration`` (longer than a lease, sometimes)",
    "unwritable": "saves fail for ``duration`` (and ``writable`` says so)",
    "lease_lost": "the refresh lease disappears while held",
}
ENDPOINT_FAULTS = {
    "slow": "POSTs that start in the window take ``delay`` seconds",
    "hang": "POSTs that start in the window hang until the client's 30 s timeout",
    "5xx": "POSTs answer 503 (not applied)",
    "429": "POSTs answer 429 with Retry-After ``delay`` (not applied)",
    "partial": 'a 200 with a new refresh token and no usable "access_token"',
    "no_expiry": 'a 200 without "expires_in" (the token is due at once)',
}
FOREIGN_WRITERS = {
    "foreign_lockless": "another program rotates the login without our lock",
    "foreign_locked": "another program of ours takes the store's lock, refreshes, writes",
}
CLAUDE_CODE = {
    "pause": "a worker's process is paused (SIGSTOP, a suspended VM) for ``duration`` s at its "
    "first store call under the lock after global step ``at_step``: all its threads stop, so "
    "the Claude Code locks it holds go untouched",
    "claude_code": "Claude Code itself (claude-code backend): requests at ``times`` (from "
    "``at``), refreshing under its own mkdir locks (stale after ``stale`` s); killed at its own "
    "step ``at_step`` (0: never), restarted ``restart_after`` later",
}
WORKER_FAULTS = {"kill": "the worker dies at global step ``at_step`` (SIGKILL)"}

SWEEP_EXCLUDED: dict[str, str] = {
    "snapshot": "a worker holding the rolled-back login spends it (issue 22 item 1)",
    "flush": "a written-back older login is spent once its 2 s grace ends, whether or not the "
    "newer holder looked meanwhile, or while a refresh begun before the loss is in flight "
    "(issue 22 item 2)",
}
"""Fault kinds the random sweep leaves out because they find known bugs of today's code; each
is pinned by a named xfail seed in tests/test_simulator.py. Put a kind back once it is fixed."""

FILE_FAULTS = ("stall", "unwritable")
REDIS_FAULTS = tuple(STORE_FAULTS)
HORIZON = 1500.0
CLAUDE_CODE_SHARE = 0.2  # of the seeds that would run on the Redis model


@dataclass(frozen=True)
class Request:
    """One request of a worker: ``plain`` (get a token, use it: refresh once after a 401),
    ``reject`` (the API refused the token for its own reasons), ``force`` (refresh now)."""

    at: float
    kind: str = "plain"


@dataclass(frozen=True)
class Worker:
    """A process (or host) with its own manager: its clock runs ``clock_offset`` seconds off."""

    name: str
    requests: tuple[Request, ...]
    clock_offset: float = 0.0
    threshold: float = 300.0


@dataclass(frozen=True)
class Fault:
    """One fault: store and endpoint faults act over [at, at + duration); ``kill`` hits
    ``target`` just before global step ``at_step`` and restarts it ``restart_after`` later."""

    kind: str
    at: float = 0.0
    duration: float = 0.0
    delay: float = 0.0
    age: float = 0.0
    target: str = ""
    at_step: int = 0
    restart_after: float | None = None
    stale: float = 0.0
    times: tuple[float, ...] = ()


@dataclass(frozen=True)
class Plan:
    backend: str
    workers: tuple[Worker, ...]
    faults: tuple[Fault, ...] = ()
    lease_seconds: float = 90.0
    lifetime: float = 600.0


def _requests(rng: random.Random) -> tuple[Request, ...]:
    count = rng.randint(3, 10)
    times = sorted(round(rng.uniform(0.0, HORIZON), 3) for _ in range(count))
    kinds = rng.choices(("plain", "reject", "force"), weights=(86, 8, 6), k=count)
    return tuple(Request(at, kind) for at, kind in zip(times, kinds, strict=True))


def _fault(rng: random.Random, backend: str, workers: tuple[Worker, ...]) -> Fault:
    store_kinds = REDIS_FAULTS if backend.endswith("redis") else FILE_FAULTS
    menu = [*store_kinds, *ENDPOINT_FAULTS, *FOREIGN_WRITERS, "kill", "kill"]
    if backend == "claude-code":
        menu += ["claude_code", "pause"]
    kind = rng.choice(menu)
    if kind == "claude_code":
        return _claude_code(rng, workers)
    if kind == "pause":
        target, step = rng.choice(workers).name, rng.randint(1, 250)
        return Fault("pause", target=target, at_step=step, duration=rng.choice((3.0, 12.0, 30.0)))
    at = round(rng.uniform(0.0, HORIZON), 3)
    if kind == "kill":
        restart = round(rng.uniform(1.0, 60.0), 3) if rng.random() < 0.5 else None
        target = rng.choice(workers).name
        return Fault("kill", target=target, at_step=rng.randint(1, 250), restart_after=restart)
    if kind in ("stall", "unwritable"):
        return Fault(kind, at=at, duration=round(rng.choice((2.0, 8.0, 40.0, 120.0)), 3))
    if kind == "snapshot":
        return Fault(kind, at=at, age=round(rng.uniform(5.0, 900.0), 3))
    if kind in ENDPOINT_FAULTS:
        delay = round(rng.uniform(1.0, 12.0), 3) if kind in ("slow", "429") else 0.0
        return Fault(kind, at=at, duration=round(rng.uniform(1.0, 60.0), 3), delay=delay)
    return Fault(kind, at=at)


def _claude_code(rng: random.Random, workers: tuple[Worker, ...]) -> Fault:
    """A Claude Code process: its requests (some at the moment of one of ours, to contend for
    the refresh), its stale time, and maybe a kill at one of its steps."""
    own = [round(rng.uniform(0.0, HORIZON), 3) for _ in range(rng.randint(2, 10))]
    nudges = (0.0, 0.0, 0.05, round(rng.uniform(-0.3, 0.3), 3))
    near = [
        max(0.0, round(request.at + rng.choice(nudges), 3))
        for worker in workers
        for request in worker.requests
        if rng.random() < 0.35
    ]
    times = tuple(sorted({*own, *near}))
    killed = rng.random() < 0.35
    return Fault(
        "claude_code",
        at=times[0],
        stale=rng.choice((10.0, 60.0)),
        at_step=rng.randint(1, 40) if killed else 0,
        restart_after=round(rng.uniform(1.0, 90.0), 3) if killed and rng.random() < 0.5 else None,
        times=times,
    )


def sweep_plan(seed: int, backend: str | None = None) -> Plan:
    """The sweep's plan for ``seed``: ``generate``'s without the kinds of ``SWEEP_EXCLUDED``."""
    plan = generate(seed, backend)
    faults = tuple(fault for fault in plan.faults if fault.kind not in SWEEP_EXCLUDED)
    return Plan(plan.backend, plan.workers, faults, plan.lease_seconds, plan.lifetime)


def generate(seed: int, backend: str | None = None) -> Plan:
    """The plan of seed ``seed`` (``backend`` forces the store, as for the real-Redis seeds)."""
    rng = random.Random(f"claude-oauth-auth-sim-plan-{seed}")
    chosen = backend or rng.choices(("model-redis", "file"), weights=(3, 1))[0]
    if backend is None and chosen == "model-redis":  # a side draw: other seeds keep their plans
        share = random.Random(f"claude-oauth-auth-sim-claude-code-{seed}").random()
        chosen = "claude-code" if share < CLAUDE_CODE_SHARE else chosen
    workers = tuple(
        Worker(
            name=f"w{index}",
            requests=_requests(rng),
            clock_offset=0.0 if rng.random() < 0.7 else round(rng.uniform(-20.0, 20.0), 3),
            threshold=300.0 if rng.random() < 0.8 else round(rng.uniform(60.0, 500.0), 3),
        )
        for index in range(rng.randint(2, 4))
    )
    faults = tuple(_fault(rng, chosen, workers) for _ in range(rng.choice((0, 1, 1, 2, 2, 3, 4))))
    lease = 90.0 if rng.random() < 0.7 else rng.choice((5.0, 15.0, 30.0))
    if chosen == "claude-code":  # one host: one clock; Claude Code itself always runs
        workers = tuple(dataclasses.replace(worker, clock_offset=0.0) for worker in workers)
        faults = (_claude_code(rng, workers), *faults)
    return Plan(chosen, workers, faults, lease_seconds=lease, lifetime=600.0)
