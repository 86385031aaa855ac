"""Import a framework, or say which extra brings it."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, extra: str) -> ModuleType:
    """``import module``; when it is missing, a ModuleNotFoundError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is None or module.split(".")[0] != error.name.split(".")[0]:
            raise  # the framework is there, but something it needs is not
        from .._install import install_hint

        raise ModuleNotFoundError(
            f"{module} is not installed; install it with: {install_hint(extra)}", name=module
        ) from error
