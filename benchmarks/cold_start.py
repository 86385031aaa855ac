"""Cold start: our import + status vs importing the SDK, each in a fresh interpreter.

Commands, run interleaved for ``--rounds`` rounds in a HOME holding an OAuth token file and
with ``ANTHROPIC_API_KEY`` set (so status walks every source and finds both):

* ``python -c "pass"`` (the interpreter alone, for reference);
* ``python -c "import anthropic"``;
* ``python -c "import claude_oauth_auth; claude_oauth_auth.get_auth_status()"``;
* ``claude-oauth-auth status`` (the console script).

Reported per command: median wall time and median CPU time (user + system, from ``wait4``),
and each of ours as a fraction of the SDK import. CPU time is the steadier figure on a
loaded machine. A separate check confirms our commands never import ``anthropic``.

Usage: python benchmarks/cold_start.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import _harness

STATUS_SNIPPET = "import claude_oauth_auth; claude_oauth_auth.get_auth_status()"
NO_SDK_CHECK = (
    "import sys, claude_oauth_auth; claude_oauth_auth.get_auth_status(); "
    "from claude_oauth_auth import cli; import contextlib, io\n"
    "with contextlib.redirect_stdout(io.StringIO()): cli.main(['status'])\n"
    "print('anthropic' in sys.modules)"
)


def commands() -> dict[str, list[str]]:
    script = Path(sys.executable).with_name("claude-oauth-auth")
    return {
        "python_startup": [sys.executable, "-c", "pass"],
        "import_anthropic": [sys.executable, "-c", "import anthropic"],
        "import_and_get_auth_status": [sys.executable, "-c", STATUS_SNIPPET],
        "cli_status": [str(script), "status"],
    }


def run_once(command: list[str], environment: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one run of ``command``."""
    start = time.perf_counter()
    child = subprocess.Popen(
        command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _pid, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode not in (0, 1):  # status exits 1 when nothing usable is found
        raise RuntimeError(f"{command} exited {child.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    options = parser.parse_args()

    with _harness.isolated_home() as home:
        _harness.write_cold_start_credentials(home)
        environment = _harness.clean_environment(
            home, ANTHROPIC_API_KEY=_harness.COLD_START_API_KEY, PYTHONDONTWRITEBYTECODE="1"
        )
        check = subprocess.run(
            [sys.executable, "-c", NO_SDK_CHECK],
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        )
        imports_anthropic = check.stdout.strip().splitlines()[-1] == "True"

        todo = commands()
        for command in todo.values():  # warm the page cache and .pyc files
            run_once(command, environment)
        wall: dict[str, list[float]] = {name: [] for name in todo}
        cpu: dict[str, list[float]] = {name: [] for name in todo}
        names = list(todo)
        for round_number in range(options.rounds):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                wall_seconds, cpu_seconds = run_once(todo[name], environment)
                wall[name].append(wall_seconds)
                cpu[name].append(cpu_seconds)

    results = {
        name: {
            "wall_ms": _harness.describe(wall[name], 1e3, 1),
            "cpu_ms": _harness.describe(cpu[name], 1e3, 1),
        }
        for name in names
    }

    def fraction(name: str, kind: str) -> float:
        key = f"{kind}_ms"
        return round(results[name][key]["median"] / results["import_anthropic"][key]["median"], 3)

    _harness.emit(
        {
            "benchmark": "cold_start",
            "rounds": options.rounds,
            "results": results,
            "fraction_of_sdk_import": {
                name: {"wall": fraction(name, "wall"), "cpu": fraction(name, "cpu")}
                for name in ("import_and_get_auth_status", "cli_status", "python_startup")
            },
            "target_fraction": 0.15,
            "our_commands_import_anthropic": imports_anthropic,
            "machine": _harness.machine(),
        }
    )


if __name__ == "__main__":
    main()
