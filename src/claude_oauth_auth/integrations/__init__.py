"""Helpers for the frameworks our users already have: LangChain and LiteLLM.

pydantic-ai and instructor take our clients as they are (see docs/integrations.md), so they need
nothing here. Importing this package imports neither ``anthropic`` nor any framework; each helper
imports its framework on first use and says which extra to install when it is missing.
"""

import typing as _typing

from .. import _lazy

if _typing.TYPE_CHECKING:
    from ._langchain import ClaudeChatAnthropic, chat_anthropic
    from ._litellm import LiteLLMAuth, litellm_acompletion, litellm_completion, litellm_kwargs

__all__ = [
    "ClaudeChatAnthropic",
    "LiteLLMAuth",
    "chat_anthropic",
    "litellm_acompletion",
    "litellm_completion",
    "litellm_kwargs",
]

_LAZY = {
    "ClaudeChatAnthropic": "._langchain",
    "chat_anthropic": "._langchain",
    "LiteLLMAuth": "._litellm",
    "litellm_acompletion": "._litellm",
    "litellm_completion": "._litellm",
    "litellm_kwargs": "._litellm",
}

__getattr__, __dir__ = _lazy.lazy_attributes(__name__, _LAZY, __all__)
