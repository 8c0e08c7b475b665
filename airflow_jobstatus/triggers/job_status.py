"""One trigger for every service: polls a hook's async path until the job's state is decisive.

``JobStatusTrigger`` is what a task defers to. ``JobStatusStartTrigger`` is the same wait for a
deferrable sensor that Airflow starts straight in the triggerer (``start_from_trigger``): it carries
the sensor's own (templated) fields, which the triggerer renders before ``run()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

from airflow.triggers.base import (
    BaseTrigger,
    TaskFailedEvent,
    TaskSkippedEvent,
    TaskSuccessEvent,
    TriggerEvent,
)

from airflow_jobstatus.core.compat import (
    axcom_set,
    bridge_trigger_comms,
    note_missing,
    shielded,
    trigger_on_kill,
)
from airflow_jobstatus.core.dotted import load_callable
from airflow_jobstatus.core.exceptions import ConfigurationError, JobFailedError, ServiceError
from airflow_jobstatus.core.states import JobStatus
from airflow_jobstatus.core.templating import is_template
from airflow_jobstatus.hooks.base import DEFAULT_CALL_TIMEOUT, JobStatusHook, make_hook
from airflow_jobstatus.services import get_service, google
from airflow_jobstatus.services.base import JobRef
from airflow_jobstatus.triggers.coalescing import parse_coalesce
from airflow_jobstatus.triggers.events import END_FROM_TRIGGER_STATES, decided_event, error_event, seen_of
from airflow_jobstatus.wait import gc as triggerer_gc
from airflow_jobstatus.wait.rules import (
    CANCEL_ERROR_BUDGET,
    DEFAULT_ERROR_BUDGET,
    DEFAULT_MAX_BACKOFF,
    JobWatch,
    Verdict,
)
from airflow_jobstatus.wait.shared_sleep import shared_sleep

if TYPE_CHECKING:
    import jinja2
    from airflow.sdk import Context

    from airflow_jobstatus.triggers.coalescing import Waiter

#: Seconds kept back from ``[triggerer] on_kill_timeout`` so a slow cancel is logged before Airflow gives up.
ON_KILL_MARGIN = 2.0


def parse_end_from_trigger(value: bool | Sequence[str] | None) -> list[str]:
    """``end_from_trigger`` as a sorted list of task states: True means all of them, False none."""
    if value is None or value is False:
        return []
    if value is True:
        return list(END_FROM_TRIGGER_STATES)
    states = sorted({str(s) for s in value})
    unknown = set(states) - set(END_FROM_TRIGGER_STATES)
    if unknown:
        raise ValueError(
            f"end_from_trigger: unknown task state(s) {sorted(unknown)}; valid: {END_FROM_TRIGGER_STATES}."
        )
    return states


def on_kill_budget() -> float:
    """How long ``on_kill`` may spend cancelling: Airflow's bound minus a margin, at most the cancel budget."""
    from airflow_jobstatus.core.compat import conf

    bound = float(conf.getfloat("triggerer", "on_kill_timeout", fallback=30.0))
    return max(1.0, min(CANCEL_ERROR_BUDGET, bound - ON_KILL_MARGIN))


class JobStatusTrigger(BaseTrigger):
    """Waits on one job of ``service``, named by ``job_ref`` (the service's ``JobRef`` as a dict).

    Yields one status-dict event, an ``airflow_jobstatus.triggers.events.WaitEvent``: ``{"status": "success" |
    "failure" | "error", "job_status": {...}, "error": {...}, "message": str, "last_sub_jobs": [...],
    "progress_history": [...]}``.
    Restarting the triggerer re-runs it from its serialized kwargs: it only reads, so that is safe.
    ``initial_delay``: seconds before the first read (the task has just read the job itself).
    ``wait_started``: when the task's wait began (epoch seconds), for the wait-duration metric.

    ``end_from_trigger`` (True, or the task states it may end the task in: ``success``, ``failed``,
    ``skipped``): a decisive status ends the task here instead of resuming it on a worker — success
    after pushing the ``return_value`` XCom (``push_return_value``) and ``outcome_xcoms(status,
    seen)`` (``"module:function"``) as a worker would, a job failure as ``failed`` or, with
    ``soft_fail``, ``skipped``, the failure's message in the task log. An outcome not listed, and
    every ``error`` event, resumes the task on a worker as before. ``cancel_on_kill``: a user killing the deferred task cancels the job.
    ``coalesce``: ``"auto"`` (default: a list call shared by the scope's waits while that costs fewer
    calls), True (always; ConfigurationError where the service cannot) or False (the job's own read).
    """

    def __init__(
        self,
        service: str,
        job_ref: dict[str, Any],
        conn_id: str | None = None,
        poll_interval: float = 30.0,
        success_states: list[str] | None = None,
        failure_states: list[str] | None = None,
        error_budget: float = DEFAULT_ERROR_BUDGET,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        not_found_grace: float = 0.0,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        cancel_on_kill: bool = False,
        initial_delay: float = 0.0,
        impersonation_chain: str | Sequence[str] | None = None,
        end_from_trigger: bool | Sequence[str] = False,
        soft_fail: bool = False,
        push_return_value: bool = True,
        outcome_xcoms: str | None = None,
        coalesce: bool | str = "auto",
        wait_started: float | None = None,
    ):
        super().__init__()  # type: ignore[no-untyped-call]  # BaseTrigger.__init__ is unannotated
        self.service = service
        self.job_ref = dict(job_ref)
        self.conn_id = conn_id
        self.poll_interval = float(poll_interval)
        self.success_states = None if success_states is None else sorted(str(s) for s in success_states)
        self.failure_states = None if failure_states is None else sorted(str(s) for s in failure_states)
        self.error_budget = float(error_budget)
        self.max_backoff = float(max_backoff)
        self.not_found_grace = float(not_found_grace)
        self.call_timeout = float(call_timeout)
        self.cancel_on_kill = bool(cancel_on_kill)
        self.initial_delay = float(initial_delay)
        self.impersonation_chain = list(google.impersonation_chain(impersonation_chain)) or None
        self.end_from_trigger = parse_end_from_trigger(end_from_trigger)
        self.soft_fail = bool(soft_fail)
        self.push_return_value = bool(push_return_value)
        self.outcome_xcoms = outcome_xcoms
        self.coalesce = parse_coalesce(coalesce)
        #: When the task's wait started (epoch seconds): the wait-duration metric counts from there.
        self.wait_started = None if wait_started is None else float(wait_started)
        if self.coalesce is True:
            from airflow_jobstatus.triggers.coalescing import coalescing_of

            coalescing_of(service, self.job_ref or None)  # ConfigurationError when it cannot

    #: The constructor's arguments, each kept under its own name: what ``serialize`` writes.
    KWARGS = (
        "service",
        "job_ref",
        "conn_id",
        "poll_interval",
        "success_states",
        "failure_states",
        "error_budget",
        "max_backoff",
        "not_found_grace",
        "call_timeout",
        "cancel_on_kill",
        "initial_delay",
        "impersonation_chain",
        "end_from_trigger",
        "soft_fail",
        "push_return_value",
        "outcome_xcoms",
        "coalesce",
        "wait_started",
    )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        path = f"{type(self).__module__}.{type(self).__qualname__}"
        return path, {name: getattr(self, name) for name in self.KWARGS}

    @property
    def log(self) -> Any:
        """One logger for all triggers of the class, not one each (~1 KB and five tracked objects a wait).

        The triggerer routes each line to its trigger's log by the context it binds per trigger, not by
        the logger object.
        """
        return type(self).logger()

    def _hook(self) -> JobStatusHook[Any]:
        extra = {"impersonation_chain": self.impersonation_chain} if self.impersonation_chain else {}
        return make_hook(self.service, self.conn_id, timeout=self.call_timeout, **extra)

    def _ref(self) -> JobRef:
        return get_service(self.service).ref(self.job_ref)

    def _waiter(self, hook: JobStatusHook[Any], ref: JobRef) -> Waiter | None:
        """With ``coalesce``: the wait's polls through a list call shared by waits (its read, and a
        pause until the next list answer instead of a sleep), "auto" only while that saves calls
        (``triggers/coalescing.py``); None: the job's own read every interval."""
        if self.coalesce is False:
            return None
        from airflow_jobstatus.triggers.coalescing import Waiter, auto_refusal

        auto = self.coalesce == "auto"
        if auto and auto_refusal(self.service, ref) is not None:
            return None  # CDM, a ref the list does not serve: per-job polling (logged once)
        return Waiter(hook, ref, self.poll_interval, auto=auto)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        watch = JobWatch.for_wait(self, log=self.log)
        waiter: Waiter | None = None
        in_triggerer = self.trigger_id is not None  # set by the triggerer (not by dag.test())
        if in_triggerer:
            bridge_trigger_comms()  # Airflow 3.1: a worker thread's sync request goes through the loop
            triggerer_gc.apply_once(self.log)
            triggerer_gc.wait_started(self.log)
            if self.cancel_on_kill and not trigger_on_kill():
                note_missing(
                    "cancel on a user kill of a deferred task",
                    "Airflow < 3.3 calls no trigger on_kill: a deferred task marked failed or success, or "
                    "cleared, leaves its job running; a kill while the task runs on a worker still cancels",
                    self.log,
                )
        try:
            hook, ref = self._hook(), self._ref()
            waiter = self._waiter(hook, ref)
            if self.initial_delay > 0:
                await shared_sleep(self.initial_delay)
            first_read = True
            while True:
                # No closure: no cells held per trigger.
                status = await (watch.aread(waiter) if waiter else watch.aread(hook.aget_status, ref))
                if first_read:
                    first_read = False
                    if in_triggerer:  # the service's SDK is imported now: out of the GC's walks
                        triggerer_gc.after_first_read(self.service, self.log)
                    await self.after_first_read(hook, ref)
                verdict = watch.verdict(status)
                if verdict != "wait":
                    event = decided_event(verdict, status, watch.snapshot())
                    yield await self.final_event(verdict, status, dict(event))
                    return
                # Nothing of this poll is held through the interval: at 10,000 waits, objects that
                # outlive two young collections are what sets off full GCs (shared_sleep's docstring).
                del status
                await (waiter.pause(shared_sleep) if waiter else shared_sleep(self.poll_interval))
        except ServiceError as err:
            yield TriggerEvent(dict(error_event(err, watch.snapshot())))
        except ConfigurationError as err:  # expected (an undefined connection): one line, no traceback
            watch.gave_up(err)
            self.log.error("Cannot wait on %s job %s: %s", self.service, self.job_ref, err)
            yield TriggerEvent(
                dict(error_event(ServiceError(str(err), service=self.service), watch.snapshot()))
            )
        except Exception as err:  # a bug or an unexpected SDK error: report it rather than die silently
            watch.gave_up(err)
            self.log.exception("Unexpected error while waiting on %s job %s", self.service, self.job_ref)
            error = ServiceError(f"{type(err).__name__}: {err}", service=self.service)
            yield TriggerEvent(dict(error_event(error, watch.snapshot())))
        finally:
            if in_triggerer:
                triggerer_gc.wait_ended()
            if waiter is not None:
                waiter.close()  # leave the poller (the last waiter out stops it)

    async def after_first_read(self, hook: JobStatusHook[Any], ref: JobRef) -> None:
        """Called once, after the wait's first read (its connection is loaded by then)."""

    # -- ending the task here (end_from_trigger) -------------------------------------------------------
    def task_end_state(self, verdict: Verdict) -> str | None:
        """The task state a decisive verdict ends the task in here; None: resume it on a worker."""
        state = "success" if verdict == "success" else ("skipped" if self.soft_fail else "failed")
        return state if state in self.end_from_trigger else None

    async def final_event(self, verdict: Verdict, status: JobStatus, payload: dict[str, Any]) -> TriggerEvent:
        """The status-dict event, or a task-end event when this outcome may end the task here.

        A task-end event keeps ``payload`` too: Airflow sends only its state, but ``dag.test()``,
        which runs triggers inline, resumes the task with an event's payload, so a test run takes
        the worker path with the same event as before.
        """
        state = self.task_end_state(verdict)
        if state is None:
            return TriggerEvent(payload)
        event: TriggerEvent
        if state == "success":
            try:
                xcoms = self.success_xcoms(status, payload)
                if xcoms:
                    await self.push_xcoms(xcoms)
            except Exception:  # the result must not be lost: the worker pushes it as before
                self.log.exception(
                    "Could not push the outcome XComs from here; resuming the task on a worker."
                )
                return TriggerEvent(payload)
            self.log.info("%s: the task succeeds in the triggerer.", status.summary())
            event = TaskSuccessEvent()
        elif state == "skipped":
            self.log.warning("soft_fail: %s", JobFailedError(status))  # the worker's skip message
            event = TaskSkippedEvent()
        else:
            self.log.error("%s", JobFailedError(status))  # the worker's failure message
            event = TaskFailedEvent()
        event.payload = payload
        return event

    async def push_xcoms(self, xcoms: dict[str, Any], *, to_db: bool = False) -> None:
        """Push XComs the way a worker does: the XCom backend's ``serialize_value``, then ``SetXCom``;
        with ``to_db``, straight into the metadata DB as a worker pushes extra links (no custom backend).

        Not ``TaskSuccessEvent(xcoms=...)``: Airflow 3.3 writes those with ``TaskInstance.xcom_push``
        (``json.dumps`` into the JSON column), and a task pulling them gets a JSON string instead of
        the dict or number the worker would have pushed.
        """
        from airflow.sdk.execution_time import task_runner
        from airflow.sdk.execution_time.comms import SetXCom
        from airflow.sdk.execution_time.xcom import XCom

        ti = self.task_instance
        comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
        if ti is None or comms is None:
            raise RuntimeError("no task instance or supervisor to push XComs through")
        map_index = ti.map_index if ti.map_index is not None else -1
        where: dict[str, Any] = {
            "dag_id": ti.dag_id,
            "task_id": ti.task_id,
            "run_id": ti.run_id,
            "map_index": map_index,
        }
        for key, value in xcoms.items():
            if to_db:
                message = SetXCom(key=key, value=value, **where)
                if hasattr(comms, "asend"):
                    await shielded(comms.asend(message))
                else:
                    comms.send(message)
            elif hasattr(comms, "asend"):  # the triggerer's
                await axcom_set(key, value, **where)
            else:  # dag.test()'s in-process supervisor
                XCom.set(key, value, **where)

    def success_xcoms(self, status: JobStatus, payload: dict[str, Any]) -> dict[str, Any]:
        """What the worker would push on success: ``outcome_xcoms``' keys, then ``return_value``."""
        xcoms: dict[str, Any] = {}
        if self.outcome_xcoms:
            xcoms.update(load_callable(self.outcome_xcoms)(status, seen_of(payload)))
        if self.push_return_value:
            xcoms["return_value"] = status.to_dict()
        return xcoms

    # -- user kill --------------------------------------------------------------------------------------
    async def task_state(self) -> str | None:
        """The task instance's state in the metadata DB, asked of the triggerer's supervisor; None when
        it cannot be known here (no task instance or supervisor, or the request failed)."""
        from airflow.sdk.execution_time import task_runner
        from airflow.sdk.execution_time.comms import GetTaskStates

        ti, comms = self.task_instance, getattr(task_runner, "SUPERVISOR_COMMS", None)
        if ti is None or comms is None or not hasattr(comms, "asend"):
            return None
        map_index = ti.map_index if ti.map_index is not None else -1
        try:
            answer = await shielded(  # a cancel while the answer is on its way: 3.1 misreads the next
                comms.asend(
                    GetTaskStates(
                        dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id], map_index=map_index
                    )
                )
            )
            states = dict(getattr(answer, "task_states", {}) or {}).get(ti.run_id) or {}
        except Exception as err:  # unknown: cancel as a kill would (a job is never left running unseen)
            self.log.warning("Could not read the task's state before cancelling: %s", err)
            return None
        key = ti.task_id if map_index < 0 else f"{ti.task_id}_{map_index}"
        state = states.get(key)
        return None if state is None else str(getattr(state, "value", state))

    async def on_kill(self) -> None:
        """Cancel the job when the user kills the deferred task, but only a job the task started.

        Airflow calls this on a user's mark-failed, mark-success or clear of the deferred task, and
        (Airflow 3.3.2, apache/airflow#73454) when a trigger moves to another triggerer: so the task's
        state is read first, and a task still deferred is not a kill (nothing is cancelled). A
        deferral timeout is the task's worker's to handle. The cancel
        is retried through transient errors within ``[triggerer] on_kill_timeout`` and logged.
        """
        if not self.cancel_on_kill:
            return
        ref = self._ref()
        state = await self.task_state()
        if state == "deferred":
            # Not a user's kill: the task still waits on this trigger, which moved to another
            # triggerer (Airflow calls on_kill then too, apache/airflow#73454). The job lives on.
            self.log.warning(
                "Trigger stopped while the task is still deferred (moved to another triggerer?): "
                "%s job %s is left running for the trigger that takes over.",
                self.service,
                ref.display_id,
            )
            return
        self.log.info("Task killed while deferred: cancelling %s job %s", self.service, ref.display_id)
        hook = self._hook()
        budget = on_kill_budget()
        watch = JobWatch.for_cancel(self.log, budget)
        try:
            await asyncio.wait_for(watch.aread(lambda: hook.acancel(ref)), timeout=budget)
        except TimeoutError:
            self.log.error(
                "Could not cancel %s job %s: no answer within %.0f s.", self.service, ref.display_id, budget
            )
            raise
        except Exception as err:
            self.log.error("Could not cancel %s job %s: %s", self.service, ref.display_id, err)
            raise
        self.log.info("Cancel of %s job %s accepted.", self.service, ref.display_id)


class JobStatusStartTrigger(JobStatusTrigger):
    """``JobStatusTrigger`` for a deferrable sensor started in the triggerer (``start_from_trigger``).

    It takes the sensor's job-reference fields and connection-id field under their own names
    (``ref_fields``, ``conn_field``) so that Airflow renders the templated ones in the triggerer, as
    it does for ``start_trigger_args.trigger_kwargs`` keys that are also the task's template fields;
    the job reference and connection id are built from the rendered values. When that is not
    possible (a template the triggerer cannot render, a rendered value that is not a valid job
    reference), it yields an ``error`` event with ``"restart_in_worker": True``: the sensor then
    starts on a worker as if it had never been started here, and renders and checks the fields there.

    Airflow renders the fields before ``run()`` and would wait for ever on a template that asks the
    triggerer's supervisor something it does not answer; so the render is done in ``run()`` instead,
    bounded by ``render_timeout``. Once the job is known, the task's console link is pushed from
    here (a task that starts and ends in the triggerer never runs the worker code that pushes it).
    """

    #: Seconds the render of the sensor's fields may take here before the task restarts on a worker.
    render_timeout: ClassVar[float] = 30.0

    #: One logger for the one wait, however it started (log filters and alerts keep working).
    _logger_name = f"{JobStatusTrigger.__module__}.{JobStatusTrigger.__qualname__}"

    def __init__(
        self,
        service: str,
        *,
        ref_fields: Sequence[str],
        conn_field: str,
        **kwargs: Any,
    ):
        names = [*ref_fields, conn_field]
        values = {name: kwargs.pop(name, None) for name in names}
        super().__init__(service=service, job_ref={}, **kwargs)
        clash = [n for n in names if n in self.__dict__ or hasattr(type(self), n)]
        if clash:
            raise ValueError(f"JobStatusStartTrigger: field name(s) {clash} clash with the trigger's own.")
        self.ref_fields, self.conn_field = list(ref_fields), conn_field
        for name, value in values.items():
            setattr(self, name, value)
        self._start_error: str | None = None
        self._render_args: tuple[Context, jinja2.Environment | None] | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        path, kwargs = super().serialize()
        del kwargs["job_ref"], kwargs["conn_id"]
        fields = {name: getattr(self, name) for name in [*self.ref_fields, self.conn_field]}
        return path, {**kwargs, "ref_fields": self.ref_fields, "conn_field": self.conn_field, **fields}

    def get_template_env(self, dag: Any = None) -> jinja2.Environment:
        """A DAG's default environment (StrictUndefined, Airflow's filters), not BaseTrigger's lenient one."""
        from airflow.sdk.definitions._internal.templater import create_template_env

        return create_template_env()

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """Airflow calls this before ``run()``: kept for ``run()``, which renders within ``render_timeout``."""
        self._render_args = (context, jinja_env)

    async def _bounded_render(self) -> None:
        """Render like Airflow, bounded in time; a failure or no answer is remembered (the sensor then
        starts on a worker), not raised."""
        if self._render_args is None:
            return
        (context, jinja_env), self._render_args = self._render_args, None
        fields = ", ".join(self.template_fields)
        try:
            await asyncio.wait_for(self._render_now(context, jinja_env), timeout=self.render_timeout)
        except TimeoutError:
            self._start_error = f"rendering {fields} got no answer within {self.render_timeout:g} s"
        except Exception as err:
            self._start_error = f"could not render {fields}: {type(err).__name__}: {err}"
        finally:
            self._release_dag_copy(context)

    def _release_dag_copy(self, context: Context) -> None:
        """Drop this trigger's copy of its DAG once the fields are rendered.

        Airflow 3.3 deserializes the whole DAG for every trigger it starts in the triggerer (the task
        instance's ``task`` and the render context hold it: 5 MB for a DAG of 2,000 sensors) and keeps
        it for the trigger's life; nothing here needs it after the render, so a triggerer holding the
        waits of one large DAG does not hold one copy of the DAG per wait."""
        with contextlib.suppress(Exception):
            cast("dict[str, Any]", context).clear()  # Airflow's run_trigger keeps it for the trigger's life
        ti = self.task_instance
        if ti is not None and getattr(ti, "task", None) is not None:
            with contextlib.suppress(Exception):  # a task instance that refuses: keep it, lose nothing
                ti.task = None

    async def _render_now(self, context: Context, jinja_env: jinja2.Environment | None) -> None:
        await _ensure_portal()  # sync SDK calls in a template await the supervisor through it
        super().render_template_fields(context, jinja_env)

    def _take_rendered_fields(self) -> None:
        values = {name: getattr(self, name) for name in [*self.ref_fields, self.conn_field]}
        unrendered = [n for n, v in values.items() if is_template(v)]
        if unrendered:  # Airflow did not render them here (no DAG data for this task, an older triggerer)
            raise ValueError(f"{', '.join(unrendered)} not rendered in the triggerer")
        self.job_ref = {name: values[name] for name in self.ref_fields}
        self.conn_id = values[self.conn_field]
        self._ref()  # a ConfigurationError for a value that is not a valid reference
        if self.coalesce is True:
            from airflow_jobstatus.triggers.coalescing import coalescing_of

            coalescing_of(self.service, self.job_ref)  # a ref the list cannot serve; "auto" polls per job

    async def after_first_read(self, hook: JobStatusHook[Any], ref: JobRef) -> None:
        """Push the console link, as a worker's task run does when it ends; a failure is only logged."""
        from airflow_jobstatus.links import link_for

        link = link_for(self.service)
        if link is None or self.task_instance is None:
            return
        try:
            url = get_service(self.service).console_url(ref, hook.console_scope())
            await self.push_xcoms({link.xcom_key: url}, to_db=True)
        except Exception as err:  # a link must never fail the wait
            self.log.warning("No console link for %s job %s: %s", self.service, ref.display_id, err)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await self._bounded_render()
        if self._start_error is None:
            try:
                self._take_rendered_fields()
            except Exception as err:
                self._start_error = f"{type(err).__name__}: {err}"
        if self._start_error is not None:
            self.log.warning(
                "Cannot wait from the triggerer (%s); the task starts on a worker.", self._start_error
            )
            error = ServiceError(self._start_error, service=self.service)
            yield TriggerEvent(dict(error_event(error, restart_in_worker=True)))
            return
        async for event in super().run():
            yield event


async def _ensure_portal() -> None:
    """A greenback portal for this task, as the triggerer gives each trigger (unless it is disabled)."""
    if os.environ.get("AIRFLOW_DISABLE_GREENBACK_PORTAL", "").lower() == "true":
        return
    try:
        import greenback
    except ImportError:  # pragma: no cover - a triggerer without greenback
        return
    await greenback.ensure_portal()
