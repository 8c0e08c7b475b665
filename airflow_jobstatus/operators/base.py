"""Start a job, then wait for it with the same watch and trigger as the sensors.

The lifecycle rules (README, "Lifecycle"):

- **Recorded before the wait.** Right after the submission the job is recorded in the task state
  store (Airflow 3.3, ``context["task_state_store"]``; one key per DAG run, task and map index,
  shared by every try): its reference, its ids, when it was submitted, and the try, the task's
  first try since its last clear and the run's clear count.
- **A retry re-attaches.** A try that finds a record reads the recorded job first:

  ======================================  ==================================================
  recorded job                            this try
  ======================================  ==================================================
  none recorded, or not found (gone)      submits a job
  still running (any non-decisive state)  waits on it: never a second job while one may run
  succeeded                               succeeds with it (no job) — unless the task was
                                          cleared since: then submits
  failed, not yet reported by a try       reports its failure (fails, or skips with
                                          ``soft_fail``); with ``resubmit_on_retry=True``, or
                                          when the task or its run was cleared since, submits
  failed, already reported by a try       submits (an ordinary retry of a failed job)
  ======================================  ==================================================

- **A lost submit is found by its tag.** A worker lost after its submit reached the service but
  before the record was written leaves no record. So every submit carries a tag naming the task
  instance (DLI SQL: ``airflow-task`` = SHA-256 of DAG id, run id, task id and map index, see
  ``services/dli.py``), and a try with ``try_number > 1`` that is about to submit (no record, or
  the table above says "submits") first asks the service for the newest job with that tag
  (``hook.find_started``; one list call, never on a first try). A job found that is not the
  recorded one is recorded and goes through the same table (the try that submitted it is read
  from its tags). Services that cannot list by tag return None (CDM is found by its job name,
  which it has before the start; a DLI Spark batch takes no tags).

- **Nothing left running.** A wait that ends by timeout (``timeout`` in the worker or the
  triggerer, ``execution_timeout``) cancels the job (``cancel_on_timeout``); a user kill (mark
  failed/success, clear) of a running or deferred task cancels it (``cancel_on_kill``). Exactly
  one place cancels, and the task log says so.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from airflow_jobstatus.core.compat import AirflowSkipException, AirflowTaskTimeout, TaskDeferralTimeout
from airflow_jobstatus.core.dotted import load_callable
from airflow_jobstatus.core.exceptions import BadRequestError, ConfigurationError, JobNotFoundError
from airflow_jobstatus.core.states import JobStatus
from airflow_jobstatus.services.base import JobRef
from airflow_jobstatus.tasks.job_wait import JobWaitMixin
from airflow_jobstatus.tasks.lineage import JobLineageMixin
from airflow_jobstatus.triggers.events import seen_of
from airflow_jobstatus.wait.rules import JobWatch, RetryPolicy, Verdict, check_seconds

if TYPE_CHECKING:
    from airflow.sdk import Context

#: The task state store key of the job a task started (see the module docstring).
RECORD_KEY = "airflow_jobstatus.started_job"
RECORD_VERSION = 1


def _now() -> datetime:
    return datetime.now(timezone.utc)


class StartJobOperator(JobLineageMixin, JobWaitMixin, BaseOperator):
    """Base of the operators: ``start()`` the job, then wait in the worker or the triggerer.

    Subclasses set ``started_id_key`` (the id XCom) and ``outcome_xcoms_function``, and implement
    ``start`` (submit; set the started job's id on ``self``; push the id XCom). ``restore`` sets a
    job's reference back on a fresh instance (resume after deferral, re-attach on retry).

    :param cancel_on_kill: a user killing the running or deferred task cancels the job (default True).
    :param cancel_on_timeout: a wait ending by ``timeout``/``execution_timeout`` (in the worker or
        the triggerer) cancels the job (default True); False leaves it running for a retry to re-attach.
    :param reattach_on_retry: record the job in the task state store and re-attach to it on a retry
        (default True); False submits on every try, as before.
    :param resubmit_on_retry: a retry that finds its recorded job failed, with nobody having reported
        it yet, submits a new job instead of reporting that failure (default False).
    :param end_from_trigger: deferrable only: a success ends the task in the triggerer with the
        same XComs, no worker start (default True; a failure always resumes on a worker).
    """

    default_not_found_grace = 30.0
    end_from_trigger_capable = ("success",)
    #: The XCom (and attribute) holding the started job's id.
    started_id_key: ClassVar[str] = "job_id"

    def __init__(
        self,
        *,
        wait_for_completion: bool = True,
        poll_interval: float = 30.0,
        soft_fail: bool = False,
        timeout: float | None = None,
        cancel_on_kill: bool = True,
        cancel_on_timeout: bool = True,
        reattach_on_retry: bool = True,
        resubmit_on_retry: bool = False,
        end_from_trigger: bool = True,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.wait_for_completion = wait_for_completion
        self.poll_interval = check_seconds("poll_interval", poll_interval, positive=True)
        self.soft_fail = soft_fail
        self.timeout = None if timeout is None else check_seconds("timeout", timeout, positive=True)
        self.cancel_on_kill = bool(cancel_on_kill)
        self.cancel_on_timeout = bool(cancel_on_timeout)
        self.reattach_on_retry = bool(reattach_on_retry)
        self.resubmit_on_retry = bool(resubmit_on_retry)
        self.end_from_trigger = bool(end_from_trigger)
        self._started: JobRef | None = None
        self._context: Context | None = None

    # -- per service ---------------------------------------------------------------------------
    def start(self, context: Context) -> Any:
        """Start the job and remember its id on ``self`` (``execute`` records it, then pushes the id XComs); returns the id."""
        raise NotImplementedError

    def restore(self, job_ref: dict[str, Any]) -> None:
        """Set the started job's id back on a fresh instance resuming after deferral."""
        for name, value in job_ref.items():
            setattr(self, name, value)

    def started_ids(self) -> dict[str, Any]:
        """The started job's ids, by XCom key (recorded, and pushed again by a re-attaching try)."""
        return {self.started_id_key: getattr(self, self.started_id_key, None)}

    def recorded_job_gone(self, status: JobStatus) -> bool:
        """True when a recorded job's status says it no longer exists (besides a not-found error)."""
        return False

    def push_outcome(self, context: Context, status: JobStatus, seen: dict[str, Any]) -> None:
        """Push the service's XComs for the final status (``seen``: last subjobs, progress history)."""
        if self.outcome_xcoms_function is None:
            raise NotImplementedError
        ti = context["ti"]
        for key, value in load_callable(self.outcome_xcoms_function)(status, seen).items():
            ti.xcom_push(key=key, value=value)

    def worker_flow_overridden(self) -> bool:
        cls = type(self)
        return any(
            getattr(cls, name) is not getattr(StartJobOperator, name)
            for name in ("execute", "execute_complete", "push_outcome", "finish", "post_execute")
        )

    # -- the flow ------------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        self._context = context
        resumed = self._reattach(context)
        if resumed is None:
            self.start(context)
            self._started = ref = self.job_ref()
            # Recorded before anything else (the id XComs included): a worker lost between the
            # submit and the record leaves a retry nothing to re-attach to, so it would submit again.
            self._record(context, ref)
            first: tuple[Verdict, JobStatus] | None = None
        else:
            ref, first = resumed[0], resumed[1:]
            self._started = ref
        for key, value in self.started_ids().items():
            if value is not None:  # None: a job re-attached without its ids (_running_without_record)
                context["ti"].xcom_push(key=key, value=value)
        if not self.wait_for_completion:
            self._started = None
            return self.started_ids()[self.started_id_key]
        if first is not None and first[0] != "wait":
            return self._complete(context, first[0], first[1], self.watch.snapshot())
        if self.deferrable:
            self.log_deferral(self.poll_interval, self.timeout)
            self.defer(
                # The job was just submitted or read: its first read comes one interval later (no
                # event can reach the scheduler before it has seen the task defer).
                trigger=self.make_trigger(
                    self.poll_interval, cancel_on_kill=self.cancel_on_kill, initial_delay=self.poll_interval
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
            started, self._started = self._started, None
            return self._end_after_timeout(context, started, str(err), err)
        return self._complete(context, verdict, status, self.watch.snapshot())

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, job_ref: dict[str, Any] | None = None
    ) -> Any:
        if job_ref:
            self.restore(job_ref)
        verdict, status = self.status_from_event(event)
        return self._complete(context, verdict, status, seen_of(event))

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Resume after deferral; a deferral timeout cancels the job (``cancel_on_timeout``) first.

        Airflow 3.3 replaces the deferral's kwargs by ``{"error": "Trigger timeout"}`` when the
        deferral times out and does not call the trigger's ``on_kill``: the job is found in the task
        state store (or the id XCom this try pushed) and cancelled here, once.
        """
        self._context = context
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except TaskDeferralTimeout as err:
            why = f"The wait in the triggerer timed out ({err})"
            return self._end_after_timeout(context, self._started_job_of_this_try(context), why, err)

    def _end_after_timeout(self, context: Context, ref: JobRef | None, why: str, err: Exception) -> Any:
        """A timeout: a job that ended meanwhile gives its own outcome; else it is cancelled
        (``cancel_on_timeout``) and the task fails, or skips with ``soft_fail``."""
        status = self._read_at_timeout(ref)
        if status is not None and self.watch.classify(status) != "wait":
            self.log.info("%s, but the job had already ended %s: reporting that.", why, status.state.value)
            verdict = self.watch.verdict(status)
            return self._complete(context, verdict, status, self.watch.snapshot())
        self._cancel_after_timeout(context, ref, why)
        if self.soft_fail:
            raise AirflowSkipException(f"soft_fail: {err}") from err
        raise err

    def _read_at_timeout(self, ref: JobRef | None) -> JobStatus | None:
        """One read of the job before cancelling it; None when there is no job or it cannot be read now."""
        if ref is None:
            return None
        try:
            return self.hook.get_status(ref)
        except Exception as err:
            self.log.warning(
                "Could not read %s job %s before cancelling it: %s", self.service, ref.display_id, err
            )
            return None

    def _complete(self, context: Context, verdict: Verdict, status: JobStatus, seen: dict[str, Any]) -> Any:
        self._started = None  # the job is over: nothing left to cancel
        self.push_outcome(context, status, seen)
        self._mark_reported(context, status.state.value)
        return self.finish(verdict, status, context)

    # -- kill and timeout ----------------------------------------------------------------------
    def on_kill(self) -> None:
        """Cancel the job this task started (never one it did not start), at most once.

        Airflow calls this on a user kill or a worker's SIGTERM (``cancel_on_kill``) and right after
        an ``execution_timeout`` (``cancel_on_timeout``).
        """
        ref, self._started = self._started, None
        if ref is None:
            return
        if isinstance(sys.exc_info()[1], AirflowTaskTimeout):  # called from Airflow's timeout handler
            self._cancel_after_timeout(self._context, ref, "execution_timeout reached")
            return
        if not self.cancel_on_kill:
            self.log.warning(
                "Task killed; cancel_on_kill=False: %s job %s is left running.", self.service, ref.display_id
            )
            return
        self.log.info("Task killed: cancelling the %s job it started.", self.service)
        self.cancel_job(ref)

    def _cancel_after_timeout(self, context: Context | None, ref: JobRef | None, why: str) -> None:
        if ref is None:
            self.log.warning("%s; no record of a job this try started: nothing to cancel.", why)
            return
        if not self.cancel_on_timeout:
            self.log.warning(
                "%s; cancel_on_timeout=False: %s job %s is left running (a retry re-attaches to it).",
                why,
                self.service,
                ref.display_id,
            )
            return
        self.log.warning("%s: cancelling the %s job %s it started.", why, self.service, ref.display_id)
        try:
            self.cancel_job(ref)
        except Exception:
            return  # cancel_job logged why; the timeout is what the task reports
        if context is not None:
            self._mark_reported(context, "CANCELLED")

    def _started_job_of_this_try(self, context: Context) -> JobRef | None:
        """The job this try started, after deferral: the task state store's record, else the id XCom."""
        if self._started is not None:
            return self._started
        record = self._read_record(context)
        if record is not None and not record.get("reported"):
            try:
                return self.spec.ref(record["job_ref"])
            except (ConfigurationError, TypeError, KeyError):
                pass
        pull = getattr(context.get("ti"), "xcom_pull", None)
        if pull is None:
            return None
        started_id = pull(task_ids=self.task_id, key=self.started_id_key)
        if started_id in (None, ""):
            return None
        setattr(self, self.started_id_key, started_id)
        try:
            return self.job_ref()
        except ConfigurationError:
            return None

    # -- the record in the task state store ----------------------------------------------------
    def _store(self, context: Context | None) -> Any:
        if context is None or not self.reattach_on_retry:
            return None
        return context.get("task_state_store")

    def _generation(self, context: Context) -> dict[str, Any]:
        """The try, the first try since the task's last clear, and the run's clear count."""
        ti, dag_run = context.get("ti"), context.get("dag_run")
        max_tries = getattr(ti, "max_tries", None)
        first_try = None if max_tries is None else int(max_tries) - int(self.retries or 0) + 1
        return {
            "try_number": getattr(ti, "try_number", None),
            "first_try": first_try,
            "clear_number": getattr(dag_run, "clear_number", None),
        }

    def _record(self, context: Context, ref: JobRef) -> None:
        store = self._store(context)
        if store is None:
            return
        record = {
            "version": RECORD_VERSION,
            "service": self.service,
            "job_ref": ref.to_dict(),
            "ids": self.started_ids(),
            "submitted_at": _now().isoformat(),
            **self._generation(context),
            "reported": None,
        }
        self._write_record(context, record, ref)

    def _write_record(self, context: Context, record: dict[str, Any], ref: JobRef) -> None:
        store = self._store(context)
        if store is None:
            return
        try:
            store.set(RECORD_KEY, record)
        except Exception as err:  # the job runs: keep waiting on it rather than abandon it
            self.log.warning(
                "Could not record %s job %s in the task state store (%s): a retry will not find it.",
                self.service,
                ref.display_id,
                err,
            )

    def _read_record(self, context: Context) -> dict[str, Any] | None:
        store = self._store(context)
        if store is None:
            return None
        record = store.get(RECORD_KEY)
        if not isinstance(record, dict) or record.get("service") != self.service:
            return None
        if not isinstance(record.get("job_ref"), dict):
            return None
        return record

    def _mark_reported(self, context: Context, state: str) -> None:
        """Note that this task has reported the job's outcome (a later retry then starts afresh)."""
        store = self._store(context)
        if store is None:
            return
        try:
            record = self._read_record(context)
            if record is not None and not record.get("reported"):
                store.set(RECORD_KEY, {**record, "reported": state})
        except Exception as err:
            self.log.warning("Could not update the job record in the task state store: %s", err)

    def _read_recorded(self, ref: JobRef, record: dict[str, Any]) -> JobStatus | None:
        """The recorded job's status; None when it is gone. Not-found is retried for ``not_found_grace``
        counted from the submission (a job submitted just before a crash may not be listed yet)."""
        watch = JobWatch(policy=RetryPolicy.for_wait(self), log=self.log)
        try:
            submitted = datetime.fromisoformat(str(record.get("submitted_at")))
            watch.started_at -= max(0.0, (_now() - submitted).total_seconds())
        except ValueError:
            watch.started_at -= self.not_found_grace
        try:
            return watch.read(lambda: self.hook.get_status(ref))
        except JobNotFoundError:
            return None

    def ref_before_start(self) -> JobRef | None:
        """The job's reference when it is known before the start (CDM: cluster and job name); else None."""
        return None

    def _running_without_record(self, context: Context) -> tuple[JobRef, Verdict, JobStatus] | None:
        """A retry without a record, of a job named before its start: wait on it when it runs.

        A worker lost between the submit and the record leaves the job running and no record; starting
        it again would be a second job (or, for CDM, an error: a running job cannot be started).
        """
        ref = self.ref_before_start()
        try_number = getattr(context.get("ti"), "try_number", 1) or 1
        if ref is None or not self.reattach_on_retry or try_number <= 1:
            return None
        try:
            status = self.hook.get_status(ref)
        except Exception as err:  # unknown: the start decides (its own errors are reported as usual)
            self.log.info(
                "No job record, and %s job %s could not be read (%s).", self.service, ref.display_id, err
            )
            return None
        if self.recorded_job_gone(status) or self.watch.classify(status) != "wait":
            return None
        self.log.warning(
            "No job record from an earlier try, but %s job %s is %s: a try was lost between its start "
            "and its record. Waiting on the running job instead of starting it again (its ids are not "
            "known: they are not pushed).",
            self.service,
            ref.display_id,
            status.state.value,
        )
        self.watch.verdict(status)
        return ref, "wait", status

    def task_identity(self, context: Context) -> dict[str, Any] | None:
        """The task instance (``dag_id``, ``run_id``, ``task_id``, ``map_index``) the same for every try,
        which a submit's tag names (``hook.find_started``); None when the context does not say."""
        ti = context.get("ti")
        identity = {
            "dag_id": getattr(ti, "dag_id", None) or getattr(self, "dag_id", None),
            "run_id": getattr(ti, "run_id", None) or context.get("run_id"),
            "task_id": getattr(ti, "task_id", None) or self.task_id,
            "map_index": getattr(ti, "map_index", -1),
        }
        if not all(isinstance(identity[k], str) and identity[k] for k in ("dag_id", "run_id", "task_id")):
            return None
        if not isinstance(identity["map_index"], int):
            identity["map_index"] = -1
        return identity

    def _find_started(self, context: Context, record: dict[str, Any] | None) -> dict[str, Any] | None:
        """A retry about to submit: the newest job the service lists with this task's tag, unless it is
        the recorded one (module docstring). A first try does not look (it cannot have lost a submit)."""
        try_number = getattr(context.get("ti"), "try_number", 1) or 1
        identity = self.task_identity(context)
        if self._store(context) is None or try_number <= 1 or identity is None:
            return None
        watch = JobWatch(policy=RetryPolicy.for_wait(self), log=self.log)
        try:
            # Transient errors are ridden out within the error budget, then fail the try: submitting
            # without knowing would risk the second job this look is there to prevent.
            found = watch.read(lambda: self.hook.find_started(identity))
        except BadRequestError as err:
            self.log.warning("Could not list the %s jobs of this task (%s): submitting.", self.service, err)
            return None
        if not isinstance(found, dict) or not isinstance(found.get("job_ref"), dict):
            return None
        if record is not None and found["job_ref"] == record.get("job_ref"):
            return None
        return {"version": RECORD_VERSION, "service": self.service, **found, "reported": None}

    def _reattach(self, context: Context) -> tuple[JobRef, Verdict, JobStatus] | None:
        """Apply the retry rule (module docstring): the recorded job to wait on or report, or None to submit."""
        record = self._read_record(context)
        if record is not None:
            resumed = self._reattach_to(context, record)
            if resumed is not None:
                return resumed
        found = self._find_started(context, record)
        if found is not None:
            return self._reattach_to(context, found, found=True)
        return self._running_without_record(context) if record is None else None

    def _reattach_to(
        self, context: Context, record: dict[str, Any], found: bool = False
    ) -> tuple[JobRef, Verdict, JobStatus] | None:
        """The table's rule for one job record (or a job ``found`` by its tag, recorded when re-attached)."""
        try:
            ref = self.spec.ref(record["job_ref"])
        except (ConfigurationError, TypeError):
            self.log.warning("Ignoring an unreadable job record: %r", record)
            return None
        now = self._generation(context)
        cleared = (record.get("first_try"), record.get("clear_number")) != (
            now["first_try"],
            now["clear_number"],
        )
        label = (
            f"{self.service} job {ref.display_id} (submitted by try {record.get('try_number')} "
            f"at {record.get('submitted_at')}{', no record: found by its task tag' if found else ''})"
        )
        reported = record.get("reported")
        if reported and (cleared or reported not in self.success_states):
            self.log.info("%s ended as %s and a try reported it: submitting a new job.", label, reported)
            return None
        status = self._read_recorded(ref, record)
        if status is None or self.recorded_job_gone(status):
            self.log.warning("%s is gone: submitting a new job.", label)
            return None
        verdict = self.watch.classify(status)
        if verdict == "success" and cleared:
            self.log.info("%s succeeded, and the task was cleared since: submitting a new job.", label)
            return None
        if verdict == "failure" and (cleared or self.resubmit_on_retry):
            why = "the task or its run was cleared since" if cleared else "resubmit_on_retry=True"
            self.log.info("%s ended in %s (%s): submitting a new job.", label, status.state.value, why)
            return None
        if verdict == "wait":
            self.log.info("Re-attaching to %s: still %s, no new job submitted.", label, status.state.value)
        elif verdict == "success":
            self.log.info(
                "Re-attaching to %s: it already %s, no new job submitted.", label, status.state.value
            )
        else:
            self.log.warning(
                "%s ended in %s while no try watched it: reporting that failure "
                "(resubmit_on_retry=False); the next retry submits a new job.",
                label,
                status.state.value,
            )
        self.restore(record["job_ref"])
        for key, value in (record.get("ids") or {}).items():
            setattr(self, key, value)
        if found:  # the next try reads the record, not the list
            self._write_record(context, record, ref)
        self.watch.verdict(status)  # the progress line and history of the job this try now waits on
        return ref, verdict, status
