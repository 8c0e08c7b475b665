"""The garbage collector in a triggerer holding thousands of waits: a freeze by default, thresholds opt-in.

A full collection walks every tracked object with the event loop stopped. In a triggerer most of
them are Airflow's, the SDKs' and the providers' import-time objects (~200,000: ~180 ms a walk on
the benchmark machine), which live as long as the process, and then the waits themselves (~18 each:
~150 ms more at 10,000). ``[jobstatus] triggerer_gc_freeze`` (default True) moves them into the
permanent generation with ``gc.freeze()``, at a wait's first read (its SDK is imported by then):

- once per service, after ``gc.collect(1)`` (the young generations only): the import-time objects;
- again every ``REFREEZE_EVERY`` of this provider's waits started, after a full ``gc.collect()``,
  which walks only what is not frozen yet (the objects since the last freeze: a few ms), so only live
  objects are frozen: the waits alive then;
- and once ``RELEASE_AFTER`` waits, and twice as many as are alive, have ended since the last
  release, ``gc.unfreeze()`` first, so that refreeze's full collection walks everything once (as long
  as one of the default's: ~450 ms at 10,000 waits, so once per two turnovers of the fleet instead of
  every few seconds): what a freeze kept and later became cyclic garbage is freed then. This
  provider's ended waits leave none (benchmarks/results/notes.md); another provider's triggers might.

No frozen count is read on the way (``gc.get_freeze_count()`` walks the whole permanent generation).

It is process-wide: the other providers' triggers of the triggerer get the shorter collections too.
``False`` leaves the collector alone.

``[jobstatus] triggerer_gc_threshold`` (e.g. ``700,10,1000``, unset by default) is applied with
``gc.set_threshold`` once per process, by the first of this provider's triggers to run in a
triggerer: for a triggerer with the freeze off (benchmarks/results/notes.md). One that reaches
``MANY_WAITS`` of this provider's waits with neither says so once.
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

#: This provider's waits started in this process between two freezes of the waits alive.
REFREEZE_EVERY = 1000
#: Waits ended since the last release (and at least twice the waits alive) before the next refreeze
#: gives the frozen objects back to a full collection.
RELEASE_AFTER = 10 * REFREEZE_EVERY

_state = {"applied": False, "suggested": False, "waits": 0}
#: Waits started in this process, ``started`` at the last freeze, waits ended since the last release.
_freezes = {"started": 0, "at_freeze": 0, "ended": 0}
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
    """Count a wait in; at ``MANY_WAITS`` with neither the freeze nor the setting, suggest it once."""
    _state["waits"] += 1
    _freezes["started"] += 1
    if _state["waits"] >= MANY_WAITS and not _state["suggested"]:
        _state["suggested"] = True
        if not configured() and not _freezing():
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
    _freezes["ended"] += 1


def _freezing() -> bool:
    try:
        return freeze_enabled()
    except ValueError:
        return False


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
    """After a wait's first read in a triggerer: freeze what is alive, the first time for ``service``
    and every ``REFREEZE_EVERY`` waits started since the last freeze.

    Cheap otherwise (a set lookup and a subtraction)."""
    first = service not in _frozen_for
    if not first and _freezes["started"] - _freezes["at_freeze"] < REFREEZE_EVERY:
        return
    _frozen_for.add(service)
    _freezes["at_freeze"] = _freezes["started"]
    try:
        enabled = freeze_enabled()
    except ValueError as err:  # a bad setting must not fail waits: say so and do not freeze
        if first:
            log.error("%s Not freezing.", err)
        return
    if enabled:
        _freeze(f"the first {service} read" if first else f"{REFREEZE_EVERY} more waits", first, log)


def _freeze(why: str, first: bool, log: Any) -> None:
    if first:
        gc.collect(1)  # the young generations: the old one is the long walk this avoids
        gc.freeze()
        log.info(
            "[%s] %s: after %s, the objects alive moved out of the garbage collector's walks (gc.freeze).",
            SECTION,
            FREEZE_KEY,
            why,
        )
        return
    ended = _freezes["ended"]
    release = ended >= max(RELEASE_AFTER, 2 * _state["waits"])
    if release:
        _freezes["ended"] = 0
        gc.unfreeze()  # what the freezes kept goes back: this collection walks everything
    found = gc.collect()  # otherwise it walks only what is not frozen: the objects since the last freeze
    gc.freeze()
    log.info(
        "[%s] %s: after %s, %s freed %d objects in cycles; the %d waits alive are frozen.",
        SECTION,
        FREEZE_KEY,
        why,
        f"a full collection of everything ({ended} waits ended since the last)"
        if release
        else "a full collection of the unfrozen",
        found,
        _state["waits"],
    )
