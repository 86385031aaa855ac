"""Import a framework, or say which extra brings it."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, extra: str) -> ModuleType:
    """``import module``; when it is missing, an ImportError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"{module} is not installed; install it with: pip install 'claude-oauth-auth[{extra}]'"
        ) from error
