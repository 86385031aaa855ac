"""``client.quota``: the subscription quota the API's responses already carry, nothing fetched.

The loopback server sends ``anthropic-ratelimit-unified-*`` on Messages responses to OAuth
requests (``FakeAnthropic.unified_limits``); the real SDK reads them through our auth flow.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fakeapi import FakeAnthropic, Fault, UnifiedLimits
from helpers import auth_file_path, claude_code_path, write_auth_file, write_claude_code_file
from hypothesis import given, settings
from hypothesis import strategies as st

from claude_oauth_auth import AsyncClaudeClient, ClaudeClient, Quota, QuotaWindow
from claude_oauth_auth._quota import QuotaBoard, parse_quota, quota_line

MODEL = "claude-test-1"
MESSAGES: Any = [{"role": "user", "content": "hi"}]
UNIFIED = "anthropic-ratelimit-unified-"


def create(client: Any, **options: Any) -> Any:
    return client.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES, **options)


@pytest.fixture
def login(oauth_env: FakeAnthropic, home: Path) -> FakeAnthropic:
    """A fresh OAuth login in ~/.config/claude/auth.json, on the loopback server."""
    access, refresh = oauth_env.issue_tokens()
    write_auth_file(auth_file_path(home), access, refresh)
    return oauth_env


def assert_default_quota(quota: Quota | None, before: float) -> None:
    """What ``UnifiedLimits()`` sends: 5 h at 62 %, 7 d at 18 %, the 5-hour window binding."""
    assert quota is not None
    assert quota.status == "allowed" and quota.representative_claim == "five_hour"
    assert quota.five_hour is not None and quota.five_hour.utilization == 0.62
    assert quota.seven_day is not None and quota.seven_day.utilization == 0.18
    assert quota.five_hour.resets_at == pytest.approx(before + 3 * 3600, abs=5)
    assert quota.seven_day.resets_at == pytest.approx(before + 4 * 86400, abs=5)
    assert quota.binding is quota.five_hour and quota.resets_at == quota.five_hour.resets_at
    assert quota.seven_day_overage_included is None and quota.overage is None
    assert set(quota.windows) == {"5h", "7d"}
    assert quota.fallback == "available" and quota.fallback_percentage == 0.5
    assert quota.overage_status == "rejected"
    assert quota.overage_disabled_reason == "org_level_disabled"
    assert before - 1 <= quota.observed_at <= time.time() + 1


# ----- the client ------------------------------------------------------------------------------


def test_quota_after_a_request(login: FakeAnthropic) -> None:
    client = ClaudeClient(max_retries=0)
    assert client.quota is None  # nothing is fetched for it
    before = time.time()
    create(client)
    assert_default_quota(client.quota, before)
    assert len(login.api_requests) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        client.quota.status = "rejected"  # type: ignore[misc, union-attr]


def test_quota_is_the_last_response_and_copies_share_it(login: FakeAnthropic) -> None:
    client = ClaudeClient(max_retries=0)
    copy, options = client.copy(), client.with_options(timeout=5)
    create(client)
    assert copy.quota is client.quota is options.quota
    login.unified_limits = UnifiedLimits(
        status="allowed_warning", representative_claim="seven_day", utilization={"7d": 0.91}
    )
    create(options)
    quota = client.quota
    assert quota is not None and quota.status == "allowed_warning"
    assert quota.five_hour is None and quota.seven_day is not None
    assert quota.binding is quota.seven_day and quota.seven_day.utilization == 0.91
    assert copy.quota is quota


def test_quota_async(login: FakeAnthropic) -> None:
    async def main() -> Quota | None:
        async with AsyncClaudeClient(max_retries=0) as client:
            assert client.quota is None
            await create(client)
            assert client.copy().quota is client.quota
            return client.quota

    before = time.time()
    assert_default_quota(asyncio.run(main()), before)


def test_quota_from_a_stream_before_its_body(login: FakeAnthropic) -> None:
    client = ClaudeClient(max_retries=0)
    before = time.time()
    with client.messages.stream(model=MODEL, max_tokens=5, messages=MESSAGES) as stream:
        assert_default_quota(client.quota, before)  # the headers came first
        assert stream.get_final_text() == "Hello from fake API"


def test_quota_from_an_async_stream(login: FakeAnthropic) -> None:
    async def main() -> Quota | None:
        async with AsyncClaudeClient(max_retries=0) as client:
            events = await create(client, stream=True)
            quota = client.quota
            assert [event.type async for event in events][-1] == "message_stop"
            return quota

    before = time.time()
    assert_default_quota(asyncio.run(main()), before)


def test_a_rate_limited_answer_still_reports_the_quota(login: FakeAnthropic) -> None:
    login.unified_limits = UnifiedLimits(status="rejected", utilization={"5h": 1.01, "7d": 0.4})
    error = {"type": "error", "error": {"type": "rate_limit_error", "message": "limited"}}
    login.api_faults.append(Fault(429, error, headers={"retry-after": "7835"}))
    client = ClaudeClient(max_retries=0)
    with pytest.raises(Exception, match="limited"):
        create(client)
    quota = client.quota
    assert quota is not None and quota.status == "rejected"
    assert quota.five_hour is not None and quota.five_hour.utilization == 1.01
    assert quota.five_hour.status == "rejected"


def test_no_unified_headers_leave_it_none(login: FakeAnthropic) -> None:
    login.unified_limits = None
    client = ClaudeClient(max_retries=0)
    create(client)
    assert client.models.list().data  # a models list carries none either
    assert client.quota is None


def test_an_api_key_has_no_quota(oauth_env: FakeAnthropic) -> None:
    client = ClaudeClient(api_key=oauth_env.add_api_key(), max_retries=0)
    create(client)
    assert client.quota is None


def test_malformed_headers_are_ignored(
    login: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    login.unified_limits = UnifiedLimits(
        representative_claim="x" * 200,
        extra={
            UNIFIED + "5h-utilization": "62%",
            UNIFIED + "5h-reset": "soon",
            UNIFIED + "7d-utilization": "NaN",
            UNIFIED + "7d-reset": "1e400",
            UNIFIED + "7d_oi-utilization": "-0.5",
            UNIFIED + "7d_oi-reset": "1780000000000",  # milliseconds
            UNIFIED + "overage-utilization": "0.25",
            UNIFIED + "overage-reset": "1780000000",
            UNIFIED + "fallback-percentage": "inf",
            UNIFIED + "reset": "",  # removed
            UNIFIED + "status": "   ",
        },
    )
    caplog.set_level(logging.DEBUG)
    client = ClaudeClient(max_retries=0)
    assert create(client).content[0].text == "Hello from fake API"
    quota = client.quota
    assert quota is not None
    assert quota.status is None and quota.representative_claim is None
    assert quota.resets_at is None and quota.fallback_percentage is None
    # A window none of whose values parse is not reported (its status alone is no window).
    assert quota.five_hour is None and quota.seven_day is None
    assert quota.seven_day_overage_included is None
    assert quota.overage == QuotaWindow(0.25, 1780000000.0, "rejected")
    assert quota.binding is None
    json.dumps(quota.as_dict())
    ours = [r for r in caplog.records if r.name.startswith("claude_oauth_auth")]
    assert ours and not [r for r in ours if UNIFIED in r.getMessage()]  # we never log them


def test_each_login_keeps_its_own(oauth_env: FakeAnthropic, home: Path) -> None:
    """The Claude Code login is refused for other programs; the next OAuth login takes over
    and its quota is the client's, kept apart from the first login's."""
    refused_access, refused_refresh = oauth_env.issue_tokens(claude_code_only=True)
    write_claude_code_file(claude_code_path(home), refused_access, refused_refresh)
    access, refresh = oauth_env.issue_tokens()
    write_auth_file(auth_file_path(home), access, refresh)
    client = ClaudeClient(max_retries=0, sources=["claude_code", "auth_file"])
    assert client.auth_source == "claude_code"
    create(client)
    assert client.auth_source == "auth_file"
    assert client.quota is not None
    quotas = client.auth_manager.failover.quotas
    assert quotas.get("auth_file") is client.quota and quotas.get("claude_code") is None


# ----- parsing and printing --------------------------------------------------------------------


def headers(**values: str) -> httpx2.Headers:
    return httpx2.Headers(
        {UNIFIED + name.replace("_", "-"): value for name, value in values.items()}
    )


def test_board_notes_only_responses_with_a_status() -> None:
    board = QuotaBoard()
    board.note("a", headers(**{"5h_utilization": "0.5"}))  # no -status: not noted
    assert board.get("a") is None
    board.note("a", httpx2.Headers({"Anthropic-RateLimit-Unified-Status": "allowed"}))
    quota = board.get("a")
    assert quota is not None and quota.status == "allowed" and quota.windows == {}
    assert board.get("a") is quota  # parsed once
    assert board.get("b") is None


@pytest.mark.parametrize(
    ("claim", "window"),
    [
        ("five_hour", "5h"),
        ("seven_day", "7d"),
        ("seven_day_overage_included", "7d_oi"),
        ("overage", "overage"),
        ("seven_day_opus", None),
    ],
)
def test_binding_window_of_each_claim(claim: str, window: str | None) -> None:
    items = [(UNIFIED + "status", "allowed"), (UNIFIED + "representative-claim", claim)]
    for name in ("5h", "7d", "7d_oi", "overage"):
        items += [(UNIFIED + f"{name}-utilization", "0.5"), (UNIFIED + f"{name}-reset", "2e9")]
    quota = parse_quota(items, 0.0)
    assert quota is not None and len(quota.windows) == 4
    assert quota.binding is (quota.windows[window] if window else None)


def test_parse_ignores_other_headers() -> None:
    assert parse_quota([("anthropic-ratelimit-requests-limit", "50")], 0.0) is None


def test_quota_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    now = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC
    monkeypatch.setattr("claude_oauth_auth._clock.now", lambda: now)
    items = [
        (UNIFIED + "status", "allowed_warning"),
        (UNIFIED + "representative-claim", "five_hour"),
        (UNIFIED + "5h-utilization", "0.624"),
        (UNIFIED + "5h-reset", str(int(now + 3600))),
        (UNIFIED + "7d-utilization", "0.18"),
        (UNIFIED + "7d-reset", str(int(now + 3 * 86400))),
        (UNIFIED + "7d_oi-utilization", "1.0"),
        (UNIFIED + "7d_oi-status", "rejected"),
    ]
    quota = parse_quota(items, now)
    assert quota is not None
    assert quota_line(quota.as_dict()) == (
        "Quota: 5-hour window: 62 % used, resets 21:26 UTC (binding); "
        "7-day: 18 % used, resets May 31 20:26 UTC; "
        "7-day (one model): 100 % used (rejected); status: allowed_warning"
    )


SUFFIXES = ["status", "reset", "representative-claim", "fallback", "fallback-percentage"]
SUFFIXES += ["overage-status", "overage-disabled-reason"]
SUFFIXES += [f"{w}-{f}" for w in ("5h", "7d", "7d_oi", "overage") for f in ("utilization", "reset")]
SUFFIXES += ["5h-status", "7d-surpassed-threshold", "made-up"]
VALUES = st.one_of(
    st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=80),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(SUFFIXES), VALUES, max_size=len(SUFFIXES)))
def test_any_values_parse_without_raising(values: dict[str, str]) -> None:
    board = QuotaBoard()
    raw = [(b"Anthropic-Ratelimit-Unified-Status", b"allowed")]
    raw += [(UNIFIED.encode() + k.encode(), v.encode("latin-1")) for k, v in values.items()]
    board.note("login", httpx2.Headers(raw))
    quota = board.get("login")
    assert quota is not None
    for window in quota.windows.values():
        assert window.utilization is None or 0 <= window.utilization <= 10
        assert window.resets_at is None or 1e9 <= window.resets_at < 1e11
    json.dumps(quota.as_dict(), allow_nan=False)
    assert quota_line(quota.as_dict()).isprintable()
