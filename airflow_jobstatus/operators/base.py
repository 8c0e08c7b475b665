"""Start a job, then wait for it with the same watch and trigger as the sensors."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_jobstatus._compat import AirflowSkipException
from airflow_jobstatus.job_wait import JobWaitMixin
from airflow_jobstatus.services.base import JobRef
from airflow_jobstatus.states import JobStatus
from airflow_jobstatus.waiting import Verdict, check_seconds

if TYPE_CHECKING:
    from airflow.sdk import Context


class StartJobOperator(JobWaitMixin, BaseOperator):
    """Base of the operators: ``start()`` the job, then wait in the worker or the triggerer.

    Subclasses implement ``start`` (submit; set the started job's id on ``self``; push the id XCom),
    ``restore`` (set the id back on the fresh operator that resumes after deferral) and
    ``push_outcome``. Killing the task cancels the job this task started, and only that one.
    """

    default_not_found_grace = 30.0

    def __init__(
        self,
        *,
        wait_for_completion: bool = True,
        poll_interval: float = 30.0,
        soft_fail: bool = False,
        timeout: float | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.wait_for_completion = wait_for_completion
        self.poll_interval = check_seconds("poll_interval", poll_interval, positive=True)
        self.soft_fail = soft_fail
        self.timeout = None if timeout is None else check_seconds("timeout", timeout, positive=True)
        self._started: JobRef | None = None

    # -- per service ---------------------------------------------------------------------------
    def start(self, context: Context) -> Any:
        """Start the job, remember its id on ``self``, push the id XCom; returns the id."""
        raise NotImplementedError

    def restore(self, job_ref: dict[str, Any]) -> None:
        """Set the started job's id back on a fresh instance resuming after deferral."""
        for name, value in job_ref.items():
            setattr(self, name, value)

    def push_outcome(self, context: Context, status: JobStatus, seen: dict[str, Any]) -> None:
        """Push the service's XComs for the final status (``seen``: last subjobs, progress history)."""
        raise NotImplementedError

    # -- the flow ------------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        started_id = self.start(context)
        self._started = ref = self.job_ref()
        if not self.wait_for_completion:
            return started_id
        if self.deferrable:
            self.defer(
                # The job was just submitted: its first read comes one interval later (no event can
                # reach the scheduler before it has seen the task defer).
                trigger=self.make_trigger(
                    self.poll_interval, cancel_on_kill=True, initial_delay=self.poll_interval
                ),
                method_name="execute_complete",
                kwargs={"job_ref": ref.to_dict()},
                timeout=None if self.timeout is None else timedelta(seconds=self.timeout),
            )
        try:
            verdict, status = self.watch.wait(
                lambda: self.hook.get_status(ref), self.poll_interval, self.timeout
            )
        except TimeoutError as err:
            if self.soft_fail:
                raise AirflowSkipException(f"soft_fail: {err}") from err
            raise
        return self._complete(context, verdict, status, self.watch.snapshot())

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, job_ref: dict[str, Any] | None = None
    ) -> Any:
        if job_ref:
            self.restore(job_ref)
        verdict, status = self.status_from_event(event)
        assert event is not None
        seen = {
            "last_sub_jobs": event.get("last_sub_jobs") or [],
            "progress_history": event.get("progress_history") or [],
        }
        return self._complete(context, verdict, status, seen)

    def _complete(self, context: Context, verdict: Verdict, status: JobStatus, seen: dict[str, Any]) -> Any:
        self._started = None  # the job is over: nothing left to cancel
        self.push_outcome(context, status, seen)
        return self.finish(verdict, status, context)

    def on_kill(self) -> None:
        """Cancel the job this task started (never one it did not start)."""
        if self._started is not None:
            self.log.info("Task killed: cancelling the %s job it started.", self.service)
            self.cancel_job(self._started)
