"""The one loader of code named by a string: the registry names hooks and sensors, a trigger names
the function computing its outcome XComs, and strings survive serialization where objects do not."""

from __future__ import annotations

import importlib
from typing import Any


def load(path: str) -> Any:
    """``"package.module:name"`` or ``"package.module.Name"`` → the object; ImportError or
    AttributeError naming the path when it is not there."""
    module, sep, name = path.partition(":")
    if not sep:
        module, _, name = path.rpartition(".")
    if not module or not name:
        raise ImportError(f"{path!r} is not a dotted path (package.module:name or package.module.Name)")
    return getattr(importlib.import_module(module), name)


def load_callable(path: str) -> Any:
    """``load`` for something that must be callable (TypeError naming the path otherwise)."""
    obj = load(path)
    if not callable(obj):
        raise TypeError(f"{path} is not callable")
    return obj
