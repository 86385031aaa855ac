"""``status --check``: one cheap authenticated call (the models list) through ``ClaudeClient``.

The answer is ``ok``, ``refused`` (the API or the token endpoint said no, with its reason) or
``unreachable`` (no answer, or the service is failing for now). Imports the SDK: only
``--check`` loads this module.
"""

from __future__ import annotations

import time
from typing import Any

from ._errors import ClaudeAuthError, TokenRefreshError
from ._tokens import mask

__all__ = ["CHECK_TIMEOUT_SECONDS", "check_online"]

CHECK_TIMEOUT_SECONDS = 10.0
REASON_LIMIT = 300


def check_online(timeout: float = CHECK_TIMEOUT_SECONDS) -> dict[str, Any]:
    """Ask the API to list models with the credential a client would use; never raises.

    Keys: ``result`` (``ok``, ``refused``, ``unreachable``), ``reason``, ``source`` (the
    step whose credential answered), ``fallback`` (why OAuth was left for a key, or None),
    ``api_base_url`` and ``seconds``.
    """
    import anthropic

    from ._client import ClaudeClient

    started = time.monotonic()
    outcome: dict[str, Any] = {"result": "ok", "reason": None, "source": None, "fallback": None}
    client: ClaudeClient | None = None
    try:
        client = ClaudeClient(max_retries=0, timeout=timeout)
        outcome["api_base_url"] = str(client.base_url).rstrip("/")
        client.models.list(limit=1)
    except anthropic.APIStatusError as error:
        temporary = error.status_code == 429 or error.status_code >= 500
        outcome["result"] = "unreachable" if temporary else "refused"
        outcome["reason"] = f"HTTP {error.status_code}: {_api_reason(error)}"
    except anthropic.APIConnectionError as error:
        cause = error.__cause__ or error.__context__
        outcome["result"] = "unreachable"
        outcome["reason"] = _clean(str(cause) if cause is not None else str(error))
        if isinstance(cause, TokenRefreshError):
            outcome["reason"] = _clean(str(cause))
    except TokenRefreshError as error:  # the token endpoint could not be reached
        outcome["result"], outcome["reason"] = "unreachable", _clean(str(error))
    except (ClaudeAuthError, anthropic.AuthenticationError) as error:
        outcome["result"], outcome["reason"] = "refused", _clean(str(error))
    except ValueError as error:  # a setting the client refuses
        outcome["result"], outcome["reason"] = "refused", _clean(str(error))
    if client is not None:
        auth = client.auth_manager
        outcome["source"] = auth.source
        if auth.fallback_reason is not None:
            outcome["fallback"] = (
                f"OAuth from {auth.credential.source} failed ({auth.fallback_reason.rstrip('.')}); "
                f"the client fell back to {auth.source}"
            )
    outcome["seconds"] = round(time.monotonic() - started, 3)
    return outcome


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
