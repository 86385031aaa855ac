"""The deterministic simulation of the refresh core (``tests/sim``): a seeded sweep, named
regression scenarios, replay by seed, and the figures printed at the very end.

    .venv/bin/pytest tests/test_simulator.py --sim-seeds 10000       # the sweep CI runs
    .venv/bin/pytest tests/test_simulator.py::test_replay -s --sim-seed 558   # one, traced
    .venv/bin/pytest tests/test_simulator.py::test_replay -s --sim-seed NAME  # a scenario

Seeds from ``REDIS_SEED_BASE`` on run on the real ``RedisStore`` and a real redis-server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
import redis_server as redis_helper
from sim.plan import SWEEP_EXCLUDED, Fault, Plan, Request, Worker, sweep_plan
from sim.run import FIGURES, Outcome, format_trace, run, shrink

CHUNK = 50
REDIS_SEED_BASE = 1_000_000
REDIS_SHARE = 50  # one real-Redis schedule per this many sweep schedules
SHRINK_BUDGET = 150
REPLAY = ".venv/bin/pytest tests/test_simulator.py::test_replay --sim-seed {} -s"


class KnownBug(AssertionError):
    """A named scenario broke the invariant it is known to break (an xfail until fixed)."""


@dataclass(frozen=True)
class Named:
    """A regression scenario: its seed (the scheduler's choices), its plan, and, while the
    bug lives, the invariant it breaks today."""

    seed: int
    plan: Plan
    breaks: str = ""
    why: str = ""


def _two(*requests: tuple[float, str]) -> tuple[Request, ...]:
    return tuple(Request(at, kind) for at, kind in requests)


# A sidecar as keep-fresh runs one: its requests, and a check of the store every second.
_SIDECAR = (
    *_two((10.0, "plain"), (150.0, "plain")),
    *(Request(150.5 + step, "check") for step in range(180)),
)

NAMED: dict[str, Named] = {
    # Issue 22 item 1: the sidecar refreshed at 150 s; Redis comes back at 200 s from a
    # snapshot taken before (the older login, its older version, no mark). The worker, whose
    # version equals the snapshot's, notices nothing and spends the rolled-back token at 320 s.
    "redis-restored-from-older-snapshot": Named(
        seed=1,
        plan=Plan(
            "model-redis",
            workers=(
                Worker("sidecar", _SIDECAR, threshold=500.0),
                Worker("worker", _two((20.0, "plain"), (320.0, "plain"))),
            ),
            faults=(Fault("snapshot", at=200.0, age=100.0),),
        ),
        # Fixed: the sidecar (keep-fresh) checks the store each second and puts its newer
        # login back on the first check after the rollback.
    ),
    # The same rollback while the holder of the newer login makes no request: a worker that
    # holds only the older login cannot know it is old (a documented limit, docs/fleets.md).
    "redis-restored-from-older-snapshot-idle-holder": Named(
        seed=1,
        plan=Plan(
            "model-redis",
            workers=(
                Worker("sidecar", _two((10.0, "plain"), (150.0, "plain")), threshold=500.0),
                Worker("worker", _two((20.0, "plain"), (320.0, "plain"))),
            ),
            faults=(Fault("snapshot", at=200.0, age=100.0),),
        ),
        breaks="1-refresh-token-once",
        why="issue 22 item 1, the limit: a holder of the newer login that never looks",
    ),
    # Issue 22 item 2: A's refresh POST takes 3 s from 310 s; Redis restarts empty at 310.5 s;
    # B gets a 401, writes its (A's old) login back, waits the 2 s grace and POSTs the same
    # refresh token while A's POST is still in flight.
    "redis-restarted-empty-during-refresh": Named(
        seed=2,
        plan=Plan(
            "model-redis",
            workers=(
                Worker("a", _two((10.0, "plain"), (310.0, "plain"))),
                Worker("b", _two((20.0, "plain"), (310.6, "reject"))),
            ),
            faults=(Fault("slow", at=309.0, duration=1.5, delay=3.0), Fault("flush", at=310.5)),
        ),
        # Fixed: a written-back login is spent only after the refresh timeout.
    ),
    # Issue 22 item 3: A holds a 5 s lease and POSTs (10 s) at 310 s; Redis stalls 311-318 s,
    # so the lease is not renewed and runs out at 315 s; B takes it at 318.5 s and POSTs the
    # same refresh token while A's POST is still in flight.
    "redis-stall-longer-than-lease": Named(
        seed=3,
        plan=Plan(
            "model-redis",
            workers=(
                Worker("a", _two((10.0, "plain"), (310.0, "plain"))),
                Worker("b", _two((20.0, "plain"), (318.5, "plain"))),
            ),
            faults=(
                Fault("slow", at=309.0, duration=1.5, delay=10.0),
                Fault("stall", at=311.0, duration=7.0),
            ),
            lease_seconds=5.0,
        ),
        # Fixed: before the POST the lease is extended to outlast it (``extend_lock``).
    ),
    # Found by the sweep (seeds 558, 2089, 2187, ... shrunk): "old" refreshed at 380 s, "new"
    # at 820 s; Redis restarts empty at 960 s while "new" is idle (its token is fresh, so it
    # asks Redis nothing). At 1160 s "old" writes its older login back, waits the 2 s grace
    # (nobody replaces it: "new" makes no request) and spends a refresh token "new" spent.
    "redis-flushed-while-newer-holder-idle": Named(
        seed=558,
        plan=Plan(
            "model-redis",
            workers=(
                Worker("old", _two((380.0, "plain"), (1160.0, "plain"))),
                Worker(
                    "new",
                    _two(
                        (820.0, "plain"),
                    ),
                ),
            ),
            faults=(Fault("flush", at=960.0),),
        ),
        breaks="1-refresh-token-once",
        why="a written-back login is spent once its wait (the refresh timeout) ends, though "
        "the worker holding the newer login made no request in it (a wait, not a proof)",
    ),
}
for _name, _named in list(NAMED.items()):
    NAMED[f"{_name}-real-redis"] = replace(_named, plan=replace(_named.plan, backend="real-redis"))


def _claude_code(*times: float, at_step: int = 0, stale: float = 10.0) -> Fault:
    """Claude Code itself, making requests at ``times`` (killed at its own step ``at_step``)."""
    return Fault("claude_code", at=times[0], times=times, at_step=at_step, stale=stale)


# Our worker refreshes at 300 s (lifetime 600 s, threshold 300 s); Claude Code needs the same
# refresh at the same moment. The refresh locks go to one of them (Claude Code with seed 1, our
# worker with seed 2); the other waits (we poll, Claude Code backs off 1-2 s), re-reads the file
# under the locks and takes the new login: one POST.
_AT_ONCE = Plan(
    "claude-code",
    workers=(Worker("w", _two((10.0, "plain"), (300.0, "plain"))),),
    faults=(_claude_code(20.0, 300.0),),
)
# Claude Code is killed after taking both refresh locks (its 4th step) at 300 s: we wait until
# they are stale (10 s untouched; for a 2.1.336 that would wait 60 s, we still take them at 10 s)
# and refresh.
_CLAUDE_KILLED = Plan(
    "claude-code",
    workers=(Worker("w", _two((10.0, "plain"), (300.5, "plain"))),),
    faults=(_claude_code(20.0, 300.0, at_step=4),),
)
# Claude Code refreshes at 300 s and is killed after its write, holding its write lock: our
# forced refresh at 301 s waits for the write lock to be stale (15 s) to save.
_CLAUDE_KILLED_WRITING = Plan(
    "claude-code",
    workers=(Worker("w", _two((10.0, "plain"), (301.0, "force"))),),
    faults=(_claude_code(20.0, 300.0, at_step=8),),
)
# Our worker is killed (global step 16) with its POST in flight (slow endpoint), holding Claude
# Code's locks; Claude Code tries 6 times 1-2 s apart, gives up for that request, and takes the
# locks over on a later one, once they are stale (10 s; 60 s for 2.1.336).
_OURS_KILLED = Plan(
    "claude-code",
    workers=(Worker("w", _two((10.0, "plain"), (300.0, "plain"))),),
    faults=(
        Fault("slow", at=299.0, duration=2.0, delay=5.0),
        Fault("kill", target="w", at_step=16),
        _claude_code(20.0, 302.0, 306.0, 313.0, 330.0, 365.0),
    ),
)
# Our worker holds every lock and has read the file at 300 s when its process is paused for
# 12 s (SIGSTOP, a suspended VM), its keep-fresh thread with it. At 310.5 s Claude Code finds
# the refresh locks untouched for 10 s, takes them over and POSTs (slow: 5 s).
_PAUSED = Plan(
    "claude-code",
    workers=(Worker("w", _two((10.0, "plain"), (300.0, "plain"))),),
    faults=(
        Fault("pause", target="w", at_step=1, duration=12.0),
        Fault("slow", at=305.0, duration=20.0, delay=5.0),
        _claude_code(20.0, 301.0, 303.0, 305.0, 307.0, 309.0, 311.0, 313.0),
    ),
)
# A token file put back from a backup eleven refreshes old (older than the eight spent
# refresh tokens any process remembers): generations tell it is older.
_ELEVEN_REFRESHES = tuple(Request(10.0 * step, "force") for step in range(1, 13))
NAMED.update(
    {
        # The service holding the newest login reads the file at its next request (140 s),
        # finds an older generation of its chain, and writes its own back; it used to adopt
        # the backup and spend its refresh token at 200 s.
        "file-restored-from-backup-many-refreshes-old": Named(
            seed=1,
            plan=Plan(
                "file",
                workers=(
                    Worker(
                        "service", (*_ELEVEN_REFRESHES, *_two((140.0, "plain"), (200.0, "force")))
                    ),
                ),
                faults=(Fault("snapshot", at=130.0, age=105.0),),
            ),
        ),
        # A process that starts after the restore (200 s) holds no newer login, but the last
        # generation saved is in the state file beside it: it stops without a POST; the
        # service writes its login back at its next request (300 s).
        "file-restored-from-backup-then-a-new-process": Named(
            seed=1,
            plan=Plan(
                "file",
                workers=(
                    Worker(
                        "service", (*_ELEVEN_REFRESHES, *_two((300.0, "plain"), (310.0, "force")))
                    ),
                    Worker("cron", _two((200.0, "force"), (320.0, "force"))),
                ),
                faults=(Fault("snapshot", at=130.0, age=105.0),),
            ),
        ),
    }
)
NAMED.update(
    {
        # Paused at its first store call under the locks: on resuming, its keep-fresh thread
        # runs before its check, which says the locks were lost: it takes them again, waits
        # for Claude Code, and uses Claude Code's new login (one POST).
        "worker-paused-past-stale-notices-lost-locks": Named(seed=1, plan=_PAUSED),
        # Paused at its check itself (global step 13): resuming, the check runs before the
        # keep-fresh thread has looked. It answered from that thread's last touch and said
        # yes, and the worker POSTed the refresh token Claude Code had spent (a reuse: the
        # login was revoked). It now looks at the lock directories: lost, so it takes them again.
        "worker-paused-past-stale-at-its-lock-check": Named(
            seed=1,
            plan=replace(
                _PAUSED, faults=(replace(_PAUSED.faults[0], at_step=13), *_PAUSED.faults[1:])
            ),
        ),
        "claude-code-and-worker-refresh-at-once": Named(seed=1, plan=_AT_ONCE),
        "claude-code-and-worker-refresh-at-once-worker-first": Named(seed=2, plan=_AT_ONCE),
        "claude-code-killed-holding-its-refresh-locks": Named(seed=1, plan=_CLAUDE_KILLED),
        "claude-code-2.1.336-killed-holding-its-refresh-locks": Named(
            seed=1,
            plan=replace(
                _CLAUDE_KILLED, faults=(_claude_code(20.0, 300.0, at_step=4, stale=60.0),)
            ),
        ),
        "claude-code-killed-holding-its-write-lock": Named(seed=1, plan=_CLAUDE_KILLED_WRITING),
        "worker-killed-holding-claude-code-locks": Named(seed=1, plan=_OURS_KILLED),
        "worker-killed-holding-claude-code-2.1.336-locks": Named(
            seed=1,
            plan=replace(
                _OURS_KILLED,
                faults=(*_OURS_KILLED.faults[:2], replace(_OURS_KILLED.faults[2], stale=60.0)),
            ),
        ),
    }
)


# ----- the sweep ---------------------------------------------------------------------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    count = int(metafunc.config.getoption("--sim-seeds"))
    if "seeds" in metafunc.fixturenames:
        chunks = [range(start, min(start + CHUNK, count)) for start in range(0, count, CHUNK)]
        ids = [f"{chunk.start}-{chunk.stop - 1}" for chunk in chunks]
        metafunc.parametrize("seeds", chunks, ids=ids)
    if "redis_seeds" in metafunc.fixturenames:
        total = max(4, count // REDIS_SHARE)
        chunk = max(1, CHUNK // 5)
        chunks = [
            range(REDIS_SEED_BASE + start, REDIS_SEED_BASE + min(start + chunk, total))
            for start in range(0, total, chunk)
        ]
        metafunc.parametrize("redis_seeds", chunks, ids=[f"{c.start}-{c.stop - 1}" for c in chunks])


@pytest.fixture(scope="module")
def sim_redis() -> Iterator[str]:
    """One redis-server for the module's real-Redis schedules (each on its own key)."""
    with redis_helper.redis_server() as server:
        yield server.url


def _plan_of(seed: int) -> Plan:
    return sweep_plan(seed, "real-redis" if seed >= REDIS_SEED_BASE else None)


def _report(outcome: Outcome, redis_url: str | None, replay: str) -> str:
    assert outcome.violation is not None
    violation = outcome.violation

    def again(seed: int, plan: Plan) -> Outcome:
        return run(seed, plan, redis_url=redis_url)

    small = shrink(outcome.seed, outcome.plan, violation.invariant, again, SHRINK_BUDGET)
    shown = small or outcome
    return (
        f"seed={outcome.seed} backend={outcome.plan.backend} invariant={violation.invariant}\n"
        f"{violation.detail}\n"
        f"replay: {REPLAY.format(replay)}\n"
        f"shrunk to {len(shown.trace)} steps: {shown.plan!r}\n"
        f"{shown.violation}\n{format_trace(shown.trace, 80)}"
    )


def _sweep(seeds: range, redis_url: str | None) -> None:
    failing = []
    for seed in seeds:
        outcome = run(seed, _plan_of(seed), redis_url=redis_url)
        if outcome.violation is not None:
            failing.append(outcome)
    if failing:
        FIGURES.failures += len(failing)
        others = ", ".join(str(outcome.seed) for outcome in failing[1:])
        report = _report(failing[0], redis_url, str(failing[0].seed))
        pytest.fail(report + (f"\nalso failing: seeds {others}" if others else ""), False)


def test_sweep(seeds: range) -> None:
    """Random schedules on the Redis model and the real FileStore: every invariant holds."""
    _sweep(seeds, None)


def test_sweep_real_redis(redis_seeds: range, sim_redis: str) -> None:
    """Fewer schedules on the real RedisStore against a real redis-server."""
    _sweep(redis_seeds, sim_redis)


# ----- named scenarios ---------------------------------------------------------------------------


def _named_params() -> list[object]:
    params: list[object] = []
    for name, named in NAMED.items():
        marks = []
        if named.breaks:
            marks.append(pytest.mark.xfail(strict=True, raises=KnownBug, reason=named.why))
        params.append(pytest.param(name, marks=marks, id=name))
    return params


def _run_named(name: str, request: pytest.FixtureRequest) -> Outcome:
    named = NAMED[name]
    url = request.getfixturevalue("sim_redis") if named.plan.backend == "real-redis" else None
    return run(named.seed, named.plan, redis_url=url)


@pytest.mark.parametrize("name", _named_params())
def test_named(name: str, request: pytest.FixtureRequest) -> None:
    """Each named scenario holds every invariant (or, while its bug lives, breaks its own)."""
    named = NAMED[name]
    outcome = _run_named(name, request)
    if outcome.violation is None:
        return
    report = (
        f"{name}: seed={named.seed} invariant={outcome.violation.invariant}\n"
        f"{outcome.violation.detail}\nreplay: {REPLAY.format(name)}\n"
        f"{format_trace(outcome.trace, 80)}"
    )
    if outcome.violation.invariant == named.breaks:
        raise KnownBug(report)
    pytest.fail(report, False)


# ----- determinism, replay, figures --------------------------------------------------------------


def test_one_seed_is_one_run() -> None:
    """The same seed gives the same trace, step for step (the real FileStore included)."""
    file_seed = next(seed for seed in range(100) if sweep_plan(seed).backend == "file")
    claude_seeds = [seed for seed in range(100) if sweep_plan(seed).backend == "claude-code"]
    for seed in (7, 11, 558, file_seed, *claude_seeds[:2]):
        plan = sweep_plan(seed)
        first, second = run(seed, plan), run(seed, plan)
        assert first.trace == second.trace
        assert len(first.trace) > 20


def test_excluded_fault_kinds_are_pinned_by_named_scenarios() -> None:
    """A fault kind left out of the sweep stays covered by a named (xfail) scenario."""
    covered = {kind for named in NAMED.values() if named.breaks for kind in _kinds(named.plan)}
    assert set(SWEEP_EXCLUDED) <= covered


def _kinds(plan: Plan) -> list[str]:
    return [fault.kind for fault in plan.faults]


def test_replay(request: pytest.FixtureRequest) -> None:
    """``--sim-seed N`` (or a scenario's name): run it once more and print its whole trace."""
    chosen = request.config.getoption("--sim-seed")
    if chosen is None:
        pytest.skip("pass --sim-seed N (or a named scenario) to replay it")
    if chosen in NAMED:
        outcome = _run_named(chosen, request)
    else:
        seed = int(chosen)
        url = request.getfixturevalue("sim_redis") if seed >= REDIS_SEED_BASE else None
        outcome = run(seed, _plan_of(seed), redis_url=url)
    print(f"\nplan: {outcome.plan!r}\n{format_trace(outcome.trace)}")
    print(f"outcomes: {outcome.outcomes}; login lost, not our bug: {outcome.lost or 'no'}")
    if outcome.violation is not None:
        pytest.fail(f"seed={outcome.seed} {outcome.violation}", False)


class _FiguresLine:
    """Prints the simulator's figures after pytest's own summary (the last line of output)."""

    def __init__(self) -> None:
        self.began = time.perf_counter()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and FIGURES.schedules:
            wall = time.perf_counter() - self.began
            reporter.write_line(f"{FIGURES.line()} ({wall:.1f} s with pytest)")


@pytest.fixture(scope="module", autouse=True)
def _figures(request: pytest.FixtureRequest) -> None:
    manager = request.config.pluginmanager
    if not manager.has_plugin("sim-figures"):
        manager.register(_FiguresLine(), "sim-figures")
