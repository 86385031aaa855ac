"""Per-request overhead: ClaudeClient on OAuth vs the plain SDK, sequential calls to loopback.

Three clients send ``messages.create``:

* ``claude_client_oauth``: ``ClaudeClient()`` finding an OAuth token file (zero configuration);
  our provider is asked before every request (``expires_at=0``), as shipped.
* ``sdk_static_credentials``: ``anthropic.Anthropic(credentials=StaticToken(token))``.
* ``sdk_api_key``: ``anthropic.Anthropic(api_key=...)``.

Part 1, loopback: ``--calls`` calls per client to the fake API in its own process,
interleaved in rounds (each round sends ``--batch`` calls per client, in a rotating order)
so load from other processes hits every client alike. Reported: median wall and CPU time per
call, the ratios of ours to each SDK client, and the median over rounds of the per-round
ratio (the steadiest figure on a busy machine).

Part 2, client only: the same three clients on an in-process ``httpx2.MockTransport`` that
answers at once, so only client-side work is timed (CPU time per call, same interleaving).
This isolates what the library adds per request; the loopback figures put it in proportion.

Usage: python benchmarks/request_overhead.py [--calls 2000] [--batch 50]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import _harness
from _harness import MESSAGES, MODEL

REPLY = json.dumps(
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
).encode()


def make_clients(access: str, key: str, **options: Any) -> dict[str, Any]:
    import anthropic
    from anthropic.lib.credentials import StaticToken

    from claude_oauth_auth import ClaudeClient

    ours = ClaudeClient(max_retries=0, **options)
    assert ours.auth_method == "oauth" and ours.auth_source == "auth_file"
    return {
        "claude_client_oauth": ours,
        "sdk_static_credentials": anthropic.Anthropic(
            credentials=StaticToken(access), max_retries=0, **options
        ),
        "sdk_api_key": anthropic.Anthropic(api_key=key, max_retries=0, **options),
    }


def sender(client: Any) -> Callable[[], None]:
    create = client.messages.create

    def send() -> None:
        create(model=MODEL, max_tokens=5, messages=MESSAGES)

    return send


def interleaved(
    clients: dict[str, Any], rounds: int, batch: int, warmup: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU seconds of every call, clients taking turns round by round."""
    senders = {name: sender(client) for name, client in clients.items()}
    for send in senders.values():
        for _ in range(warmup):
            send()
    wall: dict[str, list[float]] = {name: [] for name in senders}
    cpu: dict[str, list[float]] = {name: [] for name in senders}
    names = list(senders)
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            send = senders[name]
            for _ in range(batch):
                cpu_start = time.process_time()
                start = time.perf_counter()
                send()
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - cpu_start)
    return wall, cpu


def paired_ratio(samples: dict[str, list[float]], base: str, rounds: int, batch: int) -> float:
    """Median over rounds of (our median / their median) within the same round."""
    ratios = []
    for index in range(rounds):
        window = slice(index * batch, (index + 1) * batch)
        ours = _harness.median(samples["claude_client_oauth"][window])
        ratios.append(ours / _harness.median(samples[base][window]))
    return round(_harness.median(ratios), 4)


def ratios(samples: dict[str, list[float]], rounds: int, batch: int) -> dict[str, Any]:
    ours = _harness.median(samples["claude_client_oauth"])
    bases = ("sdk_static_credentials", "sdk_api_key")
    return {
        "median": {f"vs_{base}": round(ours / _harness.median(samples[base]), 4) for base in bases},
        "paired_rounds": {
            f"vs_{base}": paired_ratio(samples, base, rounds, batch) for base in bases
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per client (default 2000)")
    parser.add_argument("--batch", type=int, default=50, help="calls per client per round")
    parser.add_argument("--warmup", type=int, default=50, help="untimed calls per client first")
    options = parser.parse_args()
    rounds = max(1, options.calls // options.batch)

    import httpx2

    with _harness.isolated_home() as home, _harness.ServerProcess() as server:
        access, refresh = server.issue_tokens(expires_in=7200)
        key = server.add_api_key()
        token_file = home / ".config" / "claude" / "auth.json"
        _harness.write_our_token_file(token_file, access, refresh, expires_in=7200)

        loopback = make_clients(access, key, base_url=server.base_url)
        wall, cpu = interleaved(loopback, rounds, options.batch, options.warmup)
        counters = server.counters()
        for client in loopback.values():
            client.close()

        def answer(request: httpx2.Request) -> httpx2.Response:
            return httpx2.Response(200, content=REPLY, headers={"content-type": "application/json"})

        mocked = make_clients(
            access,
            key,
            base_url="http://127.0.0.1:9",
            http_client=httpx2.Client(transport=httpx2.MockTransport(answer)),
        )
        _, client_cpu = interleaved(mocked, rounds, options.batch, options.warmup)

    names = list(wall)
    _harness.emit(
        {
            "benchmark": "request_overhead",
            "calls_per_client": rounds * options.batch,
            "rounds": rounds,
            "loopback": {
                "clients": {
                    name: {
                        "wall_us": _harness.describe(wall[name], 1e6, 1),
                        "cpu_us": _harness.describe(cpu[name], 1e6, 1),
                    }
                    for name in names
                },
                "wall_ratio": ratios(wall, rounds, options.batch),
                "cpu_ratio": ratios(cpu, rounds, options.batch),
                "server": counters,
            },
            "client_only": {
                "clients": {
                    name: {"cpu_us": _harness.describe(client_cpu[name], 1e6, 1)} for name in names
                },
                "cpu_ratio": ratios(client_cpu, rounds, options.batch),
                "added_cpu_us_vs_sdk_static_credentials": round(
                    (
                        _harness.median(client_cpu["claude_client_oauth"])
                        - _harness.median(client_cpu["sdk_static_credentials"])
                    )
                    * 1e6,
                    1,
                ),
            },
            "target_ratio": 1.02,
            "machine": _harness.machine(),
        }
    )


if __name__ == "__main__":
    main()
