"""Deferrable sensors against a FakeHook: the check before deferring, the deferral, and the resume."""

from __future__ import annotations

from datetime import timedelta

import pytest
from airflow.sdk.bases.operator import TriggerFailureReason

from airflow_jobstatus.core.compat import (
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferralError,
    TaskDeferred,
)
from airflow_jobstatus.core.exceptions import (
    AuthenticationError,
    BadResponseError,
    JobFailedError,
    JobNotFoundError,
    ServiceError,
    TransientServiceError,
)
from airflow_jobstatus.core.states import JobState
from airflow_jobstatus.services import SERVICES
from airflow_jobstatus.triggers.job_status import JobStatusTrigger
from tests.unit.fakes import ERRORS, FakeHook, make_sensor, status


def deferrable(service: str = "dataproc", **kw):
    return make_sensor(service, deferrable=True, poke_interval=7, timeout=42, **kw)


def event(verdict: str, reading=None, **extra) -> dict:
    reading = reading or status(JobState.SUCCEEDED if verdict == "success" else JobState.FAILED)
    return {"status": verdict, "job_status": reading.to_dict(), "message": reading.summary(), **extra}


def error_event(err: ServiceError) -> dict:
    return {"status": "error", "error": err.to_dict(), "message": str(err)}


# -- the check before deferring ---------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_a_finished_job_is_not_deferred(service, inject):
    sensor = deferrable(service)
    hook = FakeHook(JobState.SUCCEEDED, service=service)
    inject(sensor, hook)
    assert sensor.execute({})["state"] == "SUCCEEDED"  # returned, no TaskDeferred
    assert hook.names() == ["get_status"]


def test_a_failed_job_fails_before_deferring(inject):
    sensor = deferrable()
    inject(sensor, FakeHook(status(JobState.FAILED, message="boom")))
    with pytest.raises(JobFailedError, match="boom"):
        sensor.execute({})


def test_a_failed_job_is_skipped_before_deferring_with_soft_fail(inject):
    sensor = deferrable(soft_fail=True)
    inject(sensor, FakeHook(status(JobState.FAILED, message="boom")))
    with pytest.raises(AirflowSkipException, match="boom"):
        sensor.execute({})


@pytest.mark.parametrize("service", SERVICES)
def test_a_running_job_defers_after_one_read(service, inject):
    sensor = deferrable(service, success_states=["SUCCEEDED"], error_budget=120, max_backoff=9)
    hook = FakeHook(JobState.RUNNING, service=service)
    inject(sensor, hook)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    d = deferred.value
    assert hook.names() == ["get_status"]
    assert d.method_name == "execute_complete"
    assert d.timeout == timedelta(seconds=42)  # a deferred sensor cannot wait forever
    trigger = d.trigger
    assert isinstance(trigger, JobStatusTrigger)
    assert trigger.initial_delay == 7 == trigger.poll_interval  # it just read the job: wait one interval
    assert trigger.service == service and trigger.job_ref == sensor.job_ref().to_dict()
    assert trigger.success_states == ["SUCCEEDED"]
    assert "DRAINED" in trigger.failure_states  # no longer a success: a failure
    assert (trigger.error_budget, trigger.max_backoff) == (120, 9)
    assert trigger.cancel_on_kill is False  # a sensor never cancels anything


@pytest.mark.parametrize("kind", ["transient", "bad_response"])
def test_a_transient_first_check_defers_without_initial_delay(kind, inject):
    sensor = deferrable()
    inject(sensor, FakeHook(ERRORS[kind]()))
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    assert deferred.value.trigger.initial_delay == 0  # nothing was read: the trigger reads at once


@pytest.mark.parametrize("kind", ["authentication", "not_found", "bad_request"])
def test_a_final_error_on_the_first_check_fails_without_deferring(kind, inject):
    sensor = deferrable(soft_fail=True)
    err = ERRORS[kind]()
    inject(sensor, FakeHook(err))
    with pytest.raises(type(err)):
        sensor.execute({})


def test_not_found_within_the_grace_defers(inject):
    sensor = deferrable(not_found_grace=60)
    inject(sensor, FakeHook(JobNotFoundError("not yet", service="dataproc")))
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    assert deferred.value.trigger.not_found_grace == 60


# -- resuming from the trigger's event --------------------------------------------------------------


def test_success_event_returns_the_status_dict():
    sensor = deferrable()
    reading = status(JobState.DRAINED, service="dataproc", native="X")
    assert sensor.execute_complete({}, event("success", reading)) == reading.to_dict()


def test_failure_event_raises_the_job_failure():
    sensor = deferrable()
    reading = status(JobState.FAILED, native="ERROR", message="Driver exited with code 7")
    with pytest.raises(JobFailedError, match="Driver exited with code 7") as raised:
        sensor.execute_complete({}, event("failure", reading))
    assert raised.value.status == reading


def test_failure_event_is_skipped_with_soft_fail():
    sensor = deferrable(soft_fail=True)
    with pytest.raises(AirflowSkipException):
        sensor.execute_complete({}, event("failure"))


@pytest.mark.parametrize(
    "err",
    [
        TransientServiceError("503 for 300 s", service="dataproc", code=503, retry_after=4.0),
        AuthenticationError("401", service="dataproc", code=401),
        JobNotFoundError("gone", service="dataproc", job_id="job-1"),
        BadResponseError("garbled", service="dataproc"),
    ],
    ids=lambda e: e.kind,
)
@pytest.mark.parametrize("soft_fail", [False, True])
def test_error_event_raises_the_service_error_even_with_soft_fail(err, soft_fail):
    sensor = deferrable(soft_fail=soft_fail)
    with pytest.raises(type(err)) as raised:
        sensor.resume_execution("execute_complete", {"event": error_event(err)}, {})
    assert raised.value.to_dict() == err.to_dict()  # kind, message, code, retry_after survive


@pytest.mark.parametrize("bad", [None, {}, {"status": "maybe"}, "success"])
def test_an_unexpected_event_is_a_bad_response(bad):
    sensor = deferrable()
    with pytest.raises(BadResponseError, match="Unexpected event"):
        sensor.execute_complete({}, bad)


def test_resume_execution_runs_execute_complete():
    sensor = deferrable()
    result = sensor.resume_execution("execute_complete", {"event": event("success")}, {})
    assert result["state"] == "SUCCEEDED"


@pytest.mark.parametrize("soft_fail", [False, True])
def test_deferral_timeout_fails_or_skips_like_poke_mode(soft_fail):
    sensor = deferrable(soft_fail=soft_fail)
    expected = AirflowSkipException if soft_fail else AirflowSensorTimeout
    with pytest.raises(expected):
        sensor.resume_execution("__fail__", {"error": TriggerFailureReason.TRIGGER_TIMEOUT}, {})


@pytest.mark.parametrize("soft_fail", [False, True])
def test_a_trigger_failure_is_not_skipped(soft_fail):
    """The triggerer failing is not the job failing: soft_fail does not hide it."""
    sensor = deferrable(soft_fail=soft_fail)
    with pytest.raises(TaskDeferralError):
        sensor.resume_execution("__fail__", {"error": TriggerFailureReason.TRIGGER_FAILURE}, {})
