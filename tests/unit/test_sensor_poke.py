"""Sensors in poke and reschedule mode against a FakeHook: verdicts, errors, soft_fail, logs."""

from __future__ import annotations

import pytest
from airflow.sdk import PokeReturnValue

from airflow_jobstatus.core.compat import (
    AirflowRescheduleException,
    AirflowSensorTimeout,
    AirflowSkipException,
)
from airflow_jobstatus.core.exceptions import (
    AuthenticationError,
    JobFailedError,
    JobNotFoundError,
    TransientServiceError,
)
from airflow_jobstatus.core.states import JobState
from airflow_jobstatus.services import SERVICES, get_service
from tests.unit.fakes import ERRORS, SENSOR_ARGS, FakeClock, FakeHook, FakeTI, make_sensor, status


def fake_for(service: str, *readings, **kw) -> FakeHook:
    return FakeHook(*readings, service=service, **kw)


def expected_ref(service: str):
    spec = get_service(service)
    fields = {k: v for k, v in SENSOR_ARGS[service].items()}
    return spec.ref(fields)


def clocked(sensor, hook: FakeHook, step: float) -> FakeClock:
    """The sensor's watch runs on a fake clock that moves ``step`` seconds per hook call."""
    clock = FakeClock()
    sensor.watch.clock = clock
    sensor.watch.started_at = clock()
    hook.on_call = lambda name, ref: clock.advance(step)
    return clock


# -- verdicts --------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_poke_success_returns_the_status_dict(service, inject):
    sensor = make_sensor(service)
    hook = fake_for(service, JobState.SUCCEEDED)
    inject(sensor, hook)
    result = sensor.poke({})
    assert isinstance(result, PokeReturnValue) and result.is_done
    assert result.xcom_value == status(JobState.SUCCEEDED, service=service).to_dict()
    assert hook.calls == [("get_status", expected_ref(service))]  # the typed ref of the task's fields


@pytest.mark.parametrize("service", SERVICES)
def test_poke_failure_raises_with_the_services_message(service, inject):
    sensor = make_sensor(service)
    reading = status(JobState.FAILED, service=service, native="ERROR", message="Driver exited with code 7")
    inject(sensor, fake_for(service, reading))
    with pytest.raises(JobFailedError) as raised:
        sensor.poke({})
    text = str(raised.value)
    assert service in text and "job-1" in text and "native state ERROR" in text
    assert "Driver exited with code 7" in text
    assert raised.value.status == reading


@pytest.mark.parametrize("state", [s for s in JobState if not s.is_terminal], ids=lambda s: s.value)
def test_poke_keeps_waiting_on_a_non_terminal_state(state, inject):
    sensor = make_sensor("dataproc")
    inject(sensor, fake_for("dataproc", state))
    assert sensor.poke({}) is False


@pytest.mark.parametrize(
    ("kwargs", "state", "outcome"),
    [
        ({"success_states": ["SUCCEEDED"]}, JobState.DRAINED, "failure"),
        ({"success_states": ["SUCCEEDED", "DRAINED"]}, JobState.DRAINED, "success"),
        ({"failure_states": ["FAILED", "PAUSED"]}, JobState.PAUSED, "failure"),
        ({"failure_states": ["PAUSED"]}, JobState.FAILED, "failure"),  # terminal, in neither set
        ({"failure_states": ["PAUSED"]}, JobState.CANCELLING, "wait"),
    ],
)
def test_poke_uses_the_tasks_state_sets(kwargs, state, outcome, inject):
    sensor = make_sensor("dataflow", **kwargs)
    inject(sensor, fake_for("dataflow", state))
    if outcome == "failure":
        with pytest.raises(JobFailedError):
            sensor.poke({})
    elif outcome == "success":
        assert sensor.poke({}).xcom_value["state"] == state.value
    else:
        assert sensor.poke({}) is False


def test_execute_polls_until_success_with_one_progress_line_per_poll(inject):
    sensor = make_sensor("dli", poke_interval=0.001)
    sub = [{"id": 2, "status": "RUNNING", "num_tasks": 8, "num_completed_tasks": 3}]
    readings = [
        status(JobState.PENDING, service="dli", native="LAUNCHING"),
        status(JobState.RUNNING, service="dli", native="RUNNING", progress=0.4, sub_jobs=sub),
        status(JobState.SUCCEEDED, service="dli", native="FINISHED", progress=1.0),
    ]
    hook = fake_for("dli", *readings)
    log = inject(sensor, hook)
    assert sensor.execute({})["state"] == "SUCCEEDED"
    assert hook.names() == ["get_status"] * 3
    lines = [m for m in log.messages("info") if m.startswith("dli job job-1:")]
    assert len(lines) == 3
    assert "40%" in lines[1] and "subjob 2 3/8 tasks" in lines[1]


def test_stuck_state_warns_once_per_change_across_pokes(inject):
    sensor = make_sensor("dataproc")
    attempt = status(JobState.RETRYING, native="ATTEMPT_FAILURE", message="attempt 1 failed: OOM")
    running = status(JobState.RUNNING, native="RUNNING")
    log = inject(sensor, fake_for("dataproc", attempt, attempt, attempt, running, attempt))
    for _ in range(5):
        assert sensor.poke({}) is False
    warnings = [m for m in log.messages("warning") if "may not progress" in m]
    assert len(warnings) == 2  # into RETRYING, and into it again after RUNNING
    assert "attempt 1 failed: OOM" in warnings[0]


# -- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["transient", "bad_response"])
def test_poke_rides_out_retryable_errors(kind, inject, sleeps):
    sensor = make_sensor("cdm", max_backoff=0.5)
    hook = fake_for("cdm", ERRORS[kind](), ERRORS[kind](), ERRORS[kind](), JobState.SUCCEEDED)
    log = inject(sensor, hook)
    assert sensor.poke({}).is_done
    assert len(hook.names("get_status")) == 4
    assert len(sleeps.sync) == 3 and all(0 < d <= 0.5 for d in sleeps.sync)
    assert len([m for m in log.messages("warning") if "retrying in" in m]) == 3


def test_poke_raises_the_last_error_when_the_budget_is_spent(inject, sleeps):
    sensor = make_sensor("cdm", error_budget=10)
    errors = [TransientServiceError(f"503 #{i}", service="cdm") for i in range(50)]
    hook = fake_for("cdm", *errors)
    inject(sensor, hook)
    clocked(sensor, hook, step=3)
    with pytest.raises(TransientServiceError) as raised:
        sensor.poke({})
    served = len(hook.names("get_status"))
    assert raised.value is errors[served - 1]  # the last one served
    assert 3 <= served <= 5


@pytest.mark.parametrize(
    ("retry_after", "max_backoff", "expected"),
    [(7.0, 60.0, 7.0), (90.0, 2.0, 2.0)],
    ids=["honoured", "bounded"],
)
def test_poke_honours_retry_after_bounded_by_max_backoff(retry_after, max_backoff, expected, inject, sleeps):
    sensor = make_sensor("dli", max_backoff=max_backoff)
    throttled = TransientServiceError(
        "429 Too Many Requests", service="dli", code=429, retry_after=retry_after
    )
    inject(sensor, fake_for("dli", throttled, JobState.RUNNING))
    assert sensor.poke({}) is False
    assert sleeps.sync == [pytest.approx(expected)]


@pytest.mark.parametrize("kind", ["authentication", "not_found", "bad_request"])
def test_poke_fails_at_once_on_a_final_error(kind, inject, sleeps):
    sensor = make_sensor("dataproc")
    err = ERRORS[kind]()
    hook = fake_for("dataproc", err, JobState.SUCCEEDED)
    inject(sensor, hook)
    with pytest.raises(type(err)) as raised:
        sensor.poke({})
    assert raised.value is err
    assert len(hook.calls) == 1 and sleeps.sync == []


def test_not_found_is_retried_within_the_grace_then_fails(inject, sleeps):
    sensor = make_sensor("dataproc", not_found_grace=30)
    missing = JobNotFoundError("no such job", service="dataproc")
    hook = fake_for("dataproc", missing, missing, JobState.RUNNING, missing)
    inject(sensor, hook)
    clock = clocked(sensor, hook, step=5)
    assert sensor.poke({}) is False  # two not-founds inside the grace, then RUNNING
    clock.advance(30)
    with pytest.raises(JobNotFoundError):
        sensor.poke({})
    assert len(hook.calls) == 4


# -- soft_fail --------------------------------------------------------------------------------------


@pytest.mark.parametrize("soft_fail", [False, True])
def test_job_failure_skips_only_with_soft_fail(soft_fail, inject):
    sensor = make_sensor("cdm", soft_fail=soft_fail)
    inject(sensor, fake_for("cdm", status(JobState.FAILED, service="cdm", message="Table not found")))
    expected = AirflowSkipException if soft_fail else JobFailedError
    with pytest.raises(expected, match="Table not found"):
        sensor.execute({})


@pytest.mark.parametrize("soft_fail", [False, True])
def test_timeout_skips_only_with_soft_fail(soft_fail, inject):
    sensor = make_sensor("dataflow", timeout=0, poke_interval=0.001, soft_fail=soft_fail)
    hook = fake_for("dataflow", JobState.RUNNING)
    inject(sensor, hook)
    expected = AirflowSkipException if soft_fail else AirflowSensorTimeout
    with pytest.raises(expected, match="timed out"):
        sensor.execute({})
    assert hook.names() == ["get_status"]


@pytest.mark.parametrize("kind", ["authentication", "not_found", "transient"])
def test_service_error_fails_even_with_soft_fail(kind, inject):
    sensor = make_sensor("dataproc", soft_fail=True, error_budget=0)
    err = ERRORS[kind]()
    inject(sensor, fake_for("dataproc", err))
    with pytest.raises(type(err)):
        sensor.execute({})


# -- reschedule mode --------------------------------------------------------------------------------


def test_reschedule_mode_reschedules_a_running_job_after_one_poke(inject):
    sensor = make_sensor("dataproc", mode="reschedule")
    hook = fake_for("dataproc", JobState.RUNNING)
    inject(sensor, hook)
    with pytest.raises(AirflowRescheduleException):
        sensor.execute({"ti": FakeTI()})
    assert hook.names() == ["get_status"]


def test_reschedule_mode_rides_out_an_error_streak_inside_one_poke(inject, sleeps):
    sensor = make_sensor("dataproc", mode="reschedule")
    hook = fake_for("dataproc", ERRORS["transient"](), ERRORS["transient"](), JobState.RUNNING)
    inject(sensor, hook)
    with pytest.raises(AirflowRescheduleException):  # not a failure, and not a reschedule per error
        sensor.execute({"ti": FakeTI()})
    assert hook.names() == ["get_status"] * 3 and len(sleeps.sync) == 2


def test_reschedule_mode_returns_the_status_when_done(inject):
    sensor = make_sensor("dataproc", mode="reschedule")
    inject(sensor, fake_for("dataproc", JobState.SUCCEEDED))
    assert sensor.execute({"ti": FakeTI()})["state"] == "SUCCEEDED"


def test_reschedule_mode_error_budget_spent_fails(inject, sleeps):
    sensor = make_sensor("dataproc", mode="reschedule", error_budget=4)
    hook = fake_for("dataproc", ERRORS["transient"]())
    inject(sensor, hook)
    clocked(sensor, hook, step=1)
    with pytest.raises(TransientServiceError):
        sensor.execute({"ti": FakeTI()})


def test_auth_error_is_not_retried_in_poke_mode(inject, sleeps):
    sensor = make_sensor("dli", huaweicloud_conn_id="bad_huawei")
    hook = fake_for("dli", AuthenticationError("401 wrong signature", service="dli", code=401))
    log = inject(sensor, hook)
    with pytest.raises(AuthenticationError, match="401"):
        sensor.execute({})
    assert len(hook.calls) == 1
    assert not [m for m in log.messages() if "retrying in" in m]
