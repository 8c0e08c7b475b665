"""``JobEventTrigger``: an asset watcher that fires once when a cloud job *enters* a state that counts.

Usable as ``AssetWatcher(name=..., trigger=JobEventTrigger(service=..., ...))`` on Airflow >= 3.3.
One generic trigger with a ``service`` argument, not one class per service: every per-service fact
(the list call, what it can filter on, how an entry reads) is the service's ``Watching`` in the
registry, so a class per service would only copy this one. Watchers of one service, connection,
scope and interval share one list call through Airflow's shared streams (``shared_stream_key``; ack
mode, ``events.stream``); each applies its own filters to the shared list (``filter_shared_stream``)
and keeps what it reported in its asset state store, written after Airflow has persisted the events
(``events.stream`` says exactly when that is safe). Transitions and filters: ``events.filters``.

Each event's payload: ``status`` (the ``JobStatus`` dict), ``console_url``, ``dedupe_key``
(``service:job_id:STATE``), ``service``, ``job_id``, ``state``, and ``name``, ``labels``,
``job_type``, ``changed_at`` (the job's end or update time, epoch seconds, None when undated).

Airflow 3.1 and 3.2 have no shared streams and no asset state store: building the trigger there
(at DAG parse) raises a ConfigurationError saying so, rather than a watcher that would list once
per watcher and forget on restart what it reported.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Hashable, Mapping, Sequence
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_jobstatus.core.compat import has_event_streams
from airflow_jobstatus.core.exceptions import ConfigurationError, ServiceError
from airflow_jobstatus.events import stream
from airflow_jobstatus.events.filters import Report, Tracker, TrackerState, WatchFilter
from airflow_jobstatus.hooks.base import DEFAULT_CALL_TIMEOUT
from airflow_jobstatus.services import get_service
from airflow_jobstatus.services.base import Watching
from airflow_jobstatus.services.google import impersonation_chain as normalized_chain
from airflow_jobstatus.wait.rules import DEFAULT_ERROR_BUDGET, DEFAULT_MAX_BACKOFF, check_seconds

#: Every scope argument a service may take (each service's ``Watching.scope_fields`` names its own).
SCOPE_ARGS = ("project_id", "region", "location", "cluster_id", "queue_name", "job_type")
#: The most seconds of look-back (jobs that ended before the watcher's first start).
MAX_LOOK_BACK = 7 * 24 * 3600.0
#: Arguments that do not change what a watcher reports (its stored state survives a change of them).
_NOT_IN_STATE_KEY = ("poll_interval", "call_timeout", "error_budget", "max_backoff", "look_back")


def watching_of(service: str) -> Watching:
    """The service's ``Watching``; ConfigurationError when its jobs cannot be watched."""
    spec = get_service(service)
    if spec.watching is None:
        raise ConfigurationError(f"{spec.title} jobs cannot be watched: the service has no job list.")
    return spec.watching


class JobEventTrigger(BaseEventTrigger):
    """Fires one event per job of ``service`` in one scope that enters a state in ``states``.

    Scope: ``project_id`` (Google; None: the connection's), ``region`` (Dataproc jobs and batches),
    ``location`` (Dataflow, Vertex AI), ``job_type`` (Vertex AI's collection; DLI ``sql``/``spark``),
    ``queue_name`` (DLI), ``cluster_id`` (CDM). Filters (each applied to the listed jobs; a filter the
    service cannot serve is a ConfigurationError): ``labels`` (Google), ``tags`` (DLI), ``name_prefix``,
    ``name_pattern`` (a regex searched in the job's name), ``job_id_prefix``, ``job_type`` (a filter
    where it is not the scope: Dataproc ``spark_job``…, Dataflow ``JOB_TYPE_BATCH``…, DLI SQL ``QUERY``…).
    ``states``: the normalized states that count (default: every terminal one). ``look_back``:
    seconds before the watcher's first start whose ends still count (default 0: only ends after it).
    Transient list errors are ridden out for ``error_budget`` seconds, as a sensor's reads are.
    """

    def __init__(
        self,
        service: str,
        *,
        gcp_conn_id: str | None = None,
        huaweicloud_conn_id: str | None = None,
        project_id: str | None = None,
        region: str | None = None,
        location: str | None = None,
        cluster_id: str | None = None,
        queue_name: str | None = None,
        job_type: str | None = None,
        labels: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        name_prefix: str | None = None,
        name_pattern: str | None = None,
        job_id_prefix: str | None = None,
        states: Sequence[str] | str | None = None,
        poll_interval: float = 60.0,
        look_back: float = 0.0,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        error_budget: float = DEFAULT_ERROR_BUDGET,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        impersonation_chain: str | Sequence[str] | None = None,
    ):
        super().__init__()  # type: ignore[no-untyped-call]  # BaseEventTrigger.__init__ is unannotated
        if not has_event_streams():
            raise ConfigurationError(
                "JobEventTrigger needs Airflow >= 3.3 (shared streams and the asset state store); "
                "on this Airflow wait on a job the DAG knows with a sensor instead."
            )
        spec = get_service(service)
        watching = watching_of(service)
        self.service = spec.name
        conn_arg = spec.conn_id_arg
        other = {"gcp_conn_id": gcp_conn_id, "huaweicloud_conn_id": huaweicloud_conn_id}
        wrong = [name for name, value in other.items() if name != conn_arg and value is not None]
        if wrong:
            raise ConfigurationError(f"{spec.title} takes {conn_arg}, not {wrong[0]}.")
        self.conn_arg = conn_arg
        self.conn_id = other[conn_arg]
        given = {
            "project_id": project_id,
            "region": region,
            "location": location,
            "cluster_id": cluster_id,
            "queue_name": queue_name,
            "job_type": job_type,
        }
        job_type_is_scope = "job_type" in watching.scope_fields
        unknown = [
            n
            for n, v in given.items()
            if v is not None
            and n not in watching.scope_fields
            and not (n == "job_type" and not job_type_is_scope)
        ]
        if unknown:
            raise ConfigurationError(
                f"{spec.title} watchers take no {unknown[0]!r} (scope: {', '.join(watching.scope_fields) or 'none'})."
            )
        missing = [n for n in watching.required_scope if not given.get(n)]
        if missing:
            raise ConfigurationError(f"{spec.title} watchers need {', '.join(missing)}.")
        self.scope = {n: given[n] for n in watching.scope_fields if given.get(n) is not None}
        self.project_id, self.region, self.location = project_id, region, location
        self.cluster_id, self.queue_name, self.job_type = cluster_id, queue_name, job_type
        self.labels = dict(labels) if labels else None
        self.tags = dict(tags) if tags else None
        self.name_prefix, self.name_pattern, self.job_id_prefix = name_prefix, name_pattern, job_id_prefix
        self.filter = WatchFilter.build(
            service=self.service,
            servable=watching.filters,
            states=states,
            labels=labels,
            tags=tags,
            name_prefix=name_prefix,
            name_pattern=name_pattern,
            job_id_prefix=job_id_prefix,
            job_type=None if job_type_is_scope else job_type,
        )
        self.states = sorted(s.value for s in self.filter.states)
        self.poll_interval = check_seconds("poll_interval", poll_interval, positive=True)
        self.look_back = check_seconds("look_back", look_back)
        if self.look_back > MAX_LOOK_BACK:
            raise ConfigurationError(
                f"look_back is at most {MAX_LOOK_BACK:.0f} s (7 days), got {look_back!r}."
            )
        self.call_timeout = check_seconds("call_timeout", call_timeout, positive=True)
        self.error_budget = check_seconds("error_budget", error_budget)
        self.max_backoff = check_seconds("max_backoff", max_backoff, positive=True)
        self.impersonation_chain = list(normalized_chain(impersonation_chain)) or None
        if self.impersonation_chain and spec.cloud != "google":
            raise ConfigurationError(
                f"{spec.title} watchers take no impersonation_chain (a Google argument)."
            )

    # -- serialization ------------------------------------------------------------------------------
    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs: dict[str, Any] = {"service": self.service, self.conn_arg: self.conn_id}
        for name in SCOPE_ARGS:
            value = getattr(self, name)
            if value is not None:
                kwargs[name] = value
        for name in ("labels", "tags", "name_prefix", "name_pattern", "job_id_prefix"):
            value = getattr(self, name)
            if value is not None:
                kwargs[name] = value
        kwargs.update(
            states=self.states,
            poll_interval=self.poll_interval,
            look_back=self.look_back,
            call_timeout=self.call_timeout,
            error_budget=self.error_budget,
            max_backoff=self.max_backoff,
        )
        if self.impersonation_chain:
            kwargs["impersonation_chain"] = self.impersonation_chain
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    @property
    def log(self) -> Any:
        """One logger for every watcher (the triggerer routes lines by the context it binds)."""
        return type(self).logger()

    # -- the shared stream --------------------------------------------------------------------------
    def poll_args(self) -> dict[str, Any]:
        """What the scope's list call needs: the service, connection, call and retry settings."""
        return {
            "service": self.service,
            "conn_id": self.conn_id,
            "poll_interval": self.poll_interval,
            "call_timeout": self.call_timeout,
            "error_budget": self.error_budget,
            "max_backoff": self.max_backoff,
            "impersonation_chain": self.impersonation_chain,
        }

    def shared_stream_key(self) -> Hashable | None:
        """(service, connection, impersonation chain, scope, interval): one list call per value."""
        args = {**self.poll_args(), **self.scope, self.conn_arg: self.conn_id}
        return stream.stream_key(args, watching_of(self.service).scope_fields, self.conn_arg)

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> Any:
        """Ack mode: the group's list poll; Airflow calls ``advance`` after the events are persisted."""
        trigger = cls(**kwargs)
        return stream.producer(trigger.poll_args(), trigger.scope, trigger.shared_stream_key())

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        """This watcher's events from the scope's shared snapshots, its state committed by ``advance``."""
        tracker = await self._load_tracker()
        key = self.shared_stream_key()
        subscriber = stream.Subscriber(lambda keys: self._commit(tracker, keys))
        stream.join(key, subscriber)
        try:
            async for raw in self._guarded(shared_stream):
                if not isinstance(raw, stream.ListSnapshot):
                    continue  # a Flush: pulling it is what moves this watcher past the snapshot
                for report in tracker.decide(raw.jobs, raw.listed_at):
                    subscriber.fired(raw.poll_id, report.key)
                    yield TriggerEvent(self.payload(report))
        finally:
            stream.leave(key, subscriber)

    async def _guarded(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """The shared stream; a final list error (401/403, a refused filter, the error budget spent)
        is logged in one line and ends the watcher with that error."""
        try:
            async for raw in shared_stream:
                yield raw
        except (ServiceError, ConfigurationError) as err:
            self.log.error("Job watcher on %s %s ends: %s", self.service, self.scope or "", err)
            raise

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Standalone (a triggerer that does not share the stream): this watcher's own list poll, its
        filters pushed down where the API can; its state is written when the runner takes the next
        event, without Airflow's persistence gate (a crash in between may lose or repeat a report)."""
        tracker = await self._load_tracker()
        pushed = {"labels": self.filter.labels, "job_type": self.filter.job_type}
        key = ("standalone", self.shared_stream_key())
        async for snapshot in self._guarded(stream.poll_scope(self.poll_args(), self.scope, key, pushed)):
            for report in tracker.decide(snapshot.jobs, snapshot.listed_at):
                yield TriggerEvent(self.payload(report))
                await self._commit(tracker, [report.key])

    # -- the payload and the state --------------------------------------------------------------------
    def payload(self, report: Report) -> dict[str, Any]:
        job, spec = report.job, get_service(self.service)
        try:
            url = spec.console_url(job.ref, self.project_id or self.region)
        except Exception:  # a link must never cost an event
            url = ""
        return {
            "service": self.service,
            "job_id": job.status.job_id,
            "state": job.status.state.value,
            "dedupe_key": report.key,
            "status": job.status.to_dict(),
            "console_url": url,
            "name": job.name,
            "labels": dict(job.labels),
            "job_type": job.job_type,
            "changed_at": job.changed_at,
        }

    @property
    def state_key(self) -> str:
        """This watcher's key in its asset state store."""
        return stream.state_key(self.serialize()[1], _NOT_IN_STATE_KEY)

    async def _load_tracker(self) -> Tracker:
        """The stored state (a restart goes on where it was confirmed), else a fresh one from now."""
        stored = None
        if self.asset_state_store is not None:
            try:
                stored = TrackerState.from_json(await _store_get(self.asset_state_store, self.state_key))
            except Exception as err:  # unreadable: start anew, said once
                self.log.warning("Could not read the watcher's state (%s): starting from now.", err)
        if stored is not None:
            return Tracker(self.service, self.filter, stored)
        tracker = Tracker.fresh(self.service, self.filter, self.look_back)
        await self._store(tracker.state)  # the first start is the floor across restarts
        return tracker

    async def _commit(self, tracker: Tracker, keys: list[str]) -> None:
        if tracker.confirmed(keys):
            await self._store(tracker.state)

    async def _store(self, state: TrackerState) -> None:
        if self.asset_state_store is not None:
            await _store_set(self.asset_state_store, self.state_key, state.to_json())


def _accessors(store: Any) -> list[Any]:
    """Every asset accessor of a trigger's store (one per watched asset), or the store itself."""
    found = [*getattr(store, "_by_name", {}).values(), *getattr(store, "_by_uri", {}).values()]
    return found or [store]


async def _store_get(store: Any, key: str) -> Any:
    """The value of the first asset that has one (a trigger shared by assets keeps one state)."""
    for accessor in _accessors(store):
        value = await accessor.aget(key)
        if value is not None:
            return value
    return None


async def _store_set(store: Any, key: str, value: Any) -> None:
    for accessor in _accessors(store):
        await accessor.aset(key, value)


__all__ = ["JobEventTrigger", "watching_of"]
