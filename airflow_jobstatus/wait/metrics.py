"""The wait's metrics, through Airflow's ``Stats``: the one module that emits them.

``JobWatch`` (``wait/rules.py``) calls these functions, and every wait goes through a ``JobWatch``:
poke and reschedule sensors and the operators in the worker, the trigger in the triggerer. The names
(README, "Metrics"):

==================================  =======  ==================  ===========================================
name                                type     tags                meaning
==================================  =======  ==================  ===========================================
``jobstatus.poll``                  counter  service, outcome    one status read: ``wait``, ``success``,
                                                                 ``failure`` (its verdict) or ``error``
``jobstatus.transient_error``       counter  service, kind       a read failed and is retried (``transient``,
                                                                 ``bad_response``, ``not_found`` in the grace)
``jobstatus.error``                 counter  service, kind       a wait ended by an error (``authentication``,
                                                                 ``not_found``, ``bad_request``, ``transient``
                                                                 when the budget ran out, …)
``jobstatus.wait.duration``         timer    service, outcome    the wait, start to end (``success``,
                                                                 ``failure``, ``error``)
``jobstatus.detection_latency``     timer    service, outcome    the job's end (as the service dates it) to
                                                                 the read that saw it
==================================  =======  ==================  ===========================================

Tagged and untagged, as Airflow sends its own: the name above with its tags, and, while ``[metrics]
legacy_names_on`` (the default), also the name with the tag values in it and no tags
(``jobstatus.poll.<service>.<outcome>``), for a StatsD that drops tags.

Cost: with Airflow's default no-op backend each call is one check of the backend (about 0.2 µs) and
builds nothing; the tag dicts and untagged names are built once per process and reused.
"""

from __future__ import annotations

import contextlib
import time
from datetime import timedelta
from typing import Any

from airflow_jobstatus.core.compat import legacy_stat_names, stats_if_active

POLL = "jobstatus.poll"
TRANSIENT_ERROR = "jobstatus.transient_error"
ERROR = "jobstatus.error"
WAIT_DURATION = "jobstatus.wait.duration"
DETECTION_LATENCY = "jobstatus.detection_latency"
#: Every metric: name -> (type, its second tag besides ``service``).
METRICS: dict[str, tuple[str, str]] = {
    POLL: ("counter", "outcome"),
    TRANSIENT_ERROR: ("counter", "kind"),
    ERROR: ("counter", "kind"),
    WAIT_DURATION: ("timer", "outcome"),
    DETECTION_LATENCY: ("timer", "outcome"),
}

#: (name, service, value) -> (tags, the untagged name or None); built once per process each.
_NAMES: dict[tuple[str, str, str], tuple[dict[str, str], str | None]] = {}
_legacy: bool | None = None


def reset() -> None:
    """Forget the cached names and ``legacy_names_on`` (tests that change the configuration)."""
    global _legacy
    _NAMES.clear()
    _legacy = None


def _names(name: str, service: str, value: str) -> tuple[dict[str, str], str | None]:
    key = (name, service, value)
    found = _NAMES.get(key)
    if found is None:
        global _legacy
        if _legacy is None:
            _legacy = legacy_stat_names()
        tags = {"service": service, METRICS[name][1]: value}
        # Airflow's rule for its legacy names: a "." in a value would add a level to the name.
        untagged = f"{name}.{service.replace('.', '__')}.{value.replace('.', '__')}" if _legacy else None
        found = _NAMES[key] = (tags, untagged)
    return found


def _count(stats: Any, name: str, service: str, value: str) -> None:
    tags, untagged = _names(name, service, value)
    stats.incr(name, tags=tags)
    if untagged is not None:
        stats.incr(untagged)


def _time(stats: Any, name: str, service: str, value: str, seconds: float) -> None:
    tags, untagged = _names(name, service, value)
    dt = timedelta(seconds=max(0.0, seconds))  # every backend reads a timedelta right (StatsD: ms)
    stats.timing(name, dt, tags=tags)
    if untagged is not None:
        stats.timing(untagged, dt)


#: ``active()``: Airflow's Stats when it sends metrics, None (falsy) while its backend is the no-op
#: logger; the wait loop asks it first, then nothing here builds anything.
active = stats_if_active


def _safe(fn: Any, stats: Any, *args: Any) -> None:
    """A metric must never fail a wait: a backend error is dropped (Airflow's loggers log their own)."""
    with contextlib.suppress(Exception):
        fn(stats, *args)


def poll(service: str, outcome: str) -> None:
    """One status read and what it meant: ``wait``, ``success`` or ``failure``."""
    stats = stats_if_active()
    if stats is not None:
        _safe(_count, stats, POLL, service, outcome)


def transient_error(service: str, kind: str) -> None:
    """A read failed with an error the wait rides out (a poll with outcome ``error``)."""
    stats = stats_if_active()
    if stats is not None:
        _safe(_count, stats, POLL, service, "error")
        _safe(_count, stats, TRANSIENT_ERROR, service, kind)


def wait_ended(
    service: str, outcome: str, started_wall: float, *, ended_at: float | None = None, kind: str | None = None
) -> None:
    """The wait's end: its duration, the detection latency when the job's end time is known, and
    with ``kind`` (``outcome="error"``) the final error, counted as a poll with outcome ``error``."""
    stats = stats_if_active()
    if stats is None:
        return
    now = time.time()
    if kind is not None:
        _safe(_count, stats, POLL, service, "error")
        _safe(_count, stats, ERROR, service, kind)
    _safe(_time, stats, WAIT_DURATION, service, outcome, now - started_wall)
    if ended_at is not None:
        _safe(_time, stats, DETECTION_LATENCY, service, outcome, now - ended_at)


def error_kind(err: BaseException) -> str:
    """The ``kind`` tag of an error: the service error's kind, ``configuration``, or ``unexpected``."""
    kind = getattr(err, "kind", None)
    if isinstance(kind, str):
        return kind
    from airflow_jobstatus.core.exceptions import ConfigurationError

    return "configuration" if isinstance(err, ConfigurationError) else "unexpected"


__all__ = [
    "DETECTION_LATENCY",
    "ERROR",
    "METRICS",
    "POLL",
    "TRANSIENT_ERROR",
    "WAIT_DURATION",
    "active",
    "error_kind",
    "poll",
    "reset",
    "transient_error",
    "wait_ended",
]
