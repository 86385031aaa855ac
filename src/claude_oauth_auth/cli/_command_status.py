"""``claude-oauth-auth status``: the credential in use, every source, and (``--check``) the API's
verdict. Without ``--check`` it stays offline and never imports the SDK."""

from __future__ import annotations

import argparse
from typing import Any

from .._quota import quota_line
from .._tokens import escape_control_characters as printable
from ._command_base import EXIT_FAILED, EXIT_OK, Console, Result, describe_expiry

__all__ = ["run_status"]

KIND_TEXT = {"oauth": "OAuth", "api_key": "API key", "auth_token": "bearer token"}
CHECK_TEXT = {
    "ok": "ok: the API accepted the credential",
    "refused": "refused",
    "unreachable": "unreachable",
    "skipped": "not checked",
}


def run_status(arguments: argparse.Namespace, console: Console) -> Result:
    from .._status import get_auth_status

    status = get_auth_status()
    if not getattr(arguments, "check", False):
        return Result(_status_text(status), status, _exit_code(status))
    check = _check(status)
    if status["source"] is not None:
        status = get_auth_status()  # as the check left it: a refresh shows its new expiry
    status["check"] = check
    status["quota"] = check.pop("quota", None)
    code = _exit_code(status) if check["result"] == "ok" else EXIT_FAILED
    # A passed check answers the advice's "the API may refuse them"; a failed one says more.
    text = _status_text(status, advise=False) + "\n" + _check_line(check)
    if status["quota"]:
        text += "\n" + quota_line(status["quota"])
    if check.get("fix"):
        text += f"\nTo fix: {check['fix']}."
    covered = tuple(str(check[key]) for key in ("reason", "fallback") if check.get(key))
    return Result(text, status, code, covered=covered)


def _exit_code(status: dict[str, Any]) -> int:
    """1 when no credential is usable, a setting makes one unusable, or the login in use was
    refused (it stops working at its expiry)."""
    failed = status["source"] is None or status["configuration_errors"] or status["refused"]
    return EXIT_FAILED if failed else EXIT_OK


def _check(status: dict[str, Any]) -> dict[str, Any]:
    if status["source"] is None:
        reason = "no usable credential was found"
        return {"result": "skipped", "reason": reason, "fix": None, "source": None}
    from ._status_check import check_online

    check = check_online()
    check["source"] = check["source"] or status["source"]
    return check


def _status_text(status: dict[str, Any], *, advise: bool = True) -> str:
    """The credential, the source table, the summary, and one line of what to do
    (``advise=False`` leaves out the API key advice, once a check has answered it)."""
    from .._status import FALLBACK_ADVICE

    lines = _credential_lines(status)
    lines += ["", *_source_table(status["sources"]), "", printable(status["summary"])]
    if status["fix"]:
        lines.append(printable(f"To fix: {status['fix']}."))
    elif status["recommendation"] and (advise or status["recommendation"] != FALLBACK_ADVICE):
        lines.append(printable(status["recommendation"]))
    return "\n".join(lines)


def _credential_lines(status: dict[str, Any]) -> list[str]:
    credential = status["credential"]
    if not credential:
        return ["Credential in use: none"]
    rows = [("location", credential["location"] or "-")]
    if credential["kind"] == "oauth":
        rows.append(("expires", describe_expiry(credential["expires_at"])))
        if credential["scopes"]:
            rows.append(("scopes", " ".join(credential["scopes"])))
        if credential["subscription_type"] or credential["rate_limit_tier"]:
            plan = credential["subscription_type"] or "-"
            if credential["rate_limit_tier"]:
                plan += f" (rate-limit tier {credential['rate_limit_tier']})"
            rows.append(("subscription", plan))
        rows.append(("can refresh", "yes" if credential["can_refresh"] else "no"))
    rows.append(("API base URL", status["api_base_url"]))
    if status["token_url"]:
        rows.append(("token URL", status["token_url"]))
    rows += [("note", note) for note in credential["notes"]]
    kind = KIND_TEXT[credential["kind"]]
    lines = [f"Credential in use: {kind} ({credential['hint']}) from {credential['source']}"]
    lines += [f"  {label + ':':<14}{printable(str(value))}" for label, value in rows]
    return lines


def _source_table(sources: list[dict[str, Any]]) -> list[str]:
    rows = [(entry["name"], entry["state"], entry["detail"]) for entry in sources]
    name_width = max(len("source"), *(len(row[0]) for row in rows))
    state_width = max(len("state"), *(len(row[1]) for row in rows))
    lines = [f"{'source':<{name_width}}  {'state':<{state_width}}  detail"]
    lines.append(f"{'-' * name_width}  {'-' * state_width}  {'-' * 6}")
    for name, state, detail in rows:
        lines.append(f"{name:<{name_width}}  {state:<{state_width}}  {printable(detail)}")
    return lines


def _check_line(check: dict[str, Any]) -> str:
    text = f"Check (GET /v1/models): {CHECK_TEXT[check['result']]}"
    if check["result"] != "ok" and check.get("reason"):
        text += f": {check['reason']}"
    if check.get("source"):
        text += f" [{check['source']}"
        text += f", {check['seconds']:.2f} s]" if "seconds" in check else "]"
    if check.get("fallback"):
        text += f"\n  Note: {check['fallback']}."
    return text
