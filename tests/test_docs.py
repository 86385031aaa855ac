"""Every ```python block in docs/*.md and README.md runs here, against the loopback server.

How a block runs
    Each block is executed in-process with ``exec`` in a fresh namespace whose ``__name__`` is
    ``"__doc_example__"`` (so ``if __name__ == "__main__": app.run()`` does not start a server).
    The autouse ``home`` fixture gives it an empty HOME and none of our environment variables;
    ``oauth_env`` points ``ANTHROPIC_BASE_URL`` and ``CLAUDE_OAUTH_TOKEN_URL`` at a fresh
    ``FakeAnthropic``. The current directory is a temporary folder. Any literal that looks like an
    API key (``sk-ant-api03-...``) is registered with the server first, so placeholder keys in the
    docs are real keys there. The environment and the root logger are restored afterwards.

HTML comments on the lines just before a block (the page shows none of them)
    ``<!-- skip: REASON -->``       not run; reported as skipped with REASON
    ``<!-- setup: NAME, NAME -->``  prepare the world first; NAME is a key of ``SETUPS`` or
                                    ``SERVICES`` below
    ``<!-- continue -->``           run in the same namespace and world as the block before it

A ``SERVICES`` setup starts a real server for the block (redis-server; a private Secret Service)
and stops it afterwards. Without the programs the block is skipped, or fails under ``CI=true``.

A block whose import of an optional package (``OPTIONAL_PACKAGES``) fails is skipped, naming
the package. README.md is not owned by the docs: its blocks get ``README_SETUP`` by default.

Also here: the Quickstart's steps, shell and Python, run in order in a fresh HOME with the
installed console script; and ``mkdocs build --strict`` (skipped when mkdocs is not installed).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest
import redis_server as redis_helper
import secret_service as secret_service_helper
from fakeapi import FakeAnthropic, Fault
from helpers import auth_file_path, claude_code_path, write_auth_file, write_claude_code_file

if TYPE_CHECKING:
    from claude_oauth_auth.stores import TokenSet

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
README_SETUP = ("oauth_file",)
OPTIONAL_PACKAGES = {"flask", "fastapi", "cryptography", "boto3"}
# docs/integrations.md: run with the frameworks installed by tests_integrations/test_docs_page.py
OPTIONAL_PACKAGES |= {"langchain_anthropic", "litellm", "pydantic_ai", "instructor"}

FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S
)
COMMENT = re.compile(r"^\s*<!--\s*(skip|setup|continue)\s*:?\s*(.*?)\s*-->\s*$")
API_KEY_LITERAL = re.compile(r"sk-ant-api03-[A-Za-z0-9_-]+")


# ----- setups: what a block may ask for with <!-- setup: NAME --> ----------------------------


def _api_key(server: FakeAnthropic, home: Path, env: dict[str, str]) -> None:
    env["ANTHROPIC_API_KEY"] = server.add_api_key()


def _oauth_file(server: FakeAnthropic, home: Path, env: dict[str, str]) -> None:
    access, refresh = server.issue_tokens()
    write_auth_file(auth_file_path(home), access, refresh)


def _oauth_file_dead(server: FakeAnthropic, home: Path, env: dict[str, str]) -> None:
    access, refresh = server.issue_tokens(expires_in=-60)
    server.revoke_refresh_token(refresh)
    write_auth_file(auth_file_path(home), access, refresh, expires_in=-60)


def _claude_code(server: FakeAnthropic, home: Path, env: dict[str, str]) -> None:
    access, refresh = server.issue_tokens()
    write_claude_code_file(claude_code_path(home), access, refresh)


def _subscription_token(server: FakeAnthropic, home: Path, env: dict[str, str]) -> None:
    access, refresh = server.issue_tokens(claude_code_only=True)
    write_auth_file(auth_file_path(home), access, refresh)


def _token_pair(server: FakeAnthropic, home: Path, env: dict[str, str]) -> None:
    access, refresh = server.issue_tokens()
    env["MY_ACCESS_TOKEN"], env["MY_REFRESH_TOKEN"] = access, refresh
    env["MY_TOKEN_EXPIRY"] = str(int(time.time()) + 3600)


def _backup_key(server: FakeAnthropic, home: Path, env: dict[str, str]) -> None:
    env["BACKUP_ANTHROPIC_API_KEY"] = server.add_api_key()


def _rotating_keys(server: FakeAnthropic, home: Path, env: dict[str, str]) -> None:
    env["ANTHROPIC_API_KEY_NEW"] = "sk-ant-api03-not-yet-active"  # unknown to the server
    env["ANTHROPIC_API_KEY_OLD"] = server.add_api_key()


def _rate_limited(server: FakeAnthropic, home: Path, env: dict[str, str]) -> None:
    busy = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    server.api_faults.extend(Fault(429, busy, {"retry-after": "0"}) for _ in range(2))


def _sdk_profile(server: FakeAnthropic, home: Path, env: dict[str, str]) -> None:
    """``ant auth login``'s two files for the ``default`` profile, its host the loopback server."""
    import json

    folder = home / ".config" / "anthropic"
    access, refresh = server.issue_tokens()
    auth = {"type": "user_oauth", "client_id": "11111111-2222-3333-4444-555555555555"}
    config = {"version": "1.0", "base_url": server.base_url, "authentication": auth}
    for name, document, mode in (
        ("configs", config, 0o644),
        (
            "credentials",
            {
                "type": "oauth_token",
                "access_token": access,
                "refresh_token": refresh,
                "expires_at": int(time.time()) + 3600,
            },
            0o600,
        ),
    ):
        path = folder / name / "default.json"
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(json.dumps(document))
        os.chmod(path, mode)


def _published_profile(server: FakeAnthropic, home: Path, env: dict[str, str]) -> None:
    """What ``keep-fresh --to-profile shared`` writes: the ``shared`` profile, a token only."""
    from claude_oauth_auth.cli._published_profile import PublishedProfile

    access, _refresh = server.issue_tokens()
    profile = PublishedProfile("shared", base_url=server.base_url)
    profile.prepare()
    profile.publish(access, time.time() + 3600)


def _workload_identity(server: FakeAnthropic, home: Path, env: dict[str, str]) -> None:
    """A workload's identity token file (``/var/run/secrets/…`` in Kubernetes) and its rule."""
    token_file = home / "identity-token"
    token_file.write_text(server.add_identity_token())
    env["ANTHROPIC_IDENTITY_TOKEN_FILE"] = str(token_file)
    env["ANTHROPIC_FEDERATION_RULE_ID"] = "fdrl_01example"
    env["ANTHROPIC_ORGANIZATION_ID"] = "00000000-0000-0000-0000-000000000000"


Setup = Callable[[FakeAnthropic, Path, dict[str, str]], None]
SETUPS: dict[str, Setup] = {
    "api_key": _api_key,  # ANTHROPIC_API_KEY is a key the server accepts
    "oauth_file": _oauth_file,  # ~/.config/claude/auth.json with a fresh refreshable pair
    "oauth_file_dead": _oauth_file_dead,  # auth.json expired, its refresh token revoked
    "claude_code": _claude_code,  # ~/.claude/.credentials.json, as Claude Code writes it
    "subscription_token": _subscription_token,  # auth.json whose token is for Claude Code only
    "token_pair": _token_pair,  # MY_ACCESS_TOKEN, MY_REFRESH_TOKEN, MY_TOKEN_EXPIRY
    "backup_key": _backup_key,  # BACKUP_ANTHROPIC_API_KEY is a key the server accepts
    "rotating_keys": _rotating_keys,  # ANTHROPIC_API_KEY_NEW refused, ANTHROPIC_API_KEY_OLD ok
    "rate_limited": _rate_limited,  # the next two API calls answer 429
    "sdk_profile": _sdk_profile,  # ~/.config/anthropic: a user_oauth `default` profile
    "published_profile": _published_profile,  # keep-fresh --to-profile shared has run
    "workload_identity": _workload_identity,  # ANTHROPIC_FEDERATION_RULE_ID and friends
}


# ----- services: setups that start a real server for the block -----------------------------

DOC_REDIS_PASSWORD = "PASSWORD"  # the placeholder the docs write in their Redis URLs
REDIS_URL_HOST = re.compile(r"(rediss?://(?:[^@/\s\"']*@)?)[^/\s\"'?]+")
REDIS_KEY = re.compile(r"""\bkey=["']([^"']+)["']""")


def _unavailable(message: str) -> NoReturn:
    """Skip a block whose server cannot run here; under CI=true, where it must, fail."""
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(message)
    pytest.skip(message)


def _fresh_login(server: FakeAnthropic) -> TokenSet:
    from claude_oauth_auth.stores import TokenSet

    access, refresh = server.issue_tokens()
    return TokenSet(access, refresh, time.time() + 3600)


@contextlib.contextmanager
def _redis(server: FakeAnthropic, code: str, folder: Path) -> Iterator[str]:
    """A redis-server on a free loopback port, password ``PASSWORD``, holding a fresh login under
    each ``key="…"`` the block names (else the default key); the block's Redis addresses
    (``redis://…@HOST:PORT``, ``host=``, ``port=``) are pointed at it."""
    from claude_oauth_auth.stores import RedisStore

    with redis_helper.redis_server(password=DOC_REDIS_PASSWORD) as redis:
        for key in set(REDIS_KEY.findall(code)) or {"claude-oauth-auth:default"}:
            RedisStore(url=redis.url, key=key).save(_fresh_login(server), expected_version=None)
        code = REDIS_URL_HOST.sub(rf"\g<1>127.0.0.1:{redis.port}", code)
        code = re.sub(r'\bhost="[^"]*"', 'host="127.0.0.1"', code)
        yield re.sub(r"\bport=\d+", f"port={redis.port}", code)


@contextlib.contextmanager
def _keyring(server: FakeAnthropic, code: str, folder: Path) -> Iterator[str]:
    """gnome-keyring-daemon on a private D-Bus as keyring's backend (tests/secret_service.py),
    holding a fresh login under the default service and user name."""
    from claude_oauth_auth.stores import KeyringStore

    with secret_service_helper.secret_service(folder) as session:
        if not session.real:
            _unavailable(
                f"needs a Secret Service, and none could start ({session.why_not_real}): run "
                "`apt-get install -y gnome-keyring dbus`"
            )
        KeyringStore().save(_fresh_login(server), expected_version=None)
        yield code


Service = Callable[[FakeAnthropic, str, Path], contextlib.AbstractContextManager[str]]
SERVICES: dict[str, Service] = {
    "redis": _redis,  # a live redis-server with a login; the block's addresses point at it
    "keyring": _keyring,  # a live Secret Service (keyring's backend) with a login
}


# ----- extracting blocks ---------------------------------------------------------------------


@dataclass
class Block:
    path: Path
    line: int
    lang: str
    code: str
    skip: str | None = None
    setups: list[str] = field(default_factory=list)
    continues: bool = False

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def extract_blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path`` with the directives in the comments just above it."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    blocks = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        block = Block(path, line, match["lang"], textwrap.dedent(match["body"]))
        above = line - 2
        while above >= 0 and (directive := COMMENT.match(lines[above])):
            kind, value = directive.groups()
            if kind == "skip":
                block.skip = value or "marked skip"
            elif kind == "setup":
                block.setups += [name.strip() for name in value.split(",") if name.strip()]
            else:
                block.continues = True
            above -= 1
        blocks.append(block)
    return blocks


def python_groups() -> list[list[Block]]:
    """Python blocks, grouped so that a ``continue`` block runs after the one it continues."""
    groups: list[list[Block]] = []
    for path in DOC_FILES:
        previous: list[Block] | None = None
        for block in extract_blocks(path):
            if block.lang != "python":
                continue
            if path.name == "README.md" and not block.setups:
                block.setups = list(README_SETUP)
            if block.continues and previous is not None:
                previous.append(block)
            else:
                previous = [block]
                groups.append(previous)
    return groups


GROUPS = python_groups()


def test_directives_are_known_and_placed() -> None:
    """A misspelt setup, or a comment not directly above a block, would be silently ignored."""
    for path in DOC_FILES:
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines[:-1], start=1):
            if COMMENT.match(line):
                below = lines[number]
                assert COMMENT.match(below) or below.lstrip().startswith("```"), (
                    f"{path.name}:{number}: a directive must be directly above a code block"
                )
    for group in GROUPS:
        for block in group:
            unknown = [name for name in block.setups if name not in SETUPS and name not in SERVICES]
            assert not unknown, f"{block.where}: unknown setup {unknown}"
        assert not group[0].continues, f"{group[0].where}: `continue` with no block before it"


# ----- running blocks ------------------------------------------------------------------------


@contextlib.contextmanager
def restored_process_state(cwd: Path) -> Iterator[None]:
    """Whatever a block does to os.environ, the cwd or the log levels is undone afterwards."""
    environ = dict(os.environ)
    old_cwd = Path.cwd()
    loggers = [logging.getLogger(), logging.getLogger("claude_oauth_auth")]
    saved = [(list(logger.handlers), logger.level) for logger in loggers]
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(environ)
        for logger, (handlers, level) in zip(loggers, saved, strict=True):
            logger.handlers[:] = handlers
            logger.setLevel(level)


@pytest.mark.parametrize("group", GROUPS, ids=[group[0].where for group in GROUPS])
def test_doc_block(
    group: list[Block], oauth_env: FakeAnthropic, home: Path, tmp_path: Path
) -> None:
    head = group[0]
    if head.skip:
        pytest.skip(f"{head.where}: {head.skip}")
    server = oauth_env
    work = tmp_path / "work"
    work.mkdir()
    namespace: dict[str, object] = {"__name__": "__doc_example__"}
    with restored_process_state(work), contextlib.ExitStack() as services:
        for block in group:
            if block.skip:
                pytest.skip(f"{block.where}: {block.skip}")
            for key in API_KEY_LITERAL.findall(block.code):
                server.add_api_key(key)
            source = block.code
            extra: dict[str, str] = {}
            for name in block.setups:
                if name in SERVICES:
                    folder = tmp_path / f"{name}-{block.line}"
                    source = services.enter_context(SERVICES[name](server, source, folder))
                else:
                    SETUPS[name](server, home, extra)
            os.environ.update(extra)
            code = compile(source, block.where, "exec")
            try:
                exec(code, namespace)
            except ModuleNotFoundError as error:
                if error.name in OPTIONAL_PACKAGES:
                    pytest.skip(f"{block.where}: needs {error.name} (pip install {error.name})")
                raise
    assert not server.errors, server.errors


# ----- the Quickstart, step by step ----------------------------------------------------------

INSTALL_STEP = re.compile(r"^(pip|pip3|python3? -m (pip|venv)|source|\.\s)\b")


def _console_script() -> str:
    script = Path(sys.executable).with_name("claude-oauth-auth")
    if script.exists():
        return str(script)
    found = shutil.which("claude-oauth-auth")
    if found is None:
        pytest.skip("the claude-oauth-auth console script is not installed")
    return found


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"{argv}: exit {result.returncode}\n{result.stderr}"
    return result


def test_quickstart_runs_in_order(server: FakeAnthropic, tmp_path: Path) -> None:
    """Run quickstart.md's shell lines and Python blocks top to bottom, in a fresh HOME."""
    home = tmp_path / "fresh-home"
    home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ANTHROPIC_", "CLAUDE_"))
    }
    env.update(
        HOME=str(home),
        USERPROFILE=str(home),
        ANTHROPIC_BASE_URL=server.base_url,
        CLAUDE_OAUTH_TOKEN_URL=server.token_url,
    )
    env.pop("APPDATA", None)
    ran: list[str] = []
    outputs: list[str] = []
    for block in extract_blocks(ROOT / "docs" / "quickstart.md"):
        if block.skip:
            continue
        if block.lang == "python":
            outputs.append(_run([sys.executable, "-c", block.code], env, tmp_path).stdout)
            ran.append("python block")
            continue
        if block.lang not in ("bash", "console", "shell", "sh"):
            continue
        for raw in block.code.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if INSTALL_STEP.match(line):
                continue  # the package under test is already installed in this interpreter
            words = shlex.split(line, comments=True)
            if words[0] == "export":
                name, _, value = words[1].partition("=")
                env[name] = value
                for key in API_KEY_LITERAL.findall(value):
                    server.add_api_key(key)
            elif words[0] == "claude-oauth-auth":
                outputs.append(_run([_console_script(), *words[1:]], env, tmp_path).stdout)
            elif words[0] in ("python", "python3"):
                outputs.append(_run([sys.executable, *words[1:]], env, tmp_path).stdout)
            else:
                pytest.fail(f"quickstart.md:{block.line}: no rule to run {line!r}")
            ran.append(line)
    assert any("--version" in step for step in ran), "the Quickstart starts with an install check"
    assert "Hello from fake API" in "".join(outputs), "the Quickstart ends with a successful call"
    assert server.api_requests_count() >= 1
    assert not server.errors, server.errors


# ----- the site builds -----------------------------------------------------------------------


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    missing = [
        name
        for name in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
        if not _importable(name)
    ]
    if missing:
        pytest.skip(f"needs the docs extra (pip install -e '.[docs]'): missing {missing}")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "reference" / "index.html").exists()


def _importable(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


# ----- the docs say what the code does ---------------------------------------------------------

GUIDE = ROOT / "docs" / "guide.md"


def _section(path: Path, heading: str) -> str:
    text = path.read_text(encoding="utf-8")
    start = text.index(heading)
    following = re.search(r"^#{1,3} ", text[start + len(heading) :], re.M)
    return text[start : start + len(heading) + (following.start() if following else len(text))]


def test_guide_lists_exactly_the_client_arguments_we_add_to_the_sdk() -> None:
    import inspect

    import anthropic

    from claude_oauth_auth import AsyncClaudeClient, ClaudeClient

    table = _section(GUIDE, "### Client arguments")
    documented = set(re.findall(r"^\| `(\w+)=` \|", table, re.M))
    sdk = set(inspect.signature(anthropic.Anthropic.__init__).parameters)
    for client in (ClaudeClient, AsyncClaudeClient):
        parameters = inspect.signature(client.__init__).parameters.values()
        ours = {
            p.name
            for p in parameters
            if p.name not in sdk and p.name != "self" and p.kind is not p.VAR_KEYWORD
        }
        assert documented == ours, (
            f"guide names arguments {sorted(documented - ours)} that {client.__name__} does "
            f"not take, and omits {sorted(ours - documented)}"
        )
    # The configuration table agrees: no argument there is said not to reach the client.
    configuration = _section(GUIDE, "## Configuration")
    assert "are not client arguments" not in configuration
    for name in ("refresh_threshold", "token_url", "client_id"):
        row = next(line for line in configuration.splitlines() if f"`{name}=`" in line)
        assert "clients" in row or "same three" in row, row


def test_docs_do_not_install_from_an_index_that_lacks_the_package() -> None:
    bare = re.compile(r"pip install (--upgrade )?claude-oauth-auth(?![\w\[@-])")
    for path in [*DOC_FILES, *sorted((ROOT / "examples").glob("*.py"))]:
        text = path.read_text(encoding="utf-8")
        assert not bare.search(text), f"{path.name}: `pip install claude-oauth-auth` (not on PyPI)"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    setup = _section(ROOT / "README.md", "## Set up")
    first_block = FENCE.search(setup)
    assert first_block is not None and len(first_block["body"].strip().splitlines()) == 1
    project = readme[readme.index("Use it in your project") :][:600]
    assert "pip install ." in project and "git+" in project
    assert "[keyring]" in project and "[redis]" in project


def test_examples_extra_installs_what_every_example_imports() -> None:
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["examples"]
    names = {re.split(r"[<>=\[; ]", requirement)[0].lower() for requirement in extras}
    ours = {"claude_oauth_auth", "anthropic", "__future__", "pydantic"}  # pydantic: FastAPI's
    for script in sorted((ROOT / "examples").glob("*.py")):
        imported = set(re.findall(r"^\s*(?:from|import) (\w+)", script.read_text(), re.M))
        third_party = {name for name in imported - ours if name not in sys.stdlib_module_names}
        assert third_party <= names, f"{script.name} needs {sorted(third_party - names)}"
    assert "uvicorn" in names


def test_the_guides_curl_recipe_uses_token_header() -> None:
    recipes = [line for line in GUIDE.read_text().splitlines() if "curl" in line and "-H" in line]
    assert recipes and all("Bearer $(" not in line for line in recipes)
    assert any('"$(claude-oauth-auth token --header)"' in line for line in recipes)


def test_the_sidecar_examples_do_not_restart_when_a_person_must_act() -> None:
    """keep-fresh exits 1 (dead login) or 2 (usage) only when a restart would fail again: the
    Fleets page's docker-compose service is not restarted, its systemd unit not on those."""
    import yaml

    from claude_oauth_auth.cli._command_base import EXIT_FAILED, EXIT_USAGE

    blocks = [b for b in extract_blocks(ROOT / "docs" / "fleets.md") if "keep-fresh" in b.code]
    (compose,) = [block for block in blocks if block.lang == "yaml"]
    assert yaml.safe_load(compose.code)["services"]["keep-fresh"]["restart"] == "no"
    (unit,) = [block for block in blocks if block.lang == "ini"]
    settings = dict(line.split("=", 1) for line in unit.code.splitlines() if "=" in line)
    assert settings["Restart"] == "on-failure"
    assert set(settings["RestartPreventExitStatus"].split()) == {str(EXIT_FAILED), str(EXIT_USAGE)}


def test_sqlite_move_once_example_runs_twice(
    oauth_env: FakeAnthropic, home: Path, tmp_path: Path
) -> None:
    """The Guide's "move once" example removes the login from auth.json, so a rerun (or the
    default cascade) never spends the refresh token the database now owns."""
    (group,) = [g for g in GROUPS if g[0].path == GUIDE and "SQLiteTokenManager" in g[0].code]
    block = group[0]
    SETUPS["oauth_file"](oauth_env, home, {})
    work = tmp_path / "work"
    work.mkdir()
    with restored_process_state(work):
        for _run_number in (1, 2):
            exec(compile(block.code, block.where, "exec"), {"__name__": "__doc_example__"})
            assert not auth_file_path(home).exists()
    assert oauth_env.token_posts == 2 and oauth_env.invalid_grants == 0
    assert not oauth_env.errors
