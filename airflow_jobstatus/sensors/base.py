"""The generic job-status sensor: the same rules in poke, reschedule and deferrable mode."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, BaseSensorOperator, PokeReturnValue

from airflow_jobstatus._compat import AirflowSensorTimeout, AirflowSkipException, TaskDeferralTimeout
from airflow_jobstatus.job_wait import JobWaitMixin

if TYPE_CHECKING:
    from airflow.sdk import Context


class JobStatusSensor(JobWaitMixin, BaseSensorOperator):
    """Waits until a cloud job reaches a normalized terminal state; see the README for the rules.

    :param success_states: normalized state names that end the wait successfully
        (default SUCCEEDED, DRAINED, UPDATED).
    :param failure_states: names that fail the task (default: every other terminal state; may add
        non-terminal ones such as PAUSED to fail fast). A terminal state in neither set fails.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param error_budget: seconds of consecutive transient errors to ride out before failing.
    :param max_backoff: the longest pause between retries of a transient error (> 0).
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
