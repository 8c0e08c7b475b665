"""The generic job-status sensor: the same rules in poke, reschedule and deferrable mode.

Per-service sensors only say which service they read and how the job is identified (``job_ref``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator, BaseSensorOperator, PokeReturnValue
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException

from airflow_jobstatus.exceptions import BadResponseError, JobFailedError, ServiceError
from airflow_jobstatus.states import JobState, JobStatus, resolve_state_sets
from airflow_jobstatus.waiting import (
    DEFAULT_ERROR_BUDGET,
    DEFAULT_MAX_BACKOFF,
    JobWatch,
    RetryPolicy,
    Verdict,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_jobstatus.hooks.base import JobStatusHook
    from airflow_jobstatus.triggers.job_status import JobStatusTrigger


def default_deferrable() -> bool:
    """``[operators] default_deferrable``, as every Airflow provider reads it."""
    return conf.getboolean("operators", "default_deferrable", fallback=False)


class JobWaitMixin:
    """What sensors and operators share: the watch, the hook, the trigger and how a wait ends."""

    service: ClassVar[str]
    soft_fail: bool
    log: Any

    #: Seconds during which "not found" is retried after the wait starts (operators just made the job).
    default_not_found_grace: ClassVar[float] = 0.0

    def __init__(
        self,
        *,
        conn_id: str,
        success_states: Iterable[str | JobState] | None = None,
        failure_states: Iterable[str | JobState] | None = None,
        deferrable: bool | None = None,
        error_budget: float = DEFAULT_ERROR_BUDGET,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        not_found_grace: float | None = None,
        call_timeout: float = 30.0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.error_budget = error_budget
        self.max_backoff = max_backoff
        self.not_found_grace = self.default_not_found_grace if not_found_grace is None else not_found_grace
        self.call_timeout = call_timeout
        # Validated now, so a typo fails when the DAG is parsed, not after hours of waiting.
        success, failure = resolve_state_sets(success_states, failure_states)
        self.success_states = sorted(s.value for s in success)
        self.failure_states = sorted(s.value for s in failure)
        RetryPolicy(error_budget, max_backoff=max_backoff, not_found_grace=self.not_found_grace)

    @cached_property
    def watch(self) -> JobWatch:
        """This wait's rules and error streak (a fresh one per task process)."""
        policy = RetryPolicy(
            self.error_budget, max_backoff=self.max_backoff, not_found_grace=self.not_found_grace
        )
        return JobWatch(self.success_states, self.failure_states, policy, log=self.log)

    @cached_property
    def hook(self) -> JobStatusHook:
        from airflow_jobstatus.hooks.base import make_hook

        return make_hook(self.service, self.conn_id, timeout=self.call_timeout)

    def job_ref(self) -> dict[str, Any]:
        """The hook's get_status keywords for this job (after templating)."""
        raise NotImplementedError

    def read_status(self) -> JobStatus:
        """One status read through the sync hook, transient errors ridden out within the budget."""
        ref = self.job_ref()
        return self.watch.read(lambda: self.hook.get_status(**ref))

    def make_trigger(self, poll_interval: float, cancel_on_kill: bool = False) -> JobStatusTrigger:
        from airflow_jobstatus.triggers.job_status import JobStatusTrigger

        return JobStatusTrigger(
            service=self.service,
            job_ref=self.job_ref(),
            conn_id=self.conn_id,
            poll_interval=poll_interval,
            success_states=self.success_states,
            failure_states=self.failure_states,
            error_budget=self.error_budget,
            max_backoff=self.max_backoff,
            not_found_grace=self.not_found_grace,
            call_timeout=self.call_timeout,
            cancel_on_kill=cancel_on_kill,
        )

    def first_check(self) -> JobStatus | None:
        """One read before deferring; None when it failed transiently (the trigger will retry)."""
        try:
            return self.hook.get_status(**self.job_ref())
        except Exception as err:
            self.watch.on_error(err)  # re-raises auth, not-found and other final errors
            return None

    def finish(self, verdict: Verdict, status: JobStatus, context: Context) -> dict[str, Any]:
        """End the wait: the status dict on success; JobFailedError (or a skip with soft_fail) on failure."""
        if verdict == "failure":
            err = JobFailedError(status)
            if self.soft_fail:
                raise AirflowSkipException(f"soft_fail: {err}") from err
            raise err
        return status.to_dict()

    def status_from_event(self, event: dict[str, Any] | None) -> tuple[Verdict, JobStatus]:
        """Read the trigger's event back; service errors are re-raised as themselves."""
        if not isinstance(event, dict) or event.get("status") not in ("success", "failure", "error"):
            raise BadResponseError(f"Unexpected event from the trigger: {event!r}", service=self.service)
        if event["status"] == "error":
            raise ServiceError.from_dict(event["error"])
        return event["status"], JobStatus.from_dict(event["job_status"])


class JobStatusSensor(JobWaitMixin, BaseSensorOperator):
    """Waits until a cloud job reaches a normalized terminal state; see the README for the rules.

    :param success_states: normalized state names that end the wait successfully
        (default SUCCEEDED, DRAINED, UPDATED).
    :param failure_states: names that fail the task (default: every other terminal state; may add
        non-terminal ones such as PAUSED to fail fast).
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param error_budget: seconds of consecutive transient errors to ride out before failing.
    :param not_found_grace: seconds after the wait starts during which "not found" is retried.
    :param call_timeout: timeout of each API call, in seconds.
    """

    ui_color = "#d9ecf2"

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        status = self.first_check()
        if status is not None:
            verdict = self.watch.verdict(status)
            if verdict != "wait":
                return self.finish(verdict, status, context)
        self.defer(
            trigger=self.make_trigger(self.poke_interval),
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
        verdict, status = self.status_from_event(event)
        return self.finish(verdict, status, context)

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Like BaseSensorOperator's, but soft_fail only skips a job failure or a timeout, as in poke mode."""
        from airflow.sdk.exceptions import TaskDeferralTimeout

        try:
            return BaseOperator.resume_execution(self, next_method, next_kwargs, context)
        except TaskDeferralTimeout as err:
            if self.soft_fail:
                raise AirflowSkipException(f"soft_fail: sensor timed out: {err}") from err
            raise AirflowSensorTimeout(*err.args) from err
