"""SDK imports made off the event loop, one thread at a time.

The async path imports SDKs in worker threads so the triggerer's loop never waits on them. Two
threads importing packages with import cycles at the same moment (``requests``, ``google.auth``,
the Huawei SDK) can be handed a partially initialized module ("cannot import name … from partially
initialized module"): the deployment harness saw it fail DLI and Dataflow waits. One process-wide
lock makes every such first import sequential; an import already done costs a dict lookup.
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType

_LOCK = threading.RLock()


def import_modules(*names: str) -> list[ModuleType]:
    """Import ``names`` (in order) under the process-wide import lock; returns the modules."""
    with _LOCK:
        return [importlib.import_module(name) for name in names]


def locked() -> threading.RLock:
    """The lock, for a block that imports lazily inside library code (e.g. building credentials)."""
    return _LOCK
