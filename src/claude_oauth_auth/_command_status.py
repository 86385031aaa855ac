"""``claude-oauth-auth status``: every credential source as a table or as JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._command_base import EXIT_FAILED, EXIT_OK

__all__ = ["run_status"]


def run_status(arguments: argparse.Namespace) -> int:
    from ._status import get_auth_status

    status = get_auth_status()
    if arguments.json:
        print(json.dumps(status, indent=2))
    else:
        print(_status_table(status))
    return EXIT_OK if status["source"] is not None else EXIT_FAILED


def _status_table(status: dict[str, Any]) -> str:
    rows = [(entry["name"], entry["state"], entry["detail"]) for entry in status["sources"]]
    name_width = max(len("source"), *(len(row[0]) for row in rows))
    state_width = max(len("state"), *(len(row[1]) for row in rows))
    lines = [f"{'source':<{name_width}}  {'state':<{state_width}}  detail"]
    lines.append(f"{'-' * name_width}  {'-' * state_width}  {'-' * 6}")
    for name, state, detail in rows:
        lines.append(f"{name:<{name_width}}  {state:<{state_width}}  {detail}")
    lines.append("")
    lines.append(status["summary"])
    if status["recommendation"]:
        lines.append(status["recommendation"])
    return "\n".join(lines)
