"""Fuzzing: any token file, any environment -> a report or one of our errors, never a secret.

Hypothesis writes both token-file shapes (and arbitrary JSON and bytes) where the cascade
looks, sets every environment variable we read to odd values, then runs
``parse_token_document``, ``get_auth_status``, ``claude-oauth-auth status --json`` and
``UnifiedAuthManager``. Allowed outcomes: a result, or ``ClaudeAuthError`` (our tree:
``TokenFileError``, ``NoCredentialsError``, ...) or ``ValueError`` for bad configuration.
Planted secrets never appear, whole or as any 12-character piece, in a message, repr,
status, CLI output or log record.

No network: the token URL points at a closed loopback port, and name resolution of any
other host is refused.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import logging
import math
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import auth_file_path, claude_code_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_oauth_auth import ClaudeAuthError, UnifiedAuthManager, get_auth_status
from claude_oauth_auth import cli as cli_module
from claude_oauth_auth._config import ENV
from claude_oauth_auth._tokens import TokenFormatError, parse_token_document

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FUZZED_VARIABLES = tuple(
    value for name, value in vars(ENV).items() if name.isupper() and isinstance(value, str)
)
SECRET_VARIABLES = ("CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY")


class Secret(str):
    """A planted secret: wherever it goes, it must never come back out."""


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


CLOSED_TOKEN_URL = f"http://127.0.0.1:{_closed_port()}/v1/oauth/token"

# ----- strategies ---------------------------------------------------------------------------------


def _secret(prefix: str, seed: int, length: int) -> Secret:
    # Pseudo-random bodies: a shrunk example can never spell words the status uses.
    digest = hashlib.sha256(seed.to_bytes(16, "big")).digest()
    return Secret(prefix + base64.urlsafe_b64encode(digest).decode().rstrip("=")[:length])


secrets = st.builds(
    _secret,
    st.sampled_from(["sk-ant-oat01-", "sk-ant-ort01-", "sk-ant-api03-", ""]),
    st.integers(0, 2**64),
    st.integers(20, 43),
)
env_text = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30),
    # Environment variables are bytes on POSIX: undecodable ones arrive surrogate-escaped.
    st.binary(max_size=20)
    .filter(lambda raw: b"\x00" not in raw)
    .map(lambda raw: raw.decode("utf-8", "surrogateescape")),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),  # past float range
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    secrets,
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
expiry_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.sampled_from([0, -1, 1e12, 4102444800, 4102444800000, 10**400]),
    json_values,
)
token_values = st.one_of(secrets, secrets, json_scalars, st.just(""), st.just("   "))
token_url_values = st.sampled_from(
    [CLOSED_TOKEN_URL, "http://example.com/token", "ftp://x/y", "https://", "", "not a url"]
)


PAST, FUTURE = 1_000_000_000, 4_102_444_800  # 2001 and 2100, in unix seconds
good_expiry = st.sampled_from([PAST, FUTURE, float(FUTURE), None])


@st.composite
def mutated(draw: st.DrawFn, document: dict[str, Any], junk: dict[str, Any]) -> dict[str, Any]:
    """A well-formed document with up to three fields dropped or replaced by junk."""
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(sorted(junk)))
        if draw(st.booleans()):
            document.pop(name, None)
        else:
            document[name] = draw(junk[name])
    document.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)))
    return document


@st.composite
def our_documents(draw: st.DrawFn) -> dict[str, Any]:
    document: dict[str, Any] = {
        "access_token": draw(secrets),
        "refresh_token": draw(secrets),
        "token_expiry": draw(good_expiry),
    }
    if draw(st.booleans()):
        document["token_url"] = CLOSED_TOKEN_URL
    junk = {
        "access_token": token_values,
        "refresh_token": token_values,
        "token_expiry": expiry_values,
        "client_id": st.one_of(st.text(max_size=20), json_scalars),
        "token_url": st.one_of(token_url_values, json_scalars),
        "scopes": st.one_of(st.lists(st.text(max_size=10), max_size=3), json_values),
    }
    return draw(mutated(document, junk))


@st.composite
def claude_code_documents(draw: st.DrawFn) -> dict[str, Any]:
    expiry = draw(good_expiry)
    inner: dict[str, Any] = {
        "accessToken": draw(secrets),
        "refreshToken": draw(secrets),
        "expiresAt": None if expiry is None else expiry * 1000,
        "scopes": ["user:inference"],
        "subscriptionType": "max",
    }
    junk = {
        "accessToken": token_values,
        "refreshToken": token_values,
        "expiresAt": expiry_values,
        "scopes": st.one_of(st.lists(st.text(max_size=10), max_size=3), json_values),
        "subscriptionType": json_scalars,
    }
    document: dict[str, Any] = {"claudeAiOauth": draw(mutated(inner, junk))}
    if draw(st.integers(0, 9)) == 0:
        document["claudeAiOauth"] = draw(json_values)  # not even an object
    if draw(st.booleans()):
        document["mcpOAuth"] = {"server": {"token": draw(secrets)}}
    return document


documents = st.one_of(our_documents(), claude_code_documents(), json_values)


PATHOLOGICAL = [
    "[" * 100_000 + "]" * 100_000,
    '{"access_token": "a", "token_expiry": 1' + "0" * 5000 + "}",
    '{"access_token": "a", "token_expiry": NaN}',
    '{"claudeAiOauth": {"accessToken": "a", "expiresAt": -Infinity}}',
    '{"access_token": "a", "access_token": 1}',
    "\ufeff{}",
    "{}" * 1000,
]


@st.composite
def file_contents(draw: st.DrawFn) -> tuple[bytes | None, list[str]]:
    """A token file: nothing, a document, or broken bytes; with the secrets planted in it."""
    kind = draw(st.sampled_from(["absent", "document", "document", "truncated", "bytes", "odd"]))
    if kind == "absent":
        return None, []
    if kind == "odd":
        return draw(st.sampled_from(PATHOLOGICAL)).encode(), []
    document = draw(documents)
    text = json.dumps(document)
    if kind == "truncated":
        return text[: draw(st.integers(0, len(text)))].encode(), secrets_in(document)
    if kind == "bytes":
        return draw(st.binary(max_size=60)), []
    return text.encode(), secrets_in(document)


def secrets_in(value: Any) -> list[str]:
    """Every planted secret inside a document, an environment value, bytes of a file."""
    if isinstance(value, Secret):
        return [str(value)]
    if isinstance(value, dict):
        return [s for item in value.values() for s in secrets_in(item)]
    if isinstance(value, list):
        return [s for item in value for s in secrets_in(item)]
    return []


def assert_no_secret(text: str, planted: list[str]) -> None:
    for secret in planted:
        for start in range(len(secret) - 11):
            piece = secret[start : start + 12]
            assert piece not in text, f"a 12-character piece of a secret leaked: {piece!r}"


# ----- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse to resolve any host but loopback: a fuzzed URL must never reach the network."""
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "localhost", "::1", b"127.0.0.1", b"localhost"):
            raise socket.gaierror(socket.EAI_NONAME, "blocked by the fuzz tests")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


@contextlib.contextmanager
def environment(values: dict[str, str | None]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in FUZZED_VARIABLES}
    for name in FUZZED_VARIABLES:
        os.environ.pop(name, None)
    os.environ["CLAUDE_OAUTH_TOKEN_URL"] = CLOSED_TOKEN_URL
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def captured_logs() -> Iterator[Records]:
    handler = Records()
    root = logging.getLogger()
    level, others = root.level, root.handlers[:]
    # Ours alone: pytest's capture would keep the records too, and a surrogate-escaped variable
    # in one cannot be sent from a pytest-xdist worker ("strings must be utf-8 encodable").
    root.handlers = [handler]
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.handlers = others
        root.setLevel(level)


def reset_home(home: Path) -> None:
    for child in home.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def place(path: Path, content: bytes | None, mode: int) -> None:
    if content is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_bytes(content)
    os.chmod(path, mode)


# ----- the fuzz tests -----------------------------------------------------------------------------


@FUZZ
@given(document=documents)
def test_parse_token_document_accepts_or_says_what_is_wrong(document: Any) -> None:
    planted = secrets_in(document)
    try:
        tokens, shape = parse_token_document(document)
    except TokenFormatError as error:
        assert isinstance(error, ValueError)
        assert_no_secret(str(error), planted)
        return
    assert shape in ("ours", "claude_code")
    assert isinstance(tokens.access_token, str) and tokens.access_token.strip()
    assert tokens.expires_at is None or math.isfinite(tokens.expires_at)
    assert_no_secret(repr(tokens), planted)


def variable_values() -> st.SearchStrategy[dict[str, str | None]]:
    def maybe(values: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
        return st.one_of(st.none(), values)

    return st.fixed_dictionaries(
        {
            "CLAUDE_AUTH_FILE": maybe(
                st.one_of(
                    st.sampled_from(
                        [
                            "@auth",
                            "@code",
                            "@home",
                            "@missing",
                            "",
                            " ",
                            "~/a.json",
                            "~x9/a",
                            "a.json",
                        ]
                    ),
                    env_text.filter(lambda value: "/" not in value),
                )
            ),
            "CLAUDE_CONFIG_DIR": maybe(
                st.one_of(
                    st.sampled_from(["@codedir", "@missing", "@auth", "", "~/.claude", "~nobody9"]),
                    env_text,
                )
            ),
            "CLAUDE_CODE_OAUTH_TOKEN": maybe(st.one_of(secrets, env_text)),
            "ANTHROPIC_AUTH_TOKEN": maybe(st.one_of(secrets, env_text)),
            "ANTHROPIC_API_KEY": maybe(st.one_of(secrets, env_text)),
            "CLAUDE_TOKEN_REFRESH_THRESHOLD": maybe(
                st.one_of(
                    st.sampled_from(
                        ["", " ", "0", "-1", "nan", "inf", "-inf", "1e309", "300", "1_000", "soon"]
                    ),
                    env_text,
                )
            ),
            "CLAUDE_OAUTH_TOKEN_URL": maybe(st.one_of(token_url_values, env_text)),
            "CLAUDE_OAUTH_CLIENT_ID": maybe(env_text),
        }
    )


def resolve_placeholders(values: dict[str, str | None], home: Path) -> dict[str, str | None]:
    places = {
        "@auth": str(auth_file_path(home)),
        "@code": str(claude_code_path(home)),
        "@codedir": str(claude_code_path(home).parent),
        "@home": str(home),
        "@missing": str(home / "missing" / "auth.json"),
    }
    resolved: dict[str, str | None] = {}
    for name, value in values.items():
        if value in places and not isinstance(value, Secret):
            resolved[name] = places[value]
        else:
            resolved[name] = value
    return resolved


@FUZZ
@given(
    ours=file_contents(),
    claude_code=file_contents(),
    mode=st.sampled_from([0o600, 0o600, 0o644, 0o666]),
    variables=variable_values(),
)
def test_any_files_and_environment_give_a_report_or_our_error(
    home: Path,
    ours: tuple[bytes | None, list[str]],
    claude_code: tuple[bytes | None, list[str]],
    mode: int,
    variables: dict[str, str | None],
) -> None:
    reset_home(home)
    place(auth_file_path(home), ours[0], mode)
    place(claude_code_path(home), claude_code[0], 0o600)
    planted = [value for value in variables.values() if isinstance(value, Secret)]
    planted += ours[1] + claude_code[1]
    with environment(resolve_placeholders(variables, home)), captured_logs() as logs:
        status = get_auth_status()
        text = json.dumps(status, ensure_ascii=False)
        assert {"summary", "oauth_available", "api_key_available", "sources"} <= set(status)
        assert_no_secret(text, planted)

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_module.main(["status", "--json"])
        assert code in (0, 1), err.getvalue()
        assert json.loads(out.getvalue())["summary"] == status["summary"]
        assert_no_secret(out.getvalue() + err.getvalue(), planted)

        try:
            manager = UnifiedAuthManager()
        except (ClaudeAuthError, ValueError) as error:
            assert_no_secret(f"{error} {error!r}", planted)
        else:
            assert manager.auth_method in ("oauth", "api_key")
            described = repr(manager) + repr(manager.credential) + repr(manager.token_source)
            described += json.dumps([report.as_dict() for report in manager.reports])
            assert_no_secret(described, planted)
        assert_no_secret("\n".join(logs.lines), planted)


# ----- regressions: crashes the fuzzer found (fixed in src) ------------------------------------


def test_huge_integer_expiry_is_a_format_error() -> None:
    with pytest.raises(TokenFormatError):
        parse_token_document({"access_token": "sk-ant-oat01-x", "token_expiry": 10**400})


BROKEN_FILES = {
    "integer_too_large_for_a_float": '{"access_token": "sk-ant-oat01-abcdefghijklmnopqrst", '
    '"token_expiry": 1' + "0" * 400 + "}",
    "integer_over_4300_digits": '{"access_token": "a", "token_expiry": 1' + "0" * 5000 + "}",
    "nested_100000_deep": "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("case", sorted(BROKEN_FILES))
def test_broken_token_file_is_skipped_for_the_api_key(
    case: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = auth_file_path(home)
    place(path, BROKEN_FILES[case].encode(), 0o600)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-" + "k" * 40)
    status = get_auth_status()
    auth_file = next(source for source in status["sources"] if source["name"] == "auth_file")
    assert auth_file["state"] == "invalid" and auth_file["path"] == str(path)
    manager = UnifiedAuthManager()
    assert manager.auth_method == "api_key"


@pytest.mark.parametrize("variable", ["CLAUDE_AUTH_FILE", "CLAUDE_CONFIG_DIR"])
def test_tilde_path_of_an_unknown_user_is_an_invalid_source(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, "~no-such-user-here/auth.json")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-" + "k" * 40)
    assert get_auth_status()["source"] == "api_key_env"
    assert UnifiedAuthManager().auth_method == "api_key"
