"""Tests for the fake Anthropic API server in ``tests/fakeapi.py``.

The server is exercised through the real ``anthropic`` SDK client and, for the OAuth token
endpoint, plain ``urllib.request``.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from conftest import Clock
from fakeapi import OAUTH_BETA, FakeAnthropic, Fault, UnifiedLimits

MODEL = "claude-test-1"
MESSAGES: list[Any] = [{"role": "user", "content": "Hi there"}]
FAST_429 = Fault(
    429,
    {"type": "error", "error": {"type": "rate_limit_error", "message": "rate limited"}},
    headers={"retry-after-ms": "5"},
)


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server
        with server.lock:
            errors = list(server.errors)
        assert errors == [], "\n".join(errors)


def api_key_client(fake: FakeAnthropic, key: str, **kw: Any) -> anthropic.Anthropic:
    kw.setdefault("max_retries", 0)
    return anthropic.Anthropic(api_key=key, base_url=fake.base_url, **kw)


def oauth_client(
    fake: FakeAnthropic, token: str, *, beta: bool = True, **kw: Any
) -> anthropic.Anthropic:
    kw.setdefault("max_retries", 0)
    headers = {"anthropic-beta": OAUTH_BETA} if beta else {}
    return anthropic.Anthropic(
        auth_token=token, base_url=fake.base_url, default_headers=headers, **kw
    )


def say_hi(client: anthropic.Anthropic) -> anthropic.types.Message:
    return client.messages.create(model=MODEL, max_tokens=16, messages=MESSAGES)


def http(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def post_refresh(fake: FakeAnthropic, refresh: str, *, form: bool = False) -> tuple[int, Any]:
    payload = {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": "test"}
    if form:
        data = urllib.parse.urlencode(payload).encode()
        ctype = "application/x-www-form-urlencoded"
    else:
        data = json.dumps(payload).encode()
        ctype = "application/json"
    status, raw = http(fake.token_url, method="POST", body=data, headers={"Content-Type": ctype})
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


# -- Messages API: auth ------------------------------------------------------------------------


def test_api_key_ok(fake: FakeAnthropic) -> None:
    key = fake.add_api_key()
    assert key.startswith("sk-ant-api03-")
    msg = say_hi(api_key_client(fake, key))
    assert msg.id.startswith("msg_")
    assert msg.type == "message"
    assert msg.role == "assistant"
    assert msg.model == MODEL
    assert msg.content[0].type == "text"
    assert msg.content[0].text == "Hello from fake API"
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens > 0
    with fake.lock:
        (rec,) = fake.api_requests
    assert (rec.method, rec.path, rec.status) == ("POST", "/v1/messages", 200)
    assert rec.auth_kind == "api_key"
    assert rec.token == key
    assert rec.headers["authorization"] == f"Bearer {key}"
    assert rec.json["model"] == MODEL
    assert not rec.has_both_auth_headers


def test_custom_api_key_and_x_api_key_header(fake: FakeAnthropic) -> None:
    key = fake.add_api_key("sk-ant-api03-custom")
    assert key == "sk-ant-api03-custom"
    body = json.dumps({"model": MODEL, "max_tokens": 5, "messages": MESSAGES}).encode()
    url = fake.base_url + "/v1/messages"
    status, raw = http(url, method="POST", body=body, headers={"X-Api-Key": key})
    assert status == 200
    assert json.loads(raw)["content"][0]["text"] == "Hello from fake API"
    tok, _ = fake.issue_tokens()
    both = {"X-Api-Key": key, "Authorization": f"Bearer {tok}", "anthropic-beta": OAUTH_BETA}
    status, _ = http(url, method="POST", body=body, headers=both)
    assert status == 200
    with fake.lock:
        first, second = fake.api_requests
    assert first.auth_kind == "api_key" and first.token == key
    assert not first.has_both_auth_headers
    assert second.has_both_auth_headers
    assert second.auth_kind == "oauth"  # Authorization wins when both are sent


def test_oauth_with_beta_ok(fake: FakeAnthropic) -> None:
    tok, refresh = fake.issue_tokens()
    assert tok.startswith("sk-ant-oat01-")
    assert refresh.startswith("sk-ant-ort01-")
    msg = say_hi(oauth_client(fake, tok))
    assert msg.content[0].type == "text"
    assert msg.content[0].text == "Hello from fake API"
    with fake.lock:
        (rec,) = fake.api_requests
    assert rec.auth_kind == "oauth"
    assert rec.token == tok
    assert OAUTH_BETA in rec.betas
    assert rec.status == 200


def test_oauth_without_beta_rejected(fake: FakeAnthropic) -> None:
    tok, _ = fake.issue_tokens()
    with pytest.raises(anthropic.AuthenticationError) as info:
        say_hi(oauth_client(fake, tok, beta=False))
    assert info.value.status_code == 401
    assert "OAuth authentication is currently not supported." in str(info.value)
    with fake.lock:
        assert fake.api_requests[0].auth_kind == "oauth"
        assert fake.api_requests[0].status == 401


def test_oauth_expired(fake: FakeAnthropic) -> None:
    tok, _ = fake.issue_tokens(expires_in=-1)
    with pytest.raises(anthropic.AuthenticationError) as info:
        say_hi(oauth_client(fake, tok))
    assert info.value.status_code == 401
    assert "expired" in str(info.value)


def test_oauth_expires_in_time(fake: FakeAnthropic, clock: Clock) -> None:
    fake.clock = clock
    tok, _ = fake.issue_tokens(expires_in=0.5)
    headers = {"Authorization": f"Bearer {tok}", "anthropic-beta": OAUTH_BETA}
    assert http(fake.base_url + "/v1/models", headers=headers)[0] == 200
    clock.advance(0.55)
    with pytest.raises(anthropic.AuthenticationError, match="expired"):
        say_hi(oauth_client(fake, tok))


def test_oauth_revoked(fake: FakeAnthropic) -> None:
    tok, _ = fake.issue_tokens()
    client = oauth_client(fake, tok)
    say_hi(client)
    fake.revoke_access_token(tok)
    with pytest.raises(anthropic.AuthenticationError) as info:
        say_hi(client)
    assert info.value.status_code == 401


def test_claude_code_only(fake: FakeAnthropic) -> None:
    tok, refresh = fake.issue_tokens(claude_code_only=True)
    with pytest.raises(anthropic.BadRequestError) as info:
        say_hi(oauth_client(fake, tok))
    assert info.value.status_code == 400
    assert "only authorized for use with Claude Code" in str(info.value)
    # refreshed tokens inherit the restriction
    status, body = post_refresh(fake, refresh)
    assert status == 200
    with pytest.raises(anthropic.BadRequestError, match="only authorized for use with Claude Code"):
        say_hi(oauth_client(fake, body["access_token"]))


def test_unknown_and_missing_credentials(fake: FakeAnthropic) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        say_hi(api_key_client(fake, "sk-ant-api03-nope"))
    status, raw = http(fake.base_url + "/v1/models")
    assert status == 401
    assert json.loads(raw)["error"]["type"] == "authentication_error"
    with fake.lock:
        assert [r.auth_kind for r in fake.api_requests] == ["unknown", "none"]
        assert [r.status for r in fake.api_requests] == [401, 401]


# -- Messages API: endpoints -------------------------------------------------------------------


def test_stream_helper(fake: FakeAnthropic) -> None:
    client = oauth_client(fake, fake.issue_tokens()[0])
    with client.messages.stream(model=MODEL, max_tokens=16, messages=MESSAGES) as stream:
        texts = list(stream.text_stream)
        text = stream.get_final_text()
        final = stream.get_final_message()
    assert "".join(texts) == text == "Hello from fake API"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    with fake.lock:
        assert fake.api_requests[0].json["stream"] is True


def test_stream_true_iterates(fake: FakeAnthropic) -> None:
    client = api_key_client(fake, fake.add_api_key())
    events = list(
        client.messages.create(model=MODEL, max_tokens=16, messages=MESSAGES, stream=True)
    )
    types = [e.type for e in events]
    assert types[0] == "message_start"
    assert types[1] == "content_block_start"
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    text = "".join(
        e.delta.text
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "text_delta"
    )
    assert text == "Hello from fake API"
    # keep-alive connection still usable after a stream
    assert say_hi(client).content[0].type == "text"


def test_stream_error_is_plain_json(fake: FakeAnthropic) -> None:
    client = oauth_client(fake, fake.issue_tokens()[0], beta=False)
    with (
        pytest.raises(anthropic.AuthenticationError, match="OAuth authentication"),
        client.messages.stream(model=MODEL, max_tokens=16, messages=MESSAGES) as stream,
    ):
        stream.get_final_text()


def test_models(fake: FakeAnthropic) -> None:
    client = api_key_client(fake, fake.add_api_key())
    models = list(client.models.list())
    assert [m.id for m in models] == ["claude-test-1"]
    assert models[0].display_name == "Claude Test"
    assert client.models.retrieve("claude-test-1").id == "claude-test-1"
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("nope")


def test_unified_limits_on_oauth_messages(fake: FakeAnthropic) -> None:
    """Messages answers to OAuth requests carry the unified headers; other answers do not."""
    access, _ = fake.issue_tokens()
    client = oauth_client(fake, access)
    now = time.time()
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=16, messages=MESSAGES)
    unified = {k: v for k, v in raw.headers.items() if k.startswith("anthropic-ratelimit-unified")}
    prefix = "anthropic-ratelimit-unified-"
    assert unified[prefix + "status"] == "allowed"
    assert unified[prefix + "representative-claim"] == "five_hour"
    assert unified[prefix + "5h-utilization"] == "0.62"
    assert unified[prefix + "7d-utilization"] == "0.18"
    assert int(unified[prefix + "5h-reset"]) == pytest.approx(now + 3 * 3600, abs=5)
    assert unified[prefix + "reset"] == unified[prefix + "5h-reset"]
    assert unified[prefix + "fallback"] == "available"
    assert unified[prefix + "overage-status"] == "rejected"
    with client.messages.with_streaming_response.create(
        model=MODEL, max_tokens=16, messages=MESSAGES, stream=True
    ) as streamed:
        assert streamed.headers[prefix + "status"] == "allowed"
    models = client.models.with_raw_response.list()
    assert prefix + "status" not in models.headers  # only on the paths in unified_paths
    keyed = api_key_client(fake, fake.add_api_key()).messages.with_raw_response.create(
        model=MODEL, max_tokens=16, messages=MESSAGES
    )
    assert prefix + "status" not in keyed.headers  # API keys get none

    fake.unified_limits = UnifiedLimits(
        representative_claim="seven_day_overage_included",
        utilization={"7d_oi": 1.0},
        extra={prefix + "fallback": "", prefix + "status": "rejected"},
    )
    fake.unified_paths = ("/v1/models",)
    headers = client.models.with_raw_response.list().headers
    assert headers[prefix + "7d_oi-status"] == "rejected"
    assert headers[prefix + "reset"] == headers[prefix + "7d_oi-reset"]
    assert headers[prefix + "status"] == "rejected" and prefix + "fallback" not in headers
    fake.unified_limits = None
    assert prefix + "status" not in client.models.with_raw_response.list().headers


def test_count_tokens(fake: FakeAnthropic) -> None:
    client = oauth_client(fake, fake.issue_tokens()[0])
    result = client.messages.count_tokens(model=MODEL, messages=MESSAGES)
    assert result.input_tokens > 0
    with fake.lock:
        assert fake.api_requests[0].path == "/v1/messages/count_tokens"


def test_batches(fake: FakeAnthropic) -> None:
    client = api_key_client(fake, fake.add_api_key())
    batch = client.messages.batches.create(
        requests=[
            {"custom_id": "a", "params": {"model": MODEL, "max_tokens": 8, "messages": MESSAGES}}
        ]
    )
    assert batch.id.startswith("msgbatch_")
    assert batch.type == "message_batch"
    assert batch.request_counts.processing == 1
    again = client.messages.batches.retrieve(batch.id)
    assert again.id == batch.id
    assert again.processing_status == "in_progress"


def test_unknown_path_404(fake: FakeAnthropic) -> None:
    key = fake.add_api_key()
    status, raw = http(fake.base_url + "/v1/nope", headers={"X-Api-Key": key})
    assert status == 404
    assert json.loads(raw)["error"]["type"] == "not_found_error"
    status, raw = http(fake.base_url + "/elsewhere")
    assert status == 404


def test_invalid_body_400(fake: FakeAnthropic) -> None:
    key = fake.add_api_key()
    url = fake.base_url + "/v1/messages"
    status, raw = http(url, method="POST", body=b"{not json", headers={"X-Api-Key": key})
    assert status == 400
    assert json.loads(raw)["error"]["type"] == "invalid_request_error"


# -- Messages API: faults ----------------------------------------------------------------------


def test_api_faults_retry(fake: FakeAnthropic) -> None:
    client = api_key_client(fake, fake.add_api_key(), max_retries=2)
    with fake.lock:
        fake.api_faults += [FAST_429, FAST_429]
    assert say_hi(client).content[0].type == "text"
    assert fake.api_requests_count() == 3
    with fake.lock:
        assert [r.status for r in fake.api_requests] == [429, 429, 200]
        assert fake.api_faults == []


def test_api_faults_no_retry_and_close(fake: FakeAnthropic) -> None:
    client = api_key_client(fake, fake.add_api_key())
    fake.api_faults.append(FAST_429)
    with pytest.raises(anthropic.RateLimitError):
        say_hi(client)
    fake.api_faults.append(Fault(0, close=True))
    with pytest.raises(anthropic.APIConnectionError):
        say_hi(client)
    fake.api_faults.append(Fault(529, "overloaded, not json", delay=0.05))
    with pytest.raises(anthropic.APIStatusError) as info:
        say_hi(client)
    assert info.value.status_code == 529
    assert say_hi(client).content[0].type == "text"
    with fake.lock:
        assert [r.status for r in fake.api_requests] == [429, 0, 529, 200]


def test_api_faults_apply_after_auth(fake: FakeAnthropic) -> None:
    fake.api_faults.append(FAST_429)
    with pytest.raises(anthropic.AuthenticationError):
        say_hi(api_key_client(fake, "sk-ant-api03-unknown"))
    with fake.lock:
        assert len(fake.api_faults) == 1


# -- token endpoint ----------------------------------------------------------------------------


def test_refresh_rotates_and_is_single_use(fake: FakeAnthropic) -> None:
    access, refresh = fake.issue_tokens()
    status, body = post_refresh(fake, refresh)
    assert status == 200
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "user:inference"
    new_access, new_refresh = body["access_token"], body["refresh_token"]
    assert new_access.startswith("sk-ant-oat01-") and new_access != access
    assert new_refresh.startswith("sk-ant-ort01-") and new_refresh != refresh

    status, body = post_refresh(fake, refresh)
    assert status == 400
    assert body == {
        "error": "invalid_grant",
        "error_description": "Refresh token not found or invalid",
    }
    with fake.lock:
        assert (fake.token_posts, fake.invalid_grants) == (2, 1)
        assert fake.token_requests[0]["refresh_token"] == refresh
        assert fake.token_requests[0]["client_id"] == "test"

    # both the old and the new access token work; the new refresh token works
    say_hi(oauth_client(fake, access))
    say_hi(oauth_client(fake, new_access))
    assert post_refresh(fake, new_refresh)[0] == 200

    fake.reset_counters()
    with fake.lock:
        assert (fake.token_posts, fake.invalid_grants) == (0, 0)
        assert fake.token_requests == [] and fake.api_requests == []


def test_refresh_form_encoded_and_lifetime(fake: FakeAnthropic) -> None:
    fake.access_token_lifetime = 120.0
    _, refresh = fake.issue_tokens()
    status, body = post_refresh(fake, refresh, form=True)
    assert status == 200
    assert body["expires_in"] == 120
    with fake.lock:
        assert fake.token_requests[0]["grant_type"] == "refresh_token"


def test_refresh_errors(fake: FakeAnthropic) -> None:
    _, refresh = fake.issue_tokens()
    data = json.dumps({"grant_type": "password", "refresh_token": refresh}).encode()
    status, raw = http(fake.token_url, method="POST", body=data)
    assert status == 400
    assert json.loads(raw) == {"error": "unsupported_grant_type"}
    assert post_refresh(fake, "sk-ant-ort01-unknown")[1]["error"] == "invalid_grant"
    fake.revoke_refresh_token(refresh)
    assert post_refresh(fake, refresh)[1]["error"] == "invalid_grant"
    with fake.lock:
        assert (fake.token_posts, fake.invalid_grants) == (3, 2)


def test_concurrent_double_use(fake: FakeAnthropic) -> None:
    fake.refresh_latency = 1.0
    _, refresh = fake.issue_tokens()
    barrier = threading.Barrier(2)
    results: list[int] = []

    def worker() -> None:
        barrier.wait()
        status, _ = post_refresh(fake, refresh)
        results.append(status)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    assert sorted(results) == [200, 400]
    with fake.lock:
        assert (fake.token_posts, fake.invalid_grants) == (2, 1)
    # the latency sleeps ran in parallel, not under the lock (in turn they take 2 s)
    assert elapsed < 1.9


def test_no_rotation(fake: FakeAnthropic) -> None:
    fake.rotate_refresh_tokens = False
    _, refresh = fake.issue_tokens()
    for _ in range(2):
        status, body = post_refresh(fake, refresh)
        assert status == 200
        assert "refresh_token" not in body
        say_hi(oauth_client(fake, body["access_token"]))
    with fake.lock:
        assert fake.invalid_grants == 0


def test_token_faults(fake: FakeAnthropic) -> None:
    _, refresh = fake.issue_tokens()
    with fake.lock:
        fake.token_faults += [
            Fault(500, {"error": "server_error"}),
            Fault(502, "<html>Bad gateway</html>", headers={"Content-Type": "text/html"}),
            Fault(0, close=True),
        ]
    assert post_refresh(fake, refresh) == (500, {"error": "server_error"})
    assert post_refresh(fake, refresh) == (502, b"<html>Bad gateway</html>")
    with pytest.raises(OSError):
        post_refresh(fake, refresh)
    # faults did not consume the refresh token
    status, body = post_refresh(fake, refresh)
    assert status == 200 and "access_token" in body
    with fake.lock:
        assert fake.token_posts == 4
        assert fake.invalid_grants == 0
        assert fake.token_faults == []


# -- server behaviour --------------------------------------------------------------------------


def test_many_concurrent_connections(fake: FakeAnthropic) -> None:
    key = fake.add_api_key()
    statuses: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        status, _ = http(fake.base_url + "/v1/models", headers={"X-Api-Key": key})
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=worker) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 100
    assert fake.api_requests_count() == 100


def test_stop_drops_keepalive_connections() -> None:
    server = FakeAnthropic().start()
    try:
        client = api_key_client(server, server.add_api_key())
        say_hi(client)
    finally:
        server.stop()
    with pytest.raises(anthropic.APIConnectionError):
        say_hi(client)
    server.stop()  # idempotent
