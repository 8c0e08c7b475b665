"""The one trigger, run on asyncio against a FakeHook: events, retries, delays, serialization, on_kill."""

from __future__ import annotations

import asyncio

import pytest

from airflow_jobstatus.core.exceptions import (
    AuthenticationError,
    BadRequestError,
    JobNotFoundError,
    TransientServiceError,
)
from airflow_jobstatus.core.states import JobState, JobStatus
from airflow_jobstatus.hooks.base import make_hook
from airflow_jobstatus.services import SERVICES, get_service
from airflow_jobstatus.triggers import job_status as trigger_module
from airflow_jobstatus.triggers.job_status import JobStatusTrigger
from airflow_jobstatus.wait.rules import JobWatch
from tests.unit.fakes import ERRORS, SENSOR_ARGS, FakeClock, FakeHook, first_event, make_sensor, status

EVENT_KEYS = {"status", "job_status", "message", "last_sub_jobs", "progress_history"}
ERROR_KEYS = {"status", "error", "message", "last_sub_jobs", "progress_history"}


def trigger(service: str = "dataproc", **kw) -> JobStatusTrigger:
    job_ref = get_service(service).ref(SENSOR_ARGS[service]).to_dict()
    return JobStatusTrigger(service=service, job_ref=job_ref, poll_interval=3, max_backoff=2, **kw)


# -- events -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_success_event(service, trigger_hook, sleeps):
    hook = trigger_hook(FakeHook(JobState.PENDING, JobState.RUNNING, JobState.SUCCEEDED, service=service))
    payload = first_event(trigger(service))
    assert set(payload) == EVENT_KEYS
    assert payload["status"] == "success"
    assert JobStatus.from_dict(payload["job_status"]).state is JobState.SUCCEEDED
    assert payload["message"].startswith(f"{service} job job-1: SUCCEEDED")
    assert [h["state"] for h in payload["progress_history"]] == ["PENDING", "RUNNING", "SUCCEEDED"]
    assert hook.names() == ["aget_status"] * 3
    assert hook.refs() == [get_service(service).ref(SENSOR_ARGS[service])] * 3  # typed refs


def test_failure_event_carries_the_services_message(trigger_hook, sleeps):
    trigger_hook(FakeHook(status(JobState.FAILED, native="ERROR", message="Driver exited with code 7")))
    payload = first_event(trigger())
    assert payload["status"] == "failure" and set(payload) == EVENT_KEYS
    assert payload["job_status"]["message"] == "Driver exited with code 7"
    assert "FAILED" in payload["message"]


def test_custom_sets_in_the_trigger(trigger_hook, sleeps):
    trigger_hook(FakeHook(JobState.RUNNING, JobState.PAUSED))
    assert first_event(trigger(failure_states=["FAILED", "PAUSED"]))["status"] == "failure"
    trigger_hook(FakeHook(JobState.FAILED))
    payload = first_event(trigger(failure_states=["PAUSED"]))  # terminal, in neither set
    assert payload["status"] == "failure"
    trigger_hook(FakeHook(JobState.DRAINED))
    assert first_event(trigger(success_states=["SUCCEEDED"]))["status"] == "failure"


def test_sub_jobs_and_history_survive_the_end_of_a_dli_job(trigger_hook, sleeps):
    sub = [{"id": 0, "status": "RUNNING", "num_tasks": 8, "num_completed_tasks": 4}]
    trigger_hook(
        FakeHook(
            status(JobState.RUNNING, service="dli", native="RUNNING", progress=0.5, sub_jobs=sub),
            status(JobState.SUCCEEDED, service="dli", native="FINISHED", progress=1.0),
            service="dli",
        )
    )
    payload = first_event(trigger("dli"))
    assert payload["job_status"]["sub_jobs"] == []
    assert payload["last_sub_jobs"] == sub
    assert [h["tasks"] for h in payload["progress_history"]] == [[4, 8], [0, 0]]


@pytest.mark.parametrize("kind", ["authentication", "not_found", "bad_request"])
def test_final_error_event(kind, trigger_hook, sleeps):
    err = ERRORS[kind]()
    hook = trigger_hook(FakeHook(JobState.RUNNING, err))
    payload = first_event(trigger())
    assert set(payload) == ERROR_KEYS
    assert payload["status"] == "error"
    assert payload["error"] == err.to_dict() and payload["message"] == str(err)
    assert payload["progress_history"][0]["state"] == "RUNNING"  # what it saw before the error
    assert len(hook.calls) == 2


def test_an_unexpected_exception_is_reported_not_swallowed(trigger_hook, sleeps):
    trigger_hook(FakeHook(ZeroDivisionError("division by zero")))
    payload = first_event(trigger())
    assert payload["status"] == "error"
    assert payload["error"]["kind"] == "error"
    assert "ZeroDivisionError: division by zero" in payload["message"]


# -- retries and delays -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["transient", "bad_response"])
def test_retryable_errors_are_ridden_out(kind, trigger_hook, sleeps):
    hook = trigger_hook(FakeHook(ERRORS[kind](), ERRORS[kind](), ERRORS[kind](), JobState.SUCCEEDED))
    assert first_event(trigger())["status"] == "success"
    assert len(hook.calls) == 4
    assert len(sleeps.async_) == 3 and all(0 < d <= 2 for d in sleeps.async_)  # bounded by max_backoff


def test_budget_spent_gives_an_error_event_with_the_last_error(trigger_hook, sleeps):
    errors = [TransientServiceError(f"503 #{i}", service="dataproc") for i in range(3)]
    trigger_hook(FakeHook(*errors))
    payload = first_event(trigger(error_budget=0))
    assert payload["status"] == "error"
    assert payload["error"]["kind"] == "transient" and payload["error"]["message"] == "503 #0"


def test_budget_spent_after_a_streak(trigger_hook, sleeps, monkeypatch):
    """The streak is measured on the watch's clock: the trigger's watch gets a fake one, 4 s per call."""
    clock = FakeClock()

    class ClockedWatch(JobWatch):
        def __init__(self, *a, **kw):
            super().__init__(*a, clock=clock, **kw)

    monkeypatch.setattr(trigger_module, "JobWatch", ClockedWatch)
    errors = [TransientServiceError(f"503 #{i}", service="dataproc") for i in range(10)]
    hook = trigger_hook(FakeHook(*errors, on_call=lambda name, ref: clock.advance(4)))
    payload = first_event(trigger(error_budget=10))
    served = len(hook.calls)
    assert payload["error"]["message"] == f"503 #{served - 1}"  # the last error
    assert 3 <= served <= 4


@pytest.mark.parametrize(
    ("retry_after", "max_backoff", "expected"),
    [(7.0, 60.0, 7.0), (90.0, 2.0, 2.0)],
    ids=["honoured", "bounded"],
)
def test_retry_after_is_honoured_and_bounded(retry_after, max_backoff, expected, trigger_hook, sleeps):
    throttled = TransientServiceError("429", service="dataproc", code=429, retry_after=retry_after)
    trigger_hook(FakeHook(throttled, JobState.SUCCEEDED))
    t = trigger()
    t.max_backoff = max_backoff
    assert first_event(t)["status"] == "success"
    assert sleeps.async_ == [pytest.approx(expected)]


def test_not_found_grace_in_the_trigger(trigger_hook, sleeps):
    missing = JobNotFoundError("not yet", service="dataproc")
    hook = trigger_hook(FakeHook(missing, JobState.SUCCEEDED))
    assert first_event(trigger(not_found_grace=30))["status"] == "success"
    assert len(hook.calls) == 2
    trigger_hook(FakeHook(missing, JobState.SUCCEEDED))
    assert first_event(trigger())["error"]["kind"] == "not_found"  # no grace: fails at once


def test_initial_delay_is_honoured_before_the_first_read(trigger_hook, sleeps):
    sleeps.hook = trigger_hook(FakeHook(JobState.RUNNING, JobState.SUCCEEDED))
    first_event(trigger(initial_delay=7))
    assert sleeps.async_ == [7, 3]  # the initial delay, then one poll interval
    assert sleeps.calls_before == [0, 1]  # nothing was read before the initial delay


def test_without_initial_delay_the_first_read_is_immediate(trigger_hook, sleeps):
    sleeps.hook = trigger_hook(FakeHook(JobState.RUNNING, JobState.RUNNING, JobState.SUCCEEDED))
    first_event(trigger())
    assert sleeps.async_ == [3, 3] and sleeps.calls_before == [1, 2]


# -- serialization and the hook it builds -----------------------------------------------------------


def test_serialize_round_trip_rebuilds_the_same_trigger():
    original = JobStatusTrigger(
        service="vertex_ai",
        job_ref={"job_id": "42", "location": "us-central1", "project_id": None, "job_type": "custom_job"},
        conn_id="my_gcp",
        poll_interval=11,
        success_states=["SUCCEEDED", "PARTIALLY_SUCCEEDED"],
        failure_states=["FAILED"],
        error_budget=99,
        max_backoff=3,
        not_found_grace=5,
        call_timeout=12,
        cancel_on_kill=True,
        initial_delay=11,
        impersonation_chain=("sa-1@p.iam.gserviceaccount.com", "sa-2@p.iam.gserviceaccount.com"),
    )
    path, kwargs = original.serialize()
    assert path == "airflow_jobstatus.triggers.job_status.JobStatusTrigger"
    rebuilt = JobStatusTrigger(**kwargs)
    assert rebuilt.serialize() == (path, kwargs)
    assert kwargs["impersonation_chain"] == [
        "sa-1@p.iam.gserviceaccount.com",
        "sa-2@p.iam.gserviceaccount.com",
    ]


def test_a_rebuilt_trigger_waits_like_the_original(trigger_hook, sleeps):
    sensor = make_sensor("cdm", poke_interval=4, failure_states=["FAILED", "PAUSED"])
    _, kwargs = sensor.make_trigger(sensor.poke_interval).serialize()
    trigger_hook(FakeHook(JobState.RUNNING, JobState.PAUSED, service="cdm"))
    payload = first_event(JobStatusTrigger(**kwargs))
    assert payload["status"] == "failure" and sleeps.async_ == [4]
    assert kwargs["job_ref"] == {"cluster_id": "c-1", "job_name": "job-1"}


@pytest.mark.parametrize("service", SERVICES)
def test_the_trigger_builds_the_services_hook_on_its_connection(service):
    t = trigger(service, conn_id="my_conn", call_timeout=12)
    hook = t._hook()
    assert type(hook) is type(make_hook(service))
    assert hook.conn_id == "my_conn" and hook.timeout == 12


# -- on_kill ----------------------------------------------------------------------------------------


def test_on_kill_does_nothing_without_cancel_on_kill(trigger_hook):
    hook = trigger_hook(FakeHook(JobState.RUNNING, service="dli"))
    asyncio.run(trigger("dli").on_kill())
    assert hook.calls == []


def test_on_kill_cancels_the_job_once_and_logs_it(trigger_hook, record_log):
    hook = trigger_hook(FakeHook(JobState.RUNNING, service="dli"))
    t = trigger("dli", cancel_on_kill=True)
    log = record_log(t)
    asyncio.run(t.on_kill())
    assert hook.calls == [("acancel", get_service("dli").ref(SENSOR_ARGS["dli"]))]
    assert any("accepted" in m for m in log.messages("info"))


def test_on_kill_retries_a_transient_cancel_error(trigger_hook, record_log, sleeps):
    hook = trigger_hook(FakeHook(JobState.RUNNING, service="cdm", cancels=[ERRORS["transient"](), None]))
    t = trigger("cdm", cancel_on_kill=True)
    log = record_log(t)
    asyncio.run(t.on_kill())
    assert hook.names() == ["acancel", "acancel"] and len(sleeps.async_) == 1
    assert any("retrying in" in m for m in log.messages("warning"))
    assert any("accepted" in m for m in log.messages("info"))


def test_on_kill_logs_and_raises_a_final_cancel_error(trigger_hook, record_log):
    refused = BadRequestError("DLI did not cancel job 'job-1': already finished", service="dli")
    hook = trigger_hook(FakeHook(JobState.RUNNING, service="dli", cancels=[refused]))
    t = trigger("dli", cancel_on_kill=True)
    log = record_log(t)
    with pytest.raises(BadRequestError):
        asyncio.run(t.on_kill())
    assert hook.names() == ["acancel"]
    assert any("Could not cancel" in m and "already finished" in m for m in log.messages("error"))
    assert not any("accepted" in m for m in log.messages())


def test_on_kill_with_bad_credentials_is_not_retried(trigger_hook, record_log, sleeps):
    hook = trigger_hook(FakeHook(JobState.RUNNING, cancels=[AuthenticationError("403")]))
    t = trigger(cancel_on_kill=True)
    record_log(t)
    with pytest.raises(AuthenticationError):
        asyncio.run(t.on_kill())
    assert hook.names() == ["acancel"] and sleeps.async_ == []


# -- on_kill only on a user's kill: a trigger moved to another triggerer cancels nothing ------------


class StateSupervisor:
    """The triggerer's supervisor as ``on_kill`` sees it: answers ``GetTaskStates`` (or fails)."""

    def __init__(self, state: str | None = None, error: Exception | None = None):
        self.state, self.error, self.asked = state, error, []

    async def asend(self, message):
        from airflow.sdk.execution_time.comms import TaskStatesResult

        self.asked.append(message)
        if self.error is not None:
            raise self.error
        states = {} if self.state is None else {"wait": self.state}
        return TaskStatesResult(task_states={"run-1": states})


def killed_trigger(monkeypatch, supervisor: StateSupervisor) -> JobStatusTrigger:
    from types import SimpleNamespace

    from airflow.sdk.execution_time import task_runner

    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", supervisor, raising=False)
    t = trigger("dli", cancel_on_kill=True)
    t.task_instance = SimpleNamespace(dag_id="d", task_id="wait", run_id="run-1", map_index=-1)
    return t


def test_on_kill_of_a_task_still_deferred_cancels_nothing(trigger_hook, record_log, monkeypatch):
    """apache/airflow#73454: a trigger moved to another triggerer gets on_kill; its task is still deferred."""
    hook = trigger_hook(FakeHook(JobState.RUNNING, service="dli"))
    supervisor = StateSupervisor("deferred")
    t = killed_trigger(monkeypatch, supervisor)
    log = record_log(t)
    asyncio.run(t.on_kill())
    assert hook.calls == []
    [asked] = supervisor.asked
    assert (asked.dag_id, asked.task_ids, asked.run_ids, asked.map_index) == ("d", ["wait"], ["run-1"], -1)
    assert any("left running" in m for m in log.messages("warning"))


@pytest.mark.parametrize("state", ["failed", "success", "up_for_retry", None])
def test_on_kill_after_a_user_changed_the_task_cancels_once(state, trigger_hook, monkeypatch):
    """Marked failed/success or cleared (no state, or none listed): the user's kill cancels the job."""
    hook = trigger_hook(FakeHook(JobState.RUNNING, service="dli"))
    asyncio.run(killed_trigger(monkeypatch, StateSupervisor(state)).on_kill())
    assert hook.calls == [("acancel", get_service("dli").ref(SENSOR_ARGS["dli"]))]


def test_on_kill_cancels_when_the_state_cannot_be_read(trigger_hook, record_log, monkeypatch):
    hook = trigger_hook(FakeHook(JobState.RUNNING, service="dli"))
    t = killed_trigger(monkeypatch, StateSupervisor(error=RuntimeError("supervisor gone")))
    log = record_log(t)
    asyncio.run(t.on_kill())
    assert [name for name, _ in hook.calls] == ["acancel"]
    assert any("supervisor gone" in m for m in log.messages("warning"))
