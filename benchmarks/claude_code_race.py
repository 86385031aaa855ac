"""Claude Code itself against this library: K ``claude -p`` and M of ours on one expired login.

Each round writes Claude Code's credentials file (``~/.claude/.credentials.json`` in a
temporary ``HOME``) with an expired access token, then starts K real ``claude -p hi``
processes and releases M Python processes, each building ``ClaudeClient()`` (zero
configuration: the cascade finds the same file) and sending one ``messages.create``. Every
side must refresh first, and the refresh token is single-use.

Nothing leaves the machine. The fake API (``tests/fakeapi.py``) runs in this process on
127.0.0.1; our processes reach it through ``base_url=`` and ``CLAUDE_OAUTH_TOKEN_URL``.
Claude Code keeps its own hosts (``api.anthropic.com``, ``platform.claude.com``) and reaches
them through ``HTTPS_PROXY``: a local ``mitmdump`` with its own CA (``NODE_EXTRA_CA_CERTS``),
``connection_strategy=lazy`` and ``upstream_cert=false`` so it never dials a real host, and an
addon (``_claude_proxy_addon.py``) that sends every request to the fake.

Per round: token POSTs (by side), ``invalid_grant`` answers, failed processes on each side,
and whether the login left in the file still works (its refresh token is one the fake would
accept). The next round starts from that login, expired again (a fresh one if it died).
Our processes are released around the moment Claude Code reaches the network: the median
delay from its start to its first request (a warm-up ``claude -p`` on a fresh login) or to its
token POST (every round so far where it sent one), plus an offset drawn per round from
``--offset`` (default within one refresh latency either side), so that the two refreshes
overlap whatever the machine's load and both orders of arrival are covered.

Needs the Claude Code binary (``CLAUDE_CODE_BINARY``, else ``.claude-cli/`` as ``.ci/run``
installs it from npm, else ``claude`` on ``PATH``) and ``mitmdump`` (``MITMDUMP``, else beside
this interpreter, else in ``.venv-claude-cli/``, else on ``PATH``). mitmproxy gets a venv of its
own: on Python 3.11 it pins ``h11<=0.14``, and ``anthropic``'s ``httpcore2`` needs ``h11>=0.16``.

Usage: python benchmarks/claude_code_race.py [--rounds 20] [--claude 2] [--ours 4]
       [--latency 0.5] [--offset -0.5 0.5] [--seed 1] [--json FILE]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from fakeapi import REPLY_TEXT, FakeAnthropic  # noqa: E402
from helpers import ISOLATED_VARIABLES  # noqa: E402

ADDON = Path(__file__).resolve().parent / "_claude_proxy_addon.py"
MITM_VENV = ROOT / ".venv-claude-cli"  # mitmproxy's own venv: its pins clash with anthropic's
NPM_BINARY = ROOT / ".claude-cli" / "node_modules" / "@anthropic-ai" / "claude-code-linux-x64"
CLAUDE_MODEL = "claude-haiku-4-5"
SCOPES = ["user:inference", "user:profile", "user:sessions:claude_code"]
PROCESS_TIMEOUT = 90.0

CHILD = r"""
import json, os, sys, time
go_file, base_url, model = sys.argv[1:4]
import anthropic
from claude_oauth_auth import ClaudeClient
print("ready", flush=True)
while not os.path.exists(go_file):
    time.sleep(0.002)
try:
    client = ClaudeClient(base_url=base_url, max_retries=2)
    client.messages.create(model=model, max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    print(json.dumps({"error": None}), flush=True)
except Exception as error:
    print(json.dumps({"error": f"{type(error).__name__}: {str(error)[:300]}"}), flush=True)
"""


def find_claude() -> Path | None:
    """The Claude Code executable, or None."""
    named = os.environ.get("CLAUDE_CODE_BINARY")
    if named:
        return Path(named) if os.access(named, os.X_OK) else None
    if os.access(NPM_BINARY / "claude", os.X_OK):
        return NPM_BINARY / "claude"
    found = shutil.which("claude")
    return Path(found) if found else None


def find_mitmdump() -> Path | None:
    """The ``mitmdump`` executable, or None."""
    named = os.environ.get("MITMDUMP")
    if named:
        return Path(named) if os.access(named, os.X_OK) else None
    for candidate in (Path(sys.executable).parent / "mitmdump", MITM_VENV / "bin" / "mitmdump"):
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("mitmdump")
    return Path(found) if found else None


def claude_version(claude: Path) -> str:
    done = subprocess.run(
        [str(claude), "--version"], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def proxy(mitmdump: Path, upstream: str, folder: Path) -> Iterator[tuple[str, Path, Path]]:
    """Run mitmdump in front of ``upstream`` (``host:port``); yield (proxy URL, CA file, log)."""
    port = _free_port()
    confdir = folder / "mitmproxy"
    log = folder / "proxy.log"
    errors = folder / "mitmdump.out"
    environment = {**os.environ, "FAKE_UPSTREAM": upstream, "PROXY_LOG": str(log)}
    command = [
        str(mitmdump),
        "--quiet",
        "--listen-host=127.0.0.1",
        f"--listen-port={port}",
        "--set",
        f"confdir={confdir}",
        "--set",
        "connection_strategy=lazy",
        "--set",
        "upstream_cert=false",
        "-s",
        str(ADDON),
    ]
    with errors.open("w") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=environment
        )
    ca_file = confdir / "mitmproxy-ca-cert.pem"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"mitmdump exited: {errors.read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                if ca_file.exists():
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("mitmdump did not start listening within 60 s")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", ca_file, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Round:
    """What one round cost."""

    offset: float
    release: float = 0.0
    claude_first_request: float | None = None
    token_posts: int = 0
    claude_posts: int = 0
    our_posts: int = 0
    invalid_grants: int = 0
    claude_failures: list[str] = field(default_factory=list)
    our_failures: list[str] = field(default_factory=list)
    post_seconds: list[tuple[str, float]] = field(default_factory=list)
    login_alive: bool = False
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return (
            self.token_posts == 1
            and self.invalid_grants == 0
            and not self.claude_failures
            and not self.our_failures
            and self.login_alive
        )

    def line(self, number: int) -> str:
        return (
            f"round {number:2d}: ours at {self.release:.2f}s ({self.offset:+.2f})  "
            f"POSTs {self.token_posts} (claude {self.claude_posts}, ours {self.our_posts})  "
            f"invalid_grant {self.invalid_grants}  failed claude {len(self.claude_failures)} "
            f"ours {len(self.our_failures)}  login alive {'yes' if self.login_alive else 'NO'}  "
            f"{self.seconds:.1f}s"
        )


def _finish(process: subprocess.Popen[str]) -> tuple[int | str, str, str]:
    """Wait for a process of the race: (exit code or "timed out", stdout, stderr)."""
    try:
        stdout, stderr = process.communicate(timeout=PROCESS_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        return "timed out", stdout, stderr
    return process.returncode, stdout, stderr


class Race:
    """The fake API, the proxy and a temporary HOME holding Claude Code's login."""

    def __init__(self, claude: Path, mitmdump: Path, *, latency: float = 0.5) -> None:
        self.claude = claude
        self.mitmdump = mitmdump
        self.latency = latency
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Race:
        try:
            self._set_up()
        except BaseException:
            self._stack.close()
            raise
        return self

    def _set_up(self) -> None:
        folder = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="coa-cc-")))
        self.fake = self._stack.enter_context(FakeAnthropic())
        upstream = self.fake.base_url.removeprefix("http://")
        self.proxy_url, self.ca_file, self.proxy_log = self._stack.enter_context(
            proxy(self.mitmdump, upstream, folder)
        )
        self.home = folder / "home"
        self.work = self.home / "work"
        self.work.mkdir(parents=True)
        (self.home / ".claude").mkdir(mode=0o700)
        (self.home / ".claude.json").write_text(json.dumps({"hasCompletedOnboarding": True}))
        self.credentials = self.home / ".claude" / ".credentials.json"
        self._log_position = 0
        self.access, self.refresh = self.fake.issue_tokens(expires_in=3600)
        self._write_login(expires_at=time.time() + 3600)
        self.claude_delays = [self._warm_up()]
        with self.fake.lock:
            self.fake.refresh_latency = self.latency

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    # -- the login --------------------------------------------------------------------------

    def _read_login(self) -> dict[str, Any]:
        try:
            document = json.loads(self.credentials.read_text())
        except (OSError, ValueError):
            return {}
        login = document.get("claudeAiOauth") if isinstance(document, dict) else None
        return login if isinstance(login, dict) else {}

    def login_alive(self) -> bool:
        """The file holds a login the token endpoint would still honour."""
        login = self._read_login()
        refresh = login.get("refreshToken")
        return bool(login.get("accessToken")) and self.fake.refresh_token_usable(refresh)

    def expire_login(self) -> None:
        """Write the current login back, expired (a fresh one if it died); stale tokens fail."""
        login = self._read_login()
        if self.login_alive():
            self.access, self.refresh = login["accessToken"], login["refreshToken"]
        else:
            self.access, self.refresh = self.fake.issue_tokens(expires_in=3600)
        self.fake.revoke_access_token(self.access)
        self._write_login(expires_at=time.time() - 60)

    def _write_login(self, expires_at: float) -> None:
        document = {
            "claudeAiOauth": {
                "accessToken": self.access,
                "refreshToken": self.refresh,
                "expiresAt": int(expires_at * 1000),
                "scopes": SCOPES,
                "subscriptionType": "max",
            }
        }
        temporary = self.credentials.with_name(".credentials.json.race")
        temporary.write_text(json.dumps(document))
        os.chmod(temporary, 0o600)
        os.replace(temporary, self.credentials)

    # -- the processes ----------------------------------------------------------------------

    def claude_environment(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "HTTPS_PROXY": self.proxy_url,
            "https_proxy": self.proxy_url,
            "HTTP_PROXY": self.proxy_url,
            "NODE_EXTRA_CA_CERTS": str(self.ca_file),
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
        }

    def our_environment(self) -> dict[str, str]:
        environment = {k: v for k, v in os.environ.items() if k not in ISOLATED_VARIABLES}
        for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
            environment.pop(name, None)
        environment["HOME"] = str(self.home)
        environment["CLAUDE_OAUTH_TOKEN_URL"] = self.fake.token_url
        return environment

    def _start_ours(self, go_file: Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", CHILD, str(go_file), self.fake.base_url, CLAUDE_MODEL],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=self.our_environment(),
            cwd=self.work,
        )

    def _start_claude(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(self.claude), "-p", "hi", "--model", CLAUDE_MODEL],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=self.claude_environment(),
            cwd=self.work,
        )

    def _first_claude_request(self, since: float) -> float | None:
        """Seconds from ``since`` (``time.time()``) to Claude's first request not yet seen."""
        with contextlib.suppress(OSError), self.proxy_log.open() as log:
            log.seek(self._log_position)
            text = log.read()
            self._log_position = log.tell()
            moments = [json.loads(line)["time"] for line in text.splitlines()]
            return round(min(moments) - since, 3) if moments else None
        return None

    def _warm_up(self) -> float:
        """One ``claude -p`` on a fresh login: does it work here, and how soon does it call?"""
        since = time.time()
        code, stdout, stderr = _finish(self._start_claude())
        delay = self._first_claude_request(since)
        if code != 0 or REPLY_TEXT not in stdout or delay is None:
            raise RuntimeError(
                f"claude -p did not get its answer from the fake API through the proxy "
                f"(exit {code}): {stdout[-1000:]} {stderr[-2000:]}"
            )
        return delay

    def run_round(self, claude_count: int, our_count: int, offset: float) -> Round:
        """One race; ours are released ``offset`` s after Claude's usual token POST."""
        self.expire_login()
        self.fake.reset_counters()
        go_file = self.home / "go"
        go_file.unlink(missing_ok=True)
        processes: list[subprocess.Popen[str]] = []
        try:
            ours = [self._start_ours(go_file) for _ in range(our_count)]
            processes += ours
            for child in ours:
                assert child.stdout is not None
                if child.stdout.readline().strip() != "ready":
                    _, _, stderr = _finish(child)
                    raise RuntimeError(f"our process failed to start: {stderr[-2000:]}")
            release = max(0.0, statistics.median(self.claude_delays) + offset)
            started, started_wall = time.monotonic(), time.time()
            claudes = [self._start_claude() for _ in range(claude_count)]
            processes += claudes
            time.sleep(max(0.0, started + release - time.monotonic()))
            go_file.touch()
            result = Round(offset=round(offset, 3), release=round(release, 3))
            for process in claudes:
                code, stdout, stderr = _finish(process)
                if code != 0 or REPLY_TEXT not in stdout:
                    tail = (stdout.strip() + " | " + stderr.strip())[-300:]
                    result.claude_failures.append(f"exit {code}: {tail}")
            for child in ours:
                code, stdout, stderr = _finish(child)
                lines = stdout.strip().splitlines()
                if code != 0 or not lines:
                    result.our_failures.append(f"exit {code}: {stderr.strip()[-300:]}")
                elif (error := json.loads(lines[-1])["error"]) is not None:
                    result.our_failures.append(error)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.communicate()
        result.seconds = round(time.monotonic() - started, 2)
        with self.fake.lock:
            result.token_posts = self.fake.token_posts
            result.invalid_grants = self.fake.invalid_grants
            for headers, moment in zip(
                self.fake.token_headers, self.fake.token_post_times, strict=True
            ):
                side = "claude" if "axios" in headers.get("user-agent", "") else "ours"
                result.post_seconds.append((side, round(moment - started, 3)))
        result.claude_posts = sum(1 for side, _ in result.post_seconds if side == "claude")
        result.our_posts = result.token_posts - result.claude_posts
        result.login_alive = self.login_alive()
        result.claude_first_request = self._first_claude_request(started_wall)
        # Claude's token POST, not its first request: that one comes late when it waited for a
        # lock we held, and would drift the release later round by round.
        claude_posts = [moment for side, moment in result.post_seconds if side == "claude"]
        if claude_posts:
            self.claude_delays.append(min(claude_posts))
        return result

    def hosts_seen(self) -> dict[str, int]:
        """How many requests Claude Code sent through the proxy, by host and path."""
        counts: collections.Counter[str] = collections.Counter()
        with contextlib.suppress(OSError):
            for line in self.proxy_log.read_text().splitlines():
                entry = json.loads(line)
                counts[f"{entry['method']} {entry['url']}"] += 1
        return dict(counts)


def summarise(rounds: list[Round]) -> dict[str, Any]:
    return {
        "rounds": len(rounds),
        "clean_rounds": sum(1 for r in rounds if r.clean),
        "rounds_with_2_or_more_posts": sum(1 for r in rounds if r.token_posts >= 2),
        "rounds_without_post": sum(1 for r in rounds if r.token_posts == 0),
        "token_posts": sum(r.token_posts for r in rounds),
        "invalid_grants": sum(r.invalid_grants for r in rounds),
        "claude_failures": sum(len(r.claude_failures) for r in rounds),
        "our_failures": sum(len(r.our_failures) for r in rounds),
        "rounds_login_dead": sum(1 for r in rounds if not r.login_alive),
        "login_alive_at_end": bool(rounds) and rounds[-1].login_alive,
    }


def summary_line(claude_count: int, our_count: int, summary: dict[str, Any]) -> str:
    return (
        f"K={claude_count} claude vs M={our_count} ours: {summary['clean_rounds']} of "
        f"{summary['rounds']} rounds clean; {summary['rounds_with_2_or_more_posts']} rounds with "
        f"2+ POSTs, {summary['token_posts']} POSTs, {summary['invalid_grants']} invalid_grant, "
        f"failed: claude {summary['claude_failures']}, ours {summary['our_failures']}; "
        f"login dead after {summary['rounds_login_dead']} rounds; alive at the end: "
        f"{'yes' if summary['login_alive_at_end'] else 'NO'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--claude", type=int, default=2, help="K: claude -p processes a round")
    parser.add_argument("--ours", type=int, default=4, help="M: our processes a round")
    parser.add_argument("--latency", type=float, default=0.5, help="refresh latency, seconds")
    parser.add_argument(
        "--offset",
        type=float,
        nargs=2,
        default=(-0.5, 0.5),
        metavar=("LOW", "HIGH"),
        help="our release after Claude's usual first request, seconds, drawn per round",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--verbose", action="store_true", help="print each failure")
    options = parser.parse_args()

    claude, mitmdump = find_claude(), find_mitmdump()
    if claude is None or mitmdump is None:
        sys.exit(f"needs claude ({claude}) and mitmdump ({mitmdump}); see the docstring")
    version = claude_version(claude)
    print(f"{version} at {claude}; mitmdump at {mitmdump}", flush=True)
    rng = random.Random(options.seed)
    rounds: list[Round] = []
    with Race(claude, mitmdump, latency=options.latency) as race:
        print(f"warm-up: claude's first request {race.claude_delays[0]:.2f}s after its start")
        for number in range(1, options.rounds + 1):
            outcome = race.run_round(options.claude, options.ours, rng.uniform(*options.offset))
            rounds.append(outcome)
            print(outcome.line(number), flush=True)
            if options.verbose:
                for failure in outcome.claude_failures + outcome.our_failures:
                    print(f"    {failure}", flush=True)
        hosts = race.hosts_seen()
    summary = summarise(rounds)
    print(summary_line(options.claude, options.ours, summary), flush=True)
    if options.json:
        document = {
            "benchmark": "claude_code_race",
            "claude_code": version,
            "claude": options.claude,
            "ours": options.ours,
            "refresh_latency_seconds": options.latency,
            "offset_seconds": list(options.offset),
            "claude_warm_up_first_request_seconds": race.claude_delays[0],
            "summary": summary,
            "rounds": [asdict(r) for r in rounds],
            "claude_requests_through_proxy": hosts,
        }
        options.json.write_text(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
