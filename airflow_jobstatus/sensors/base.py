"""The generic job-status sensor: the same rules in poke, reschedule and deferrable mode."""

from __future__ import annotations

import warnings
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, BaseSensorOperator, PokeReturnValue

from airflow_jobstatus.core.compat import AirflowSensorTimeout, AirflowSkipException, TaskDeferralTimeout
from airflow_jobstatus.core.templating import is_template, not_renderable_in_triggerer
from airflow_jobstatus.tasks.job_wait import JobWaitMixin
from airflow_jobstatus.tasks.lineage import JobLineageMixin
from airflow_jobstatus.triggers.events import END_FROM_TRIGGER_STATES
from airflow_jobstatus.wait.rules import check_seconds

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.triggers.base import StartTriggerArgs

#: The trigger a deferrable sensor starts in when Airflow starts it in the triggerer.
START_TRIGGER = "airflow_jobstatus.triggers.job_status.JobStatusStartTrigger"
#: DAG attributes that change how templates render; the triggerer renders with the defaults.
_JINJA_SETTINGS = (
    "user_defined_macros",
    "user_defined_filters",
    "jinja_environment_kwargs",
    "render_template_as_native_obj",
)


def _is_literal(value: Any) -> bool:
    """A value the DAG serializer and the triggerer carry as is (no XComArg or other object)."""
    return value is None or isinstance(value, str | int | float | bool)


class _StartFromTrigger:
    """``start_from_trigger`` / ``start_trigger_args`` of a sensor, decided when Airflow reads them.

    On the class (what mapped tasks and Airflow's defaults see) they are ``False`` / ``None``; on a
    task they are worked out from its current arguments, fields and DAG, so the DAG serializer
    (which reads them once the DAG is complete) gets the right answer whatever the order in which
    the task was built. Assigning sets what the user asked for (the answer may still be no).
    """

    def __init__(self, args: bool) -> None:
        self.args = args

    def __get__(self, obj: JobStatusSensor | None, objtype: Any = None) -> Any:
        if obj is None:
            return None if self.args else False
        args = obj.start_from_trigger_args()
        return args if self.args else args is not None

    def __set__(self, obj: JobStatusSensor, value: Any) -> None:
        if not self.args:
            obj.__dict__["_start_from_trigger_asked"] = bool(value)


class JobStatusSensor(JobLineageMixin, JobWaitMixin, BaseSensorOperator):
    """Waits until a cloud job reaches a normalized terminal state; see the README for the rules.

    :param success_states: normalized state names that end the wait successfully
        (default SUCCEEDED, DRAINED, UPDATED).
    :param failure_states: names that fail the task (default: every other terminal state; may add
        non-terminal ones such as PAUSED to fail fast). A terminal state in neither set fails.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param start_from_trigger: deferrable only: the scheduler hands the task straight to the
        triggerer, without a worker start, whenever that gives the same result (default True;
        otherwise, e.g. a templated field that is an XComArg, it starts on a worker as before).
    :param end_from_trigger: deferrable only: the trigger ends the task (success with its
        ``return_value``, failure, ``soft_fail`` skip) without resuming it on a worker, for every
        outcome Airflow can end identically from the triggerer (default True).
    :param error_budget: seconds of consecutive transient errors to ride out before failing.
    :param max_backoff: the longest pause between retries of a transient error (> 0).
    :param not_found_grace: seconds after the wait starts during which "not found" is retried.
    :param call_timeout: timeout of each API call, in seconds.
    :param coalesce: deferrable only: whether waits of the same service, connection, scope and
        interval in one triggerer share one list call per interval instead of one read each.
        ``"auto"`` (default): once at least 3 such waits share a triggerer's event loop and a list
        round costs at most half their reads, back to per-job reads below 2 waits or once a round
        costs as many calls as their reads; per job always where the service or job cannot be listed
        or its list carries less than a read (CDM, DLI SQL jobs). ``True``: always (a
        ``ConfigurationError`` where it cannot); ``False``: never. See the README's "Coalesced polling".
    """

    ui_color = "#d9ecf2"
    end_from_trigger_capable = END_FROM_TRIGGER_STATES
    start_from_trigger = _StartFromTrigger(args=False)  # type: ignore[assignment]
    start_trigger_args = _StartFromTrigger(args=True)  # type: ignore[assignment]

    def __init__(self, *, start_from_trigger: bool = True, end_from_trigger: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        # 0 would poll as fast as the loop turns (~20 reads a second per wait): rejected in every mode.
        self.poke_interval = check_seconds("poke_interval", self.poke_interval, positive=True)
        self.start_from_trigger = start_from_trigger
        self.end_from_trigger = bool(end_from_trigger)
        self._warn_about_arguments()

    def _warn_about_arguments(self) -> None:
        """Arguments that are valid but do not do what they seem to: a warning when the DAG is parsed."""
        if self.deferrable and self.mode == "reschedule":
            warnings.warn(
                f"{self.task_id}: mode='reschedule' has no effect with deferrable=True "
                "(the wait runs in the triggerer); drop one of them.",
                UserWarning,
                stacklevel=4,
            )
        if self.timeout < self.poke_interval:
            warnings.warn(
                f"{self.task_id}: timeout ({self.timeout:g} s) is shorter than poke_interval "
                f"({self.poke_interval:g} s): the sensor times out before its second read.",
                UserWarning,
                stacklevel=4,
            )

    # -- starting in the triggerer ---------------------------------------------------------------------
    def worker_flow_overridden(self) -> bool:
        cls = type(self)
        return any(
            getattr(cls, name) is not getattr(JobStatusSensor, name)
            for name in ("execute", "execute_complete", "finish", "pre_execute", "post_execute")
        )

    def why_not_start_from_trigger(self) -> str | None:
        """Why this task must start on a worker; None when the triggerer can start it identically."""
        if not self.__dict__.get("_start_from_trigger_asked", False):
            return "start_from_trigger=False"
        if not self.deferrable:
            return "not deferrable"
        if self.worker_flow_overridden():
            return "a subclass changes execute/execute_complete/finish/pre_execute/post_execute"
        if getattr(self, "on_execute_callback", None):
            return "on_execute_callback runs on a worker"
        names = [*self.ref_fields(), self.spec.conn_id_arg]
        values = {name: getattr(self, name) for name in names}
        if not all(_is_literal(v) for v in values.values()):
            return "a job-reference field is not a plain value (an XComArg resolves on a worker)"
        others = [f for f in self.template_fields if f not in values]
        if any(
            not _is_literal(getattr(self, f, None)) or is_template(getattr(self, f, None)) for f in others
        ):
            return f"templated fields other than the job reference ({', '.join(others)})"
        if any(is_template(v) for v in values.values()):
            if getattr(self, "render_template_as_native_obj", None):
                return "render_template_as_native_obj"
            dag = self.get_dag()
            if dag is None:
                return "templated fields and no DAG yet to check its template settings"
            custom = [name for name in _JINJA_SETTINGS if getattr(dag, name, None)]
            from jinja2 import StrictUndefined

            if getattr(dag, "template_undefined", StrictUndefined) is not StrictUndefined:
                custom.append("template_undefined")
            if custom:
                return f"the DAG's template settings ({', '.join(custom)}) apply on a worker only"
        reason = not_renderable_in_triggerer(values)
        if reason is None and any(is_template(v) for v in values.values()):
            from airflow_jobstatus.core.compat import trigger_renders_templates

            if not trigger_renders_templates():
                return "Airflow < 3.3 does not render a trigger's templated fields in the triggerer"
        return reason

    def start_from_trigger_args(self) -> StartTriggerArgs | None:
        """The ``StartTriggerArgs`` Airflow starts this task with in the triggerer, or None."""
        try:
            if self.why_not_start_from_trigger() is not None:
                return None
            from airflow.triggers.base import StartTriggerArgs

            conn_field = self.spec.conn_id_arg
            ref_fields = list(self.ref_fields())
            kwargs = self.trigger_kwargs(self.poke_interval)
            kwargs.update({name: getattr(self, name) for name in [*ref_fields, conn_field]})
            kwargs.update(ref_fields=ref_fields, conn_field=conn_field)
            return StartTriggerArgs(
                trigger_cls=START_TRIGGER,
                trigger_kwargs=kwargs,
                next_method="execute_complete",
                next_kwargs=None,
                timeout=timedelta(seconds=self.timeout),
            )
        except Exception:  # half-built task (Airflow reads this during __init__), unusual arguments
            return None

    # -- the wait --------------------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            first = context["ti"].get_first_reschedule_date(context) if self.reschedule else None
            if first is not None:  # a rescheduled poke: the wait began at the first one (its metrics)
                self.watch.started_wall = first.timestamp()
            return super().execute(context)
        if self.__dict__.get("_start_from_trigger_asked", False):
            from airflow_jobstatus.core.compat import note_missing, scheduler_starts_from_trigger

            if not scheduler_starts_from_trigger():
                note_missing(
                    "start in the triggerer (start_from_trigger)",
                    "Airflow < 3.3's scheduler starts every task on a worker; the sensor defers from "
                    "there, one short worker start per wait, same outcome",
                    self.log,
                )
        status = self.first_check()
        if status is not None:
            verdict = self.watch.verdict(status)
            if verdict != "wait":
                return self.finish(verdict, status, context)
        self.log_deferral(self.poke_interval, self.timeout)
        self.defer(
            # The task just read the job: the trigger's first read waits one interval (one call saved,
            # and no event can arrive before the scheduler has seen the task defer).
            trigger=self.make_trigger(
                self.poke_interval, initial_delay=self.poke_interval if status else 0.0
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def poke(self, context: Context) -> bool | PokeReturnValue:
        status = self.read_status()
        verdict = self.watch.verdict(status)
        if verdict == "wait":
            return False
        return PokeReturnValue(is_done=True, xcom_value=self.finish(verdict, status, context))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        if isinstance(event, dict) and event.get("restart_in_worker"):
            # Started in the triggerer, which could not wait on this job: start here, as without it.
            self.log.info(
                "The triggerer could not start this wait (%s); starting it here.", event.get("message")
            )
            return self.execute(context)
        verdict, status = self.status_from_event(event)
        return self.finish(verdict, status, context)

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Like BaseSensorOperator's, but soft_fail only skips a job failure or a timeout, as in poke mode."""
        try:
            return BaseOperator.resume_execution(self, next_method, next_kwargs, context)
        except TaskDeferralTimeout as err:
            if self.soft_fail:
                raise AirflowSkipException(f"soft_fail: sensor timed out: {err}") from err
            raise AirflowSensorTimeout(*err.args) from err
