"""Memory: resident set size added by ``import claude_oauth_auth`` + ``get_auth_status()``.

Each sample is a fresh interpreter that reads its own ``VmRSS`` from ``/proc/self/status``
before and after the work (and ``VmHWM``, the peak). The SDK import is measured the same way
for scale. Linux only (``/proc``).

Usage: python benchmarks/memory.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import _harness

PROBE = r"""
import json, sys

def rss_kib():
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])

before, _ = rss_kib()
if sys.argv[1] == "ours":
    import claude_oauth_auth
    after_import, _ = rss_kib()
    claude_oauth_auth.get_auth_status()
else:
    import anthropic
    after_import, _ = rss_kib()
after, peak = rss_kib()
print(json.dumps({
    "baseline_kib": before, "import_kib": after_import - before, "total_kib": after - before,
    "peak_kib": peak, "anthropic_loaded": "anthropic" in sys.modules,
}))
"""


def sample(which: str, environment: dict[str, str]) -> dict[str, int]:
    output = subprocess.run(
        [sys.executable, "-c", PROBE, which],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, int] = json.loads(output)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    options = parser.parse_args()

    with _harness.isolated_home() as home:
        _harness.write_cold_start_credentials(home)
        environment = _harness.clean_environment(
            home, ANTHROPIC_API_KEY=_harness.COLD_START_API_KEY
        )
        samples: dict[str, list[dict[str, int]]] = {"ours": [], "sdk": []}
        for _ in range(options.runs):
            for which in samples:
                samples[which].append(sample(which, environment))

    def summary(which: str) -> dict[str, float]:
        rows = samples[which]
        return {
            key: _harness.median(row[key] for row in rows)
            for key in ("baseline_kib", "import_kib", "total_kib", "peak_kib")
        }

    ours, sdk = summary("ours"), summary("sdk")
    _harness.emit(
        {
            "benchmark": "memory",
            "runs": options.runs,
            "ours_import_plus_get_auth_status": ours,
            "sdk_import": sdk,
            "ours_added_mib": round(ours["total_kib"] / 1024, 2),
            "sdk_import_added_mib": round(sdk["total_kib"] / 1024, 2),
            "ours_loaded_anthropic": any(row["anthropic_loaded"] for row in samples["ours"]),
            "machine": _harness.machine(),
        }
    )


if __name__ == "__main__":
    main()
