"""``status --check``: one cheap authenticated call (the models list) through ``ClaudeClient``.

The answer is ``ok``, ``refused`` (the API or the token endpoint said no, with its reason) or
``unreachable`` (no answer, or the service is failing for now). Imports the SDK: only
``--check`` loads this module.
"""

from __future__ import annotations

from typing import Any

from .. import _clock
from .._errors import ClaudeAuthError, TokenRefreshError
from .._tokens import mask

__all__ = ["CHECK_TIMEOUT_SECONDS", "check_online"]

CHECK_TIMEOUT_SECONDS = 10.0
REASON_LIMIT = 300
ADVICE_MARK = " [claude-oauth-auth: "


def check_online(timeout: float = CHECK_TIMEOUT_SECONDS) -> dict[str, Any]:
    """Ask the API to list models with the credential a client would use; never raises.

    Keys: ``result`` (``ok``, ``refused``, ``unreachable``), ``reason``, ``source`` (the
    step whose credential answered), ``fallback`` (why OAuth was left for a key, or None),
    ``quota`` (what the answer's ``anthropic-ratelimit-unified-*`` headers said, or None),
    ``api_base_url`` and ``seconds``.
    """
    import anthropic
    import anthropic.resources.models  # loaded before the clock starts: it times the check

    from .._client import ClaudeClient

    started = _clock.monotonic()
    outcome: dict[str, Any] = {"result": "ok", "reason": None, "fix": None, "source": None}
    outcome["fallback"] = outcome["quota"] = None
    client: ClaudeClient | None = None
    try:
        client = ClaudeClient(max_retries=0, timeout=timeout)
        outcome["api_base_url"] = str(client.base_url).rstrip("/")
        client.models.list(limit=1)
    except anthropic.APIStatusError as error:
        reason, outcome["fix"] = _split_advice(error.message)
        if getattr(error, "token_url", None) is not None:  # the token endpoint said no
            outcome["result"], outcome["reason"] = "refused", reason
        else:
            temporary = error.status_code == 429 or error.status_code >= 500
            outcome["result"] = "unreachable" if temporary else "refused"
            outcome["reason"] = f"HTTP {error.status_code}: {_api_reason(error)}"
    except anthropic.APIConnectionError as error:
        cause = error.__cause__ or error.__context__
        outcome["result"] = "unreachable"
        outcome["reason"] = _clean(str(cause) if cause is not None else str(error))
    except TokenRefreshError as error:  # the token endpoint could not be reached
        outcome["result"], outcome["reason"] = "unreachable", _clean(str(error))
    except (ClaudeAuthError, ValueError) as error:  # a store or a setting the client refuses
        outcome["result"], outcome["reason"] = "refused", _clean(str(error))
    if client is not None:
        auth = client.auth_manager
        outcome["source"] = auth.source
        quota = client.quota  # from the answer's headers, refused ones (429) included
        outcome["quota"] = quota.as_dict() if quota is not None else None
        if auth.fallback_reason is not None:
            outcome["fallback"] = (
                f"OAuth from {auth.credential.source} failed ({auth.fallback_reason.rstrip('.')}); "
                f"the client fell back to {auth.source}"
            )
        if outcome["result"] != "ok" and outcome["fix"] is None:
            outcome["fix"] = _default_fix(outcome["result"], auth.active_credential.kind)
    outcome["seconds"] = round(_clock.monotonic() - started, 3)
    return outcome


def _split_advice(message: str) -> tuple[str, str | None]:
    """Our errors end in `` [claude-oauth-auth: what to do]``: the reason, then the fix."""
    reason, _, advice = message.partition(ADVICE_MARK)
    fix = advice.strip().rstrip("]").strip().rstrip(".") or None
    return _clean(reason), fix


def _default_fix(result: str, kind: str) -> str:
    if result == "unreachable":
        return "check the network connection and the API base URL, then try again"
    if kind == "api_key":
        return "set ANTHROPIC_API_KEY to a valid key (create one at https://console.anthropic.com/)"
    if kind == "auth_token":
        return "set ANTHROPIC_AUTH_TOKEN to a valid token, or unset it"
    return (
        "log in again with Claude Code (run `claude`, then /login) or store new tokens with "
        "`claude-oauth-auth save`"
    )


def _api_reason(error: Any) -> str:
    """The API's own message from an error body, else the SDK's."""
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return _clean(inner["message"])
    return _clean(str(getattr(error, "message", error)))


def _clean(text: str) -> str:
    """One line, not too long, and no token in it (an error may quote a header)."""
    words = []
    for word in " ".join(text.split()).split(" "):
        words.append(mask(word) if word.startswith("sk-ant-") else word)
    line = " ".join(words)
    return line if len(line) <= REASON_LIMIT else line[: REASON_LIMIT - 1] + "…"
