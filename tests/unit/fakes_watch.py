"""In-memory stand-ins for the event-watcher tests: a scope whose job list the test scripts, a hook
that lists it (counting list calls), an asset state store, and a runner that drives Airflow's real
``SharedStreamManager`` the way the triggerer does (bind each event, confirm it persisted later)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from airflow_jobstatus.core.states import JobState, JobStatus
from airflow_jobstatus.hooks.base import JobStatusHook
from airflow_jobstatus.services.base import Watched
from airflow_jobstatus.services.dataflow import DataflowJobRef


def job(
    job_id: str,
    state: JobState | str,
    *,
    changed_at: float | None = 2000.0,
    name: str | None = None,
    labels: Mapping[str, str] | None = None,
    job_type: str = "JOB_TYPE_BATCH",
    location: str = "europe-west1",
) -> Watched:
    """A listed Dataflow job."""
    state = JobState(state)
    return Watched(
        status=JobStatus("dataflow", job_id, state, state.value),
        ref=DataflowJobRef(job_id=job_id, location=location, project_id="p"),
        name=name or job_id,
        labels=dict(labels or {}),
        job_type=job_type,
        changed_at=changed_at,
    )


class Scopes:
    """The job list of each scope (by its ``location``), changed by the test between polls; every
    list call is recorded with its scope and push-down. ``errors``: raised by the next calls."""

    def __init__(self) -> None:
        self.jobs: dict[str, list[Watched]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.errors: list[BaseException] = []
        self.listed = asyncio.Event()

    def set(self, location: str, *jobs: Watched) -> None:
        self.jobs[location] = list(jobs)

    def calls_for(self, location: str) -> int:
        return sum(1 for where, _ in self.calls if where == location)


class FakeListHook(JobStatusHook[Any]):
    """A hook whose ``alist_jobs`` answers from a ``Scopes``."""

    service = "dataflow"
    conn_name_attr = "gcp_conn_id"
    default_conn_name = "google_cloud_default"
    scopes: Scopes

    async def alist_jobs(
        self, scope: Mapping[str, Any], pushed: Mapping[str, Any] | None = None
    ) -> list[Watched]:
        await asyncio.sleep(0)
        location = str(scope.get("location"))
        self.scopes.calls.append((location, dict(pushed or {})))
        self.scopes.listed.set()
        if self.scopes.errors:
            raise self.scopes.errors.pop(0)
        return list(self.scopes.jobs.get(location, []))


def hook_factory(scopes: Scopes) -> Callable[..., FakeListHook]:
    def make(service: str, conn_id: str | None = None, **kwargs: Any) -> FakeListHook:
        hook = FakeListHook(conn_id, timeout=kwargs.get("timeout", 30.0))
        hook.scopes = scopes
        return hook

    return make


class FakeAssetStore:
    """An asset state store (``aget``/``aset``), recording each write; it survives "restarts"."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.writes: list[tuple[str, Any]] = []

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = value
        self.writes.append((key, value))


class Runner:
    """The triggerer's part around shared streams: subscribe each trigger, take its events (binding
    each to its persist sequence number as ``run_trigger`` does), and confirm them on ``persist()``."""

    def __init__(self, **manager_kwargs: Any) -> None:
        from airflow.triggers.shared_stream import SharedStreamManager

        self.manager = SharedStreamManager(**manager_kwargs)
        self.events: dict[int, list[dict[str, Any]]] = {}
        self.unconfirmed: list[int] = []
        self.errors: dict[int, BaseException] = {}
        self.tasks: dict[int, asyncio.Task[None]] = {}

    def start(self, trigger_id: int, trigger: Any) -> None:
        self.events.setdefault(trigger_id, [])
        self.tasks[trigger_id] = asyncio.create_task(self._run(trigger_id, trigger))

    async def _run(self, trigger_id: int, trigger: Any) -> None:
        key = trigger.shared_stream_key()
        stream = self.manager.subscribe(trigger_id=trigger_id, trigger=trigger, key=key)
        try:
            async for event in trigger.filter_shared_stream(stream):
                seq = self.manager.bind_pending_event(trigger_id=trigger_id, key=key)
                self.events[trigger_id].append(event.payload)
                if seq is not None:
                    self.unconfirmed.append(seq)
        except Exception as err:
            self.errors[trigger_id] = err
        finally:
            await self.manager.unsubscribe(trigger_id, key)

    def persist(self) -> None:
        """The supervisor stored every event so far: confirm them (the next state sync)."""
        seqs, self.unconfirmed = self.unconfirmed, []
        self.manager.confirm_persisted(seqs)

    async def kill(self) -> None:
        """A SIGKILL: every trigger gone at once, nothing more confirmed, nothing cleaned up in order."""
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        await self.manager.stop_all()
        self.tasks.clear()

    def all_events(self) -> list[dict[str, Any]]:
        return [e for events in self.events.values() for e in events]


async def settle(rounds: int = 20) -> None:
    """Let the loop run a few passes (the producer, the filters, the advance pump)."""
    for _ in range(rounds):
        await asyncio.sleep(0)
