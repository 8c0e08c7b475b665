"""A recording metrics backend, installed the way Airflow installs its own.

Airflow 3.3's ``Stats`` (``airflow.sdk.observability.stats``) sends every metric through one backend,
made by the factory given to ``Stats.initialize(factory=..., export_legacy_names=...)``: the call
Airflow's task runner, triggerer, scheduler and executors make at start-up (with
``stats_utils.get_stats_factory()``), and the OpenLineage provider in its listener. ``recording_stats``
makes that same call with a factory returning a ``RecordingStatsLogger``, so a metric goes through
Airflow's real ``Stats.incr``/``Stats.timing`` (its legacy-name handling included) before it is
recorded; afterwards it puts back the no-op backend Airflow starts with.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any


@dataclass(frozen=True)
class Metric:
    kind: str  # incr | decr | gauge | timing
    name: str
    value: float
    tags: dict[str, Any] | None = field(default=None, hash=False)


class RecordingStatsLogger:
    """The ``StatsLogger`` interface Airflow's backends implement, recording instead of sending."""

    def __init__(self) -> None:
        self.metrics: list[Metric] = []

    def incr(self, stat: str, count: int = 1, rate: float = 1, *, tags: dict[str, Any] | None = None) -> None:
        self.metrics.append(Metric("incr", stat, count, tags))

    def decr(self, stat: str, count: int = 1, rate: float = 1, *, tags: dict[str, Any] | None = None) -> None:
        self.metrics.append(Metric("decr", stat, count, tags))

    def gauge(
        self,
        stat: str,
        value: float,
        rate: float = 1,
        delta: bool = False,
        *,
        tags: dict[str, Any] | None = None,
    ) -> None:
        self.metrics.append(Metric("gauge", stat, value, tags))

    def timing(self, stat: str, dt: Any, *, tags: dict[str, Any] | None = None) -> None:
        seconds = dt.total_seconds() if isinstance(dt, timedelta) else float(dt) / 1000.0
        self.metrics.append(Metric("timing", stat, seconds, tags))

    def timer(self, *args: Any, **kwargs: Any) -> Any:
        try:
            from airflow.sdk._shared.observability.metrics.protocols import Timer
        except ImportError:  # Airflow 3.1
            from airflow.metrics.protocols import Timer  # type: ignore[no-redef]

        return Timer()

    # -- reading -------------------------------------------------------------------------------------
    def ours(self) -> list[Metric]:
        """The provider's metrics (``jobstatus.*``), in order."""
        return [m for m in self.metrics if m.name.startswith("jobstatus.")]

    def counts(self, name: str) -> dict[tuple[tuple[str, Any], ...], float]:
        """Counter totals of the tagged ``name``, by its sorted tags."""
        out: dict[tuple[tuple[str, Any], ...], float] = {}
        for m in self.metrics:
            if m.kind == "incr" and m.name == name:
                key = tuple(sorted((m.tags or {}).items()))
                out[key] = out.get(key, 0) + m.value
        return out

    def names(self, kind: str | None = None) -> list[str]:
        return [m.name for m in self.ours() if kind is None or m.kind == kind]

    def timings(self, name: str) -> list[Metric]:
        return [m for m in self.metrics if m.kind == "timing" and m.name == name]


@contextmanager
def recording_stats(*, legacy_names: bool = True) -> Iterator[RecordingStatsLogger]:
    """Airflow's Stats records into the yielded backend (``legacy_names``: ``[metrics] legacy_names_on``)."""
    import os

    from airflow_jobstatus.wait import metrics

    recorder = RecordingStatsLogger()
    old_env = os.environ.get("AIRFLOW__METRICS__LEGACY_NAMES_ON")
    os.environ["AIRFLOW__METRICS__LEGACY_NAMES_ON"] = str(legacy_names)
    metrics.reset()
    restore = _install(recorder, legacy_names)
    try:
        yield recorder
    finally:
        restore()
        if old_env is None:
            os.environ.pop("AIRFLOW__METRICS__LEGACY_NAMES_ON", None)
        else:
            os.environ["AIRFLOW__METRICS__LEGACY_NAMES_ON"] = old_env
        metrics.reset()


def _install(recorder: RecordingStatsLogger, legacy_names: bool) -> Any:
    """Make ``recorder`` the process's stats backend as Airflow does; returns what puts the no-op back.

    Airflow 3.3: ``Stats.initialize(factory=..., export_legacy_names=...)``; 3.2: ``initialize(factory=...)``
    (no legacy-name option); 3.1 has no such call: ``airflow.stats.Stats`` builds ``Stats.instance`` once
    per process, so the instance is set."""
    import os

    try:
        from airflow.sdk._shared.observability.metrics import stats as shared
        from airflow.sdk._shared.observability.metrics.base_stats_logger import NoStatsLogger
    except ImportError:  # Airflow 3.1
        from airflow.stats import Stats as LegacyStats

        type.__setattr__(LegacyStats, "instance", recorder)
        type.__setattr__(LegacyStats, "_instance_pid", os.getpid())

        def restore_legacy() -> None:
            type.__setattr__(LegacyStats, "instance", None)
            type.__setattr__(LegacyStats, "_instance_pid", None)

        return restore_legacy
    if not hasattr(shared, "_get_backend"):  # Airflow 3.2
        # 3.2's OpenLineage listener calls Stats.initialize again when a run builds it: while
        # recording, a re-initialization keeps the recorder (Airflow's own processes are not affected).
        meta, stats = type(shared.Stats), shared.Stats
        original = meta.__dict__["initialize"]
        meta.initialize = lambda cls, **_: original(cls, factory=lambda: recorder)
        original(stats, factory=lambda: recorder)

        def restore_32() -> None:
            meta.initialize = original
            original(stats, factory=NoStatsLogger)

        return restore_32
    from airflow.sdk.observability.stats import Stats

    Stats.initialize(factory=lambda: recorder, export_legacy_names=legacy_names)
    return lambda: Stats.initialize(factory=NoStatsLogger, export_legacy_names=True)
