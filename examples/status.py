"""Print which Claude credentials this machine has and which one a client would use.

    python examples/status.py          # a readable report
    python examples/status.py --json   # the same as JSON

Never prints a secret (at most a token's last 4 characters), never makes a network call, and
does not even import the anthropic SDK. Exits 0 when a usable credential exists, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from claude_oauth_auth import get_auth_status


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Show Claude credential status.")
    parser.add_argument("--json", action="store_true", help="print the full status as JSON")
    arguments = parser.parse_args(argv)

    status = get_auth_status()
    if arguments.json:
        print(json.dumps(status, indent=2))
    else:
        print(status["summary"])
        print(f"OAuth available:   {'yes' if status['oauth_available'] else 'no'}")
        print(f"API key available: {'yes' if status['api_key_available'] else 'no'}")
        print("Sources, in the order they are tried:")
        for source in status["sources"]:
            print(f"  {source['name']:<16} {source['state']:<12} {source['detail']}")
        if status["recommendation"]:
            print(f"Tip: {status['recommendation']}")
    return 0 if status["source"] is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
