"""The garbage collector in a triggerer holding thousands of waits: a freeze by default, thresholds opt-in.

A full collection walks every tracked object with the event loop stopped. In a triggerer most of
them are Airflow's, the SDKs' and the providers' import-time objects (~200,000: ~180 ms a walk on
the benchmark machine), which live as long as the process. ``[jobstatus] triggerer_gc_freeze``
(default True): once per service, after the first read of that service's first wait in this process
(its SDK and client are imported by then), ``gc.collect(1)`` then ``gc.freeze()`` move everything
alive into the permanent generation, so later full collections walk only the objects created after
(the waits themselves). It is process-wide: the other providers' triggers of the triggerer get the
shorter collections too; what is alive at a freeze and later becomes cyclic garbage is not freed
(Airflow's DAG processor and LocalExecutor freeze the same way). ``False`` leaves the collector alone.

``[jobstatus] triggerer_gc_threshold`` (e.g. ``700,10,1000``, unset by default) is applied with
``gc.set_threshold`` once per process, by the first of this provider's triggers to run in a
triggerer: for fleets beyond what the freeze keeps short (benchmarks/results/notes.md). A triggerer
that reaches ``MANY_WAITS`` of this provider's waits without it says so once.
"""

from __future__ import annotations

import gc
from typing import Any

SECTION, KEY = "jobstatus", "triggerer_gc_threshold"
FREEZE_KEY = "triggerer_gc_freeze"
#: Waits in one process from which the log suggests the threshold setting (once).
MANY_WAITS = 2000
#: The value the deployment guide and the benchmarks use.
RECOMMENDED = "700,10,1000"

_state = {"applied": False, "suggested": False, "waits": 0}
#: Services whose first read in this process has been followed by a freeze (or that need none).
_frozen_for: set[str] = set()


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


def freeze_enabled() -> bool:
    """``[jobstatus] triggerer_gc_freeze`` (default True); a value that is not a boolean is an error."""
    from airflow_jobstatus.core.compat import conf

    text = str(conf.get(SECTION, FREEZE_KEY, fallback="True") or "True").strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"[{SECTION}] {FREEZE_KEY} must be True or False, got {text!r}.")


def after_first_read(service: str, log: Any) -> None:
    """After a wait's first read in a triggerer: the first time for ``service``, freeze what is alive.

    Cheap after the first call per service (a set lookup). ``gc.collect(1)`` first frees the young
    garbage (the old generation is not collected: that is the long pause this avoids).
    """
    if service in _frozen_for:
        return
    _frozen_for.add(service)
    try:
        enabled = freeze_enabled()
    except ValueError as err:  # a bad setting must not fail waits: say so and do not freeze
        log.error("%s Not freezing.", err)
        return
    if not enabled:
        return
    before = gc.get_freeze_count()
    gc.collect(1)
    gc.freeze()
    log.info(
        "[%s] %s: %d objects alive after the first %s read moved out of the garbage collector's walks "
        "(gc.freeze; %d frozen in this process).",
        SECTION,
        FREEZE_KEY,
        gc.get_freeze_count() - before,
        service,
        gc.get_freeze_count(),
    )
