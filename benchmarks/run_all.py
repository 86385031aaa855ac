"""Run every benchmark, one after the other, and print the README table (or the raw JSON).

Usage: python benchmarks/run_all.py [--json results.json] [--quick]

``--quick`` uses small counts (a smoke test, not figures to quote).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

FULL: dict[str, list[str]] = {
    "request_overhead": ["--calls", "2000", "--batch", "50"],
    "token_check": ["--batches", "300", "--batch-size", "1000"],
    "cold_start": ["--rounds", "15"],
    "memory": ["--runs", "7"],
    "refresh_storm": [],
    "fleet_storm": [],
}
QUICK: dict[str, list[str]] = {
    "request_overhead": ["--calls", "200", "--batch", "20", "--warmup", "10"],
    "token_check": ["--batches", "20"],
    "cold_start": ["--rounds", "2"],
    "memory": ["--runs", "1"],
    "refresh_storm": ["--only", "threads_shared_client"],
    "fleet_storm": ["--hosts", "2", "--processes", "2", "--threads", "2"],
}


def run(name: str, arguments: list[str]) -> dict[str, Any]:
    print(f"running {name} {' '.join(arguments)}", file=sys.stderr, flush=True)
    output = subprocess.run(
        [sys.executable, str(HERE / f"{name}.py"), *arguments],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, Any] = json.loads(output)
    return result


def mark(ok: bool) -> str:
    return "met" if ok else "**missed**"


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| Benchmark | Ours | Plain SDK | Ratio | Target | |",
        "|---|---|---|---|---|---|",
    ]
    overhead = results.get("request_overhead")
    if overhead:
        calls = overhead["calls_per_client"]
        loopback = overhead["loopback"]
        clients = loopback["clients"]

        def us(name: str, kind: str, where: dict[str, Any] = clients) -> str:
            return f"{where[name][kind]['median']:.0f}"

        def pair(values: dict[str, float]) -> str:
            return f"{values['vs_sdk_static_credentials']:.3f} / {values['vs_sdk_api_key']:.3f}"

        def verdict(values: dict[str, float]) -> str:
            return mark(max(values.values()) <= 1.02)

        wall, cpu = loopback["wall_ratio"], loopback["cpu_ratio"]
        lines += [
            f"| Per request, loopback: median wall time of {calls} sequential "
            f"`messages.create` (vs `credentials=StaticToken` / vs `api_key=`) "
            f"| {us('claude_client_oauth', 'wall_us')} µs "
            f"| {us('sdk_static_credentials', 'wall_us')} / {us('sdk_api_key', 'wall_us')} µs "
            f"| {pair(wall['median'])} | ≤ 1.02 | {verdict(wall['median'])} |",
            f"| Per request, loopback: median over {overhead['rounds']} interleaved rounds of "
            f"the per-round wall-time ratio | | | {pair(wall['paired_rounds'])} | ≤ 1.02 "
            f"| {verdict(wall['paired_rounds'])} |",
            f"| Per request, loopback: median CPU time of the client process "
            f"| {us('claude_client_oauth', 'cpu_us')} µs "
            f"| {us('sdk_static_credentials', 'cpu_us')} / {us('sdk_api_key', 'cpu_us')} µs "
            f"| {pair(cpu['median'])} | ≤ 1.02 | {verdict(cpu['median'])} |",
        ]
        only = overhead["client_only"]
        only_cpu = only["cpu_ratio"]["median"]
        lines.append(
            f"| Per request, client side only (in-process `MockTransport`): median CPU time "
            f"| {us('claude_client_oauth', 'cpu_us', only['clients'])} µs "
            f"(+{only['added_cpu_us_vs_sdk_static_credentials']:.0f} µs) "
            f"| {us('sdk_static_credentials', 'cpu_us', only['clients'])} / "
            f"{us('sdk_api_key', 'cpu_us', only['clients'])} µs "
            f"| {pair(only_cpu)} | ≤ 1.02 | {verdict(only_cpu)} |"
        )
    check = results.get("token_check")
    if check:
        rows = check["results"]
        ours_us = check["provider_call_median_us"]
        lines.append(
            f"| Token check: `manager(force_refresh=False)`, fresh token, median per call "
            f"| {ours_us:.1f} µs | `StaticToken()` {rows['sdk StaticToken()']['median']:.1f} µs "
            f"| — | ≤ 20 µs | {mark(ours_us <= 20)} |"
        )
    cold = results.get("cold_start")
    if cold:
        rows = cold["results"]
        sdk_wall = rows["import_anthropic"]["wall_ms"]["median"]
        sdk_cpu = rows["import_anthropic"]["cpu_ms"]["median"]
        labels = {
            "import_and_get_auth_status": "Cold start: import + `get_auth_status()`",
            "cli_status": "Cold start: `claude-oauth-auth status`",
        }
        for name, label in labels.items():
            fraction = cold["fraction_of_sdk_import"][name]
            lines.append(
                f"| {label} (wall; CPU) | {rows[name]['wall_ms']['median']:.0f} ms; "
                f"{rows[name]['cpu_ms']['median']:.0f} ms "
                f"| `import anthropic` {sdk_wall:.0f} ms; {sdk_cpu:.0f} ms "
                f"| {fraction['wall']:.3f}; {fraction['cpu']:.3f} | ≤ 0.15 "
                f"| {mark(max(fraction.values()) <= 0.15)} |"
            )
    memory = results.get("memory")
    if memory:
        lines.append(
            f"| Memory: RSS added by import + `get_auth_status()` | {memory['ours_added_mib']} MiB "
            f"| `import anthropic` {memory['sdk_import_added_mib']} MiB "
            f"| {memory['ours_added_mib'] / memory['sdk_import_added_mib']:.3f} | — | |"
        )
    storm = results.get("refresh_storm")
    if storm:
        lines += [
            "",
            f"Refresh storm (expired token, single-use refresh tokens, "
            f"{storm['refresh_latency_seconds']} s refresh latency; `max_retries=2`):",
            "",
            "| Load | Ours: POSTs / `invalid_grant` / failed | SDK `user_oauth`: POSTs / "
            "`invalid_grant` / failed | Login survives (ours / SDK) | Target (ours) | |",
            "|---|---|---|---|---|---|",
        ]
        labels = {
            "threads_shared_client": "64 threads, one shared client",
            "threads_client_each": "64 threads, a client each",
            "coroutines_shared_client": "500 coroutines, one `AsyncAnthropic`",
            "processes": "16 processes, a client each",
        }
        for load, sides in storm["results"].items():
            ours, sdk = sides["ours"], sides["sdk"]

            def triple(side: dict[str, Any]) -> str:
                return (
                    f"{side['token_posts']} / {side['invalid_grant']} / {side['failed_requests']}"
                )

            ok = (ours["token_posts"], ours["invalid_grant"], ours["failed_requests"]) == (1, 0, 0)
            lines.append(
                f"| {labels.get(load, load)} | {triple(ours)} | {triple(sdk)} "
                f"| {'yes' if ours['login_survives'] else 'no'} / "
                f"{'yes' if sdk['login_survives'] else 'no'} | 1 / 0 / 0 | {mark(ok)} |"
            )
    fleet = results.get("fleet_storm")
    if fleet:
        lines += [
            "",
            f"Fleet storm ({fleet['hosts']} hosts x {fleet['processes_per_host']} processes x "
            f"{fleet['threads_per_process']} threads, expired token, "
            f"{fleet['refresh_latency_seconds']} s refresh latency):",
            "",
            "| One login as | POSTs / `invalid_grant` / failed | Stored logins alive | Target | |",
            "|---|---|---|---|---|",
        ]
        for side, label in (("redis", "one `RedisStore`"), ("copied_files", "a file per host")):
            row = fleet["results"][side]
            triple = f"{row['token_posts']} / {row['invalid_grant']} / {row['failed_requests']}"
            ok = (row["token_posts"], row["invalid_grant"], row["failed_requests"]) == (1, 0, 0)
            target = "1 / 0 / 0" if side == "redis" else "—"
            verdict = mark(ok) if side == "redis" else ""
            lines.append(
                f"| {label} | {triple} | {row['stored_logins_alive']} of "
                f"{row['stored_logins']} | {target} | {verdict} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write every script's JSON here")
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke test")
    options = parser.parse_args()
    plan = QUICK if options.quick else FULL
    results = {name: run(name, arguments) for name, arguments in plan.items()}
    if options.json:
        options.json.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
