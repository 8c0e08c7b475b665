"""One trigger for every service: polls a hook's async path until the job's state is decisive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_jobstatus.exceptions import ServiceError
from airflow_jobstatus.hooks.base import DEFAULT_CALL_TIMEOUT, JobStatusHook, make_hook
from airflow_jobstatus.services import get_service
from airflow_jobstatus.services.base import JobRef
from airflow_jobstatus.waiting import (
    CANCEL_ERROR_BUDGET,
    DEFAULT_ERROR_BUDGET,
    DEFAULT_MAX_BACKOFF,
    JobWatch,
    RetryPolicy,
)


class JobStatusTrigger(BaseTrigger):
    """Waits on one job of ``service``, named by ``job_ref`` (the service's ``JobRef`` as a dict).

    Yields one status-dict event: ``{"status": "success" | "failure" | "error", "job_status": {...},
    "error": {...}, "message": str, "last_sub_jobs": [...], "progress_history": [...]}``.
    Restarting the triggerer re-runs it from its serialized kwargs: it only reads, so that is safe.
    ``initial_delay``: seconds before the first read (the task has just read the job itself).
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
        self.impersonation_chain = (
            impersonation_chain
            if impersonation_chain is None or isinstance(impersonation_chain, str)
            else list(impersonation_chain)
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "service": self.service,
                "job_ref": self.job_ref,
                "conn_id": self.conn_id,
                "poll_interval": self.poll_interval,
                "success_states": self.success_states,
                "failure_states": self.failure_states,
                "error_budget": self.error_budget,
                "max_backoff": self.max_backoff,
                "not_found_grace": self.not_found_grace,
                "call_timeout": self.call_timeout,
                "cancel_on_kill": self.cancel_on_kill,
                "initial_delay": self.initial_delay,
                "impersonation_chain": self.impersonation_chain,
            },
        )

    def _hook(self) -> JobStatusHook[Any]:
        extra = {"impersonation_chain": self.impersonation_chain} if self.impersonation_chain else {}
        return make_hook(self.service, self.conn_id, timeout=self.call_timeout, **extra)

    def _ref(self) -> JobRef:
        return get_service(self.service).ref(self.job_ref)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        policy = RetryPolicy(
            self.error_budget, max_backoff=self.max_backoff, not_found_grace=self.not_found_grace
        )
        watch = JobWatch(self.success_states, self.failure_states, policy, log=self.log)
        try:
            hook, ref = self._hook(), self._ref()
            if self.initial_delay > 0:
                await asyncio.sleep(self.initial_delay)
            while True:
                status = await watch.aread(lambda: hook.aget_status(ref))
                verdict = watch.verdict(status)
                if verdict != "wait":
                    event = {"status": verdict, "job_status": status.to_dict(), "message": status.summary()}
                    yield TriggerEvent(event | watch.snapshot())
                    return
                await asyncio.sleep(self.poll_interval)
        except ServiceError as err:
            yield TriggerEvent(
                {"status": "error", "error": err.to_dict(), "message": str(err)} | watch.snapshot()
            )
        except Exception as err:  # a bug or an unexpected SDK error: report it rather than die silently
            self.log.exception("Unexpected error while waiting on %s job %s", self.service, self.job_ref)
            error = ServiceError(f"{type(err).__name__}: {err}", service=self.service)
            yield TriggerEvent(
                {"status": "error", "error": error.to_dict(), "message": str(error)} | watch.snapshot()
            )

    async def on_kill(self) -> None:
        """Cancel the job when the user kills the deferred task, but only a job the task started."""
        if not self.cancel_on_kill:
            return
        ref = self._ref()
        self.log.info("Task killed while deferred: cancelling %s job %s", self.service, ref.display_id)
        hook = self._hook()
        watch = JobWatch(policy=RetryPolicy(CANCEL_ERROR_BUDGET, max_backoff=5.0), log=self.log)
        try:
            await watch.aread(lambda: hook.acancel(ref))
        except Exception as err:
            self.log.error("Could not cancel %s job %s: %s", self.service, ref.display_id, err)
            raise
        self.log.info("Cancel of %s job %s accepted.", self.service, ref.display_id)
