"""Answer many prompts concurrently: one shared ClaudeClient, a thread pool, answers in order.

    python examples/batch.py "What is 2+2?" "Name a colour" --workers 4
    printf 'first prompt\nsecond prompt\n' | python examples/batch.py

Prints one JSON line per prompt ({"prompt", "answer"} or {"prompt", "error"}) and exits 1 if
any prompt failed. The client is thread-safe: the threads share its connection pool, and an
OAuth token close to expiry is refreshed once for all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import anthropic

from claude_oauth_auth import ClaudeClient

MODEL = os.environ.get("CLAUDE_MODEL", "claude-sonnet-4-6")


def ask(client: ClaudeClient, prompt: str, max_tokens: int = 512) -> str:
    message = client.messages.create(
        model=MODEL,
        max_tokens=max_tokens,
        messages=[{"role": "user", "content": prompt}],
    )
    return "".join(block.text for block in message.content if block.type == "text")


def answer_all(
    client: ClaudeClient, prompts: Sequence[str], max_workers: int = 8
) -> list[dict[str, str]]:
    """One result per prompt, in the prompts' order; a failed prompt does not stop the rest."""

    def one(prompt: str) -> dict[str, str]:
        try:
            return {"prompt": prompt, "answer": ask(client, prompt)}
        except anthropic.APIError as error:
            return {"prompt": prompt, "error": f"{type(error).__name__}: {error.message}"}

    with ThreadPoolExecutor(max_workers=max_workers) as executor:
        return list(executor.map(one, prompts))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("prompts", nargs="*", help="prompts (default: one per line on stdin)")
    parser.add_argument("--workers", type=int, default=8, help="threads (default: 8)")
    arguments = parser.parse_args(argv)
    prompts = arguments.prompts or [line.strip() for line in sys.stdin if line.strip()]
    if not prompts:
        parser.error("give prompts as arguments or on standard input")
    client = ClaudeClient()
    results = answer_all(client, prompts, max_workers=max(1, arguments.workers))
    for result in results:
        print(json.dumps(result))
    return 1 if any("error" in result for result in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
