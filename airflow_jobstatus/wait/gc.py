"""Opt-in garbage-collector thresholds for a triggerer holding thousands of waits.

With CPython's default thresholds (700, 10, 10) a full collection runs every few seconds once a
triggerer holds ~10,000 waiting triggers, and each one walks every live object of Airflow, the SDKs
and the triggers with the event loop stopped: 0.4-1.5 s a pause on the benchmark machine, so polls
bunch up and fall behind their interval (benchmarks/results/notes.md). ``[jobstatus]
triggerer_gc_threshold`` (e.g. ``700,10,1000``) is applied with ``gc.set_threshold`` once per process,
by the first of this provider's triggers to run in a triggerer. The process-wide policy is the
deployment's to choose, so nothing changes unless it is set; a triggerer that reaches
``MANY_WAITS`` of this provider's waits without it says so once.
"""

from __future__ import annotations

import gc
from typing import Any

SECTION, KEY = "jobstatus", "triggerer_gc_threshold"
#: Waits in one process from which the log suggests the setting (once).
MANY_WAITS = 2000
#: The value the deployment guide and the benchmarks use.
RECOMMENDED = "700,10,1000"

_state = {"applied": False, "suggested": False, "waits": 0}


def parse_thresholds(text: str) -> tuple[int, int, int]:
    """``"G0,G1,G2"`` as three positive ints; a ValueError naming the setting otherwise."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) <= 0:
        raise ValueError(
            f"[{SECTION}] {KEY} must be three positive integers 'G0,G1,G2' "
            f"(e.g. {RECOMMENDED}), got {text!r}."
        )
    return values[0], values[1], values[2]


def configured() -> str:
    from airflow_jobstatus.core.compat import conf

    return str(conf.get(SECTION, KEY, fallback="") or "").strip()


def apply_once(log: Any) -> None:
    """Set the configured thresholds, the first time a trigger of this provider runs in this process."""
    if _state["applied"]:
        return
    _state["applied"] = True
    text = configured()
    if not text:
        return
    try:
        thresholds = parse_thresholds(text)
    except ValueError as err:  # a bad setting must not fail waits: say so and keep Python's defaults
        log.error("%s Keeping %s.", err, gc.get_threshold())
        return
    before = gc.get_threshold()
    gc.set_threshold(*thresholds)
    log.info("[%s] %s: garbage-collector thresholds %s -> %s.", SECTION, KEY, before, thresholds)


def wait_started(log: Any) -> None:
    """Count a wait in; at ``MANY_WAITS`` without the setting, suggest it once."""
    _state["waits"] += 1
    if _state["waits"] >= MANY_WAITS and not _state["suggested"]:
        _state["suggested"] = True
        if not configured():
            log.warning(
                "%d waits in this triggerer: full garbage collections may now stop its event loop "
                "for hundreds of ms. Consider [%s] %s = %s (see the provider's deployment guide).",
                _state["waits"],
                SECTION,
                KEY,
                RECOMMENDED,
            )


def wait_ended() -> None:
    _state["waits"] -= 1
