"""The ``train`` extra, imported on demand: a missing package is a :class:`UserError` saying how
to install it, never an ImportError traceback (the default install carries no torch)."""

from __future__ import annotations

import importlib
from types import ModuleType

from sara.common.errors import UserError

PACKAGES = ("torch", "transformers", "peft", "trl", "datasets", "accelerate")
HINT = "install the training extra: `make train-deps` (or `pip install -e '.[train]'`)"


def require(*names: str) -> list[ModuleType]:
    """Import ``names`` (default: the whole extra) or explain what to install."""
    modules = []
    for name in names or PACKAGES:
        try:
            modules.append(importlib.import_module(name))
        except ImportError as exc:
            raise UserError(f"`sara train` needs {name}, which is not installed: {HINT}") from exc
    return modules
