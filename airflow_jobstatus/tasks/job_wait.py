"""What sensors and operators share: the job reference, the hook, the watch, the trigger, how a wait ends.

Per-service classes only declare their ``service`` and their named, templated arguments; the
job reference is built from those attributes after rendering, typed by the service's ``JobRef``.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Iterable, Sequence
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_jobstatus.core.compat import AirflowSkipException, default_deferrable
from airflow_jobstatus.core.exceptions import ConfigurationError, JobFailedError
from airflow_jobstatus.core.states import JobState, JobStatus, resolve_state_sets
from airflow_jobstatus.core.templating import is_template
from airflow_jobstatus.services import get_service
from airflow_jobstatus.services.base import JobRef, ServiceSpec
from airflow_jobstatus.triggers.events import read_event
from airflow_jobstatus.wait.rules import (
    DEFAULT_ERROR_BUDGET,
    DEFAULT_MAX_BACKOFF,
    JobWatch,
    RetryPolicy,
    Verdict,
    check_seconds,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_jobstatus.hooks.base import JobStatusHook
    from airflow_jobstatus.tasks.progress import ProgressReporter
    from airflow_jobstatus.triggers.job_status import JobStatusTrigger


def _known_at_parse(value: Any) -> bool:
    """A value known at parse time (not a template, not an XComArg)."""
    if isinstance(value, int) and not isinstance(value, bool):  # e.g. a DLI Flink job id
        return True
    return value is None or (isinstance(value, str) and not is_template(value))


@cache
def _named_parameters(cls: type) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """The keyword names the ``__init__`` chain of ``cls`` takes, those without a default, and those
    of the package's own classes in the chain; once per class (every task construction asks)."""
    names: set[str] = set()
    required: set[str] = set()
    own: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                names.add(p.name)
                if p.default is p.empty:
                    required.add(p.name)
                if issubclass(klass, JobWaitMixin):
                    own.add(p.name)
    return frozenset(names), frozenset(required), frozenset(own)


def _suggestion(unknown: str, ours: Iterable[str]) -> str | None:
    """Our name for another provider's argument (``dataproc_job_id`` → ``job_id``), when one is close."""
    ours = sorted(ours, key=len, reverse=True)
    for name in ours:
        if unknown.endswith("_" + name) or name.endswith("_" + unknown):
            return name
    close = difflib.get_close_matches(unknown, ours, n=1, cutoff=0.6)
    return close[0] if close else None


def check_argument_names(cls: type, kwargs: dict[str, Any]) -> None:
    """A required argument missing beside unknown ones: a TypeError naming both, with our names for them.

    Airflow's own message names only the missing argument, which hides the usual cause: an argument
    spelled as another provider spells it (``dataproc_job_id=``, ``job_name=``).
    """
    names, required, own = _named_parameters(cls)
    unknown = sorted(set(kwargs) - names)
    missing = sorted(required - set(kwargs))
    if not unknown or not missing:
        return  # Airflow's own checks name what is wrong
    hints = []
    for name in unknown:
        ours = _suggestion(name, own)
        hints.append(f"{name!r}" + (f" (this class calls it {ours!r})" if ours else ""))
    raise TypeError(
        f"{cls.__name__}: unknown argument(s) {', '.join(hints)}; missing {', '.join(map(repr, missing))}."
    )


class JobWaitMixin:
    """The wait's arguments, validated when the DAG is parsed, and the steps every waiting task takes."""

    service: ClassVar[str]
    soft_fail: bool
    log: Any

    #: Seconds during which "not found" is retried after the wait starts (operators just made the job).
    default_not_found_grace: ClassVar[float] = 0.0

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        # Before Airflow's wrapper of __init__, whose "missing keyword argument" hides an unknown one.
        check_argument_names(cls, kwargs)
        return super().__new__(cls)

    def __init__(
        self,
        *,
        success_states: Iterable[str | JobState] | None = None,
        failure_states: Iterable[str | JobState] | None = None,
        deferrable: bool | None = None,
        error_budget: float = DEFAULT_ERROR_BUDGET,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        not_found_grace: float | None = None,
        call_timeout: float = 30.0,
        impersonation_chain: str | Sequence[str] | None = None,
        coalesce: bool | str = "auto",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.not_found_grace = self.default_not_found_grace if not_found_grace is None else not_found_grace
        # Validated now, so a typo fails when the DAG is parsed, not after hours of waiting.
        success, failure = resolve_state_sets(success_states, failure_states)
        self.success_states = sorted(s.value for s in success)
        self.failure_states = sorted(s.value for s in failure)
        self.error_budget, self.max_backoff = error_budget, max_backoff
        RetryPolicy.for_wait(self)  # validated now
        self.call_timeout = check_seconds("call_timeout", call_timeout, positive=True)
        if impersonation_chain is not None and self.spec.cloud != "google":
            raise ConfigurationError("impersonation_chain applies to Google services only.")
        self.impersonation_chain = impersonation_chain
        from airflow_jobstatus.triggers.coalescing import coalescing_of, parse_coalesce

        # True, False or "auto" (coalesce where it saves calls, else per job: never an error).
        self.coalesce = parse_coalesce(coalesce)
        if self.coalesce is True:  # a service without a list of active jobs fails when the DAG is parsed
            coalescing_of(self.service)

    # -- the service -------------------------------------------------------------------------------
    @property
    def spec(self) -> ServiceSpec:
        return get_service(self.service)

    @property
    def conn_id(self) -> str:
        """The rendered connection id (``gcp_conn_id`` / ``huaweicloud_conn_id``)."""
        return str(getattr(self, self.spec.conn_id_arg))

    def ref_fields(self) -> dict[str, Any]:
        """The job reference's fields, read from this task's (rendered) attributes."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self.spec.ref_type)}

    def job_ref(self) -> JobRef:
        """The typed job reference (after templating); ConfigurationError naming a bad field."""
        return self.spec.ref(self.ref_fields())

    def check_ref_now(self) -> None:
        """Validate the reference at parse time: every field known now (templates stand in as the ref
        type's ``parse_placeholder``, "x" unless its ids have a format)."""
        stand_in = self.spec.ref_type.parse_placeholder
        fields = {k: (v if _known_at_parse(v) else stand_in) for k, v in self.ref_fields().items()}
        ref = self.spec.ref(fields)
        if getattr(self, "coalesce", False) is True:  # a ref the list cannot serve ("auto": per job)
            from airflow_jobstatus.triggers.coalescing import coalescing_of

            coalescing_of(self.service, ref)

    # -- the wait ----------------------------------------------------------------------------------
    @cached_property
    def watch(self) -> JobWatch:
        """This wait's rules and error streak (a fresh one per task process); each status it reads
        is reported to the task state store's progress key (``tasks/progress.py``)."""
        watch = JobWatch.for_wait(self, log=self.log)
        watch.on_status = self.report_progress
        return watch

    @cached_property
    def progress_reporter(self) -> ProgressReporter:
        """Writes the job's progress to this task's state store (none outside a running task)."""
        from airflow_jobstatus.tasks.progress import reporter_for_current_task

        return reporter_for_current_task(self.log)

    def report_progress(self, status: JobStatus) -> None:
        """The status's state, progress and counters into the task state store, when they changed."""
        self.progress_reporter.report(status)

    @cached_property
    def hook(self) -> JobStatusHook[Any]:
        from airflow_jobstatus.hooks.base import make_hook

        extra = {"impersonation_chain": self.impersonation_chain} if self.impersonation_chain else {}
        return make_hook(self.service, self.conn_id, timeout=self.call_timeout, **extra)

    def read_status(self) -> JobStatus:
        """One status read through the sync hook, transient errors ridden out within the budget."""
        ref = self.job_ref()
        return self.watch.read(lambda: self.hook.get_status(ref))

    def first_check(self) -> JobStatus | None:
        """One read before deferring; None when it failed transiently (the trigger will retry)."""
        try:
            return self.hook.get_status(self.job_ref())
        except Exception as err:
            self.watch.on_error(err)  # re-raises auth, not-found and other final errors
            return None

    def trigger_kwargs(
        self, poll_interval: float, *, cancel_on_kill: bool = False, initial_delay: float = 0.0
    ) -> dict[str, Any]:
        """The trigger's kwargs except the job reference and connection id (see ``make_trigger``)."""
        return {
            "service": self.service,
            "poll_interval": poll_interval,
            "success_states": self.success_states,
            "failure_states": self.failure_states,
            "error_budget": self.error_budget,
            "max_backoff": self.max_backoff,
            "not_found_grace": self.not_found_grace,
            "call_timeout": self.call_timeout,
            "cancel_on_kill": cancel_on_kill,
            "initial_delay": initial_delay,
            "impersonation_chain": self.impersonation_chain,
            "end_from_trigger": self.end_from_trigger_states(),
            "soft_fail": self.soft_fail,
            "push_return_value": bool(getattr(self, "do_xcom_push", True)),
            "outcome_xcoms": self.outcome_xcoms_function,
            "coalesce": self.coalesce,
        }

    def log_deferral(self, poll_interval: float, timeout: float | None) -> None:
        """One line at deferral: what the triggerer will wait for (nothing else is logged until it does)."""
        until = "no timeout" if timeout is None else f"timeout {timeout:g} s"
        self.log.info(
            "Deferring: a triggerer reads %s job %s every %g s (%s). Nothing more is logged here until "
            "a running triggerer picks the wait up.",
            self.service,
            self.job_ref().display_id,
            poll_interval,
            until,
        )

    def make_trigger(
        self, poll_interval: float, *, cancel_on_kill: bool = False, initial_delay: float = 0.0
    ) -> JobStatusTrigger:
        from airflow_jobstatus.triggers.job_status import JobStatusTrigger

        return JobStatusTrigger(
            job_ref=self.job_ref().to_dict(),
            conn_id=self.conn_id,
            # Not in trigger_kwargs: those are also the start-from-trigger kwargs, fixed at parse time.
            wait_started=self.watch.started_wall,
            **self.trigger_kwargs(poll_interval, cancel_on_kill=cancel_on_kill, initial_delay=initial_delay),
        )

    # -- ending the task in the triggerer ------------------------------------------------------------
    #: The task states this class can end a task in from the triggerer (with the same XComs and log).
    end_from_trigger_capable: ClassVar[tuple[str, ...]] = ()
    #: ``"module:function"`` computing the outcome XComs besides ``return_value`` (operators).
    outcome_xcoms_function: ClassVar[str | None] = None
    #: ``end_from_trigger`` as the task was given it (True: wherever the outcome allows).
    end_from_trigger: bool = False

    def worker_flow_overridden(self) -> bool:
        """True when a subclass changed how the wait ends (then it always ends on a worker)."""
        return False

    def end_from_trigger_states(self) -> list[str]:
        """The task states the trigger may end this task in; the other outcomes resume on a worker.

        Only what Airflow does identically from the triggerer qualifies. A ``TaskSuccessEvent``
        emits no asset events and runs no ``on_success_callback``; a ``TaskFailedEvent`` sends no
        failure/retry e-mail, gives ``on_failure_callback``/``on_retry_callback`` no exception and
        skips a ``retry_policy``; a ``TaskSkippedEvent`` runs no ``on_skipped_callback``
        (``airflow/models/trigger.py``, ``handle_event_submit`` for ``BaseTaskEndEvent``).
        """
        if not self.end_from_trigger or self.worker_flow_overridden():
            return []
        states = set(self.end_from_trigger_capable)

        def attr(name: str) -> Any:
            return getattr(self, name, None)

        if attr("outlets") or attr("on_success_callback"):
            states.discard("success")
        email = attr("email") and (attr("email_on_failure") or attr("email_on_retry"))
        if (
            attr("on_failure_callback")
            or attr("on_retry_callback")
            or email
            or attr("retry_policy")
            or attr("never_fail")
        ):
            states.discard("failed")
        if attr("on_skipped_callback"):
            states.discard("skipped")
        return sorted(states)

    def finish(self, verdict: Verdict, status: JobStatus, context: Context) -> dict[str, Any]:
        """End the wait: the status dict on success; JobFailedError (or a skip with soft_fail) on failure."""
        if verdict == "failure":
            err = JobFailedError(status)
            if self.soft_fail:
                raise AirflowSkipException(f"soft_fail: {err}") from err
            raise err
        return status.to_dict()

    def status_from_event(self, event: dict[str, Any] | None) -> tuple[Verdict, JobStatus]:
        """Read the trigger's event back (its status reported as the job's progress: the triggerer
        cannot write the task state store); service errors are re-raised as themselves."""
        verdict, status = read_event(event, self.service)
        self.report_progress(status)
        return verdict, status

    def cancel_job(self, ref: JobRef) -> None:
        """Cancel a job this task started, retrying transient errors briefly; the log says how it went."""
        self.log.info("Cancelling %s job %s (%s)", self.service, ref.display_id, self.spec.cancel_note)
        watch = JobWatch.for_cancel(self.log)
        try:
            watch.read(lambda: self.hook.cancel(ref))
        except Exception as err:
            self.log.error("Could not cancel %s job %s: %s", self.service, ref.display_id, err)
            raise
        self.log.info("Cancel of %s job %s accepted.", self.service, ref.display_id)

    # -- console link ------------------------------------------------------------------------------
    def console_url(self) -> str:
        """The job's console page; empty while the job is unknown (not started, unrendered)."""
        try:
            ref = self.job_ref()
        except (ConfigurationError, TypeError, ValueError):
            return ""
        try:
            scope = self.hook.console_scope()
        except Exception as err:  # a link must never fail the task
            self.log.warning("No console link for %s job %s: %s", self.service, ref.display_id, err)
            scope = None
        return self.spec.console_url(ref, scope)


__all__ = ["JobWaitMixin", "check_argument_names"]
