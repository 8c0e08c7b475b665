"""The task lifecycle against a FakeHook: start and end in the triggerer, re-attach on retry, cancel once.

Real Airflow (the scheduler deferring a task straight to the triggerer, the triggerer rendering and
ending it, retries and timeouts in a DAG run) is in tests/test_lifecycle_airflow.py.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from airflow.sdk import DAG
from airflow.sdk.bases.operator import TriggerFailureReason
from airflow.triggers.base import TaskFailedEvent, TaskSkippedEvent, TaskSuccessEvent, TriggerEvent

from airflow_jobstatus.core.compat import (
    AirflowSkipException,
    AirflowTaskTimeout,
    TaskDeferralError,
    TaskDeferralTimeout,
    TaskDeferred,
)
from airflow_jobstatus.core.exceptions import AuthenticationError, JobFailedError, TransientServiceError
from airflow_jobstatus.core.states import JobState
from airflow_jobstatus.hooks.cdm import CdmJobHook
from airflow_jobstatus.hooks.dli import DliJobHook
from airflow_jobstatus.operators import base as operator_base
from airflow_jobstatus.operators.base import RECORD_KEY
from airflow_jobstatus.operators.cdm import CdmStartJobOperator
from airflow_jobstatus.operators.dli import DliRunSqlJobOperator
from airflow_jobstatus.sensors.base import START_TRIGGER, JobStatusSensor
from airflow_jobstatus.sensors.dli import DliJobStatusSensor
from airflow_jobstatus.services import get_service
from airflow_jobstatus.services.cdm import NO_SUBMISSION, CdmJobRef
from airflow_jobstatus.services.dli import DliJobRef
from airflow_jobstatus.triggers import job_status as trigger_module
from airflow_jobstatus.triggers.job_status import (
    JobStatusStartTrigger,
    JobStatusTrigger,
    parse_end_from_trigger,
)
from tests.airflow_versions import needs_trigger_rendering
from tests.unit.fakes import (
    ERRORS,
    SENSOR_ARGS,
    FakeHook,
    FakeTaskStateStore,
    FakeTI,
    fake_hook_for,
    lifecycle_context,
    make_sensor,
    status,
)

FakeCdmHook = fake_hook_for(CdmJobHook)
FakeDliHook = fake_hook_for(DliJobHook)
DLI_REF = DliJobRef(job_id="dli-job-7", job_type="sql")  # the id FakeHook.submit_sql returns
CDM_REF = CdmJobRef(cluster_id="c-1", job_name="orders")
SUB = [{"id": 0, "name": "runJob", "status": "RUNNING", "num_tasks": 8, "num_completed_tasks": 4}]


def dli_reading(state: JobState, native: str | None = None, **kw):
    return status(state, service="dli", job_id="dli-job-7", native=native, **kw)


def cdm_reading(state: JobState, native: str | None = None, **kw):
    return status(state, service="cdm", job_id=CDM_REF.display_id, native=native, **kw)


def dli(**kw) -> DliRunSqlJobOperator:
    args = {"task_id": "aggregate", "sql": "INSERT INTO t SELECT * FROM s", "queue_name": "q"}
    return DliRunSqlJobOperator(
        **{**args, "poll_interval": 0.001, "max_backoff": 0.001, "retries": 2, "deferrable": False, **kw}
    )


def cdm(**kw) -> CdmStartJobOperator:
    args = {"task_id": "migrate", "cluster_id": "c-1", "job_name": "orders", "poll_interval": 0.001}
    return CdmStartJobOperator(**{**args, "max_backoff": 0.001, "retries": 2, "deferrable": False, **kw})


def trigger(service: str = "dataproc", **kw) -> JobStatusTrigger:
    job_ref = get_service(service).ref(SENSOR_ARGS[service]).to_dict()
    return JobStatusTrigger(service=service, job_ref=job_ref, poll_interval=3, max_backoff=2, **kw)


def first_raw_event(t) -> TriggerEvent:
    """The first event object a trigger yields (not just its payload)."""

    async def collect():
        async for event in t.run():
            return event
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(collect())


@pytest.fixture
def pushed(monkeypatch) -> dict:
    """XComs a trigger pushes before ending the task (instead of through the supervisor)."""
    record: dict = {}

    async def push(self, xcoms, **kwargs):
        record.update(xcoms)

    monkeypatch.setattr(JobStatusTrigger, "push_xcoms", push)
    return record


def submitted_try(store: FakeTaskStateStore, inject, make=dli, hook_cls=FakeDliHook, service="dli") -> dict:
    """Try 1: submit and defer (its worker then dies, or its trigger fails); the record it left."""
    op = make(deferrable=True)
    inject(op, hook_cls(JobState.RUNNING, service=service))
    with pytest.raises(TaskDeferred):
        op.execute(lifecycle_context(store, try_number=1, max_tries=2))
    return store.values[RECORD_KEY]


# == 1. start in the triggerer =======================================================================


def test_a_plain_deferrable_sensor_starts_in_the_triggerer():
    sensor = make_sensor("dli", deferrable=True, timeout=42, soft_fail=True)
    assert sensor.start_from_trigger is True and sensor.why_not_start_from_trigger() is None
    args = sensor.start_trigger_args
    assert args.trigger_cls == START_TRIGGER and args.next_method == "execute_complete"
    assert args.timeout == timedelta(seconds=42)  # the sensor's timeout, as when it defers itself
    kwargs = args.trigger_kwargs
    # the task's own field names, so that Airflow renders the templated ones in the triggerer
    assert kwargs["job_id"] == "job-1" and kwargs["huaweicloud_conn_id"] == "huaweicloud_default"
    assert kwargs["ref_fields"] == ["job_id", "job_type"] and kwargs["conn_field"] == "huaweicloud_conn_id"
    assert kwargs["initial_delay"] == 0 and kwargs["cancel_on_kill"] is False  # no read before; never cancels
    assert kwargs["end_from_trigger"] == ["failed", "skipped", "success"] and kwargs["soft_fail"] is True
    t = JobStatusStartTrigger(**kwargs)
    assert (
        t.serialize()[0] == START_TRIGGER
        and JobStatusStartTrigger(**t.serialize()[1]).serialize() == t.serialize()
    )


@needs_trigger_rendering
def test_templated_fields_start_in_the_triggerer_inside_a_dag():
    with DAG("d", schedule=None):
        sensor = DliJobStatusSensor(task_id="w", job_id="{{ params.job }}", deferrable=True)
    assert sensor.start_from_trigger is True
    assert sensor.start_trigger_args.trigger_kwargs["job_id"] == "{{ params.job }}"


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"deferrable": False}, "not deferrable"),
        ({"start_from_trigger": False}, "start_from_trigger=False"),
        ({"on_execute_callback": lambda ctx: None}, "on_execute_callback"),
        ({"job_id": "{{ params.job }}"}, "no DAG yet"),  # a template, and no DAG to check its settings
    ],
)
def test_when_a_sensor_starts_on_a_worker(kwargs, reason):
    sensor = make_sensor("dli", **{"deferrable": True, **kwargs})
    assert sensor.start_from_trigger is False and sensor.start_trigger_args is None
    assert reason in sensor.why_not_start_from_trigger()


def test_an_xcomarg_job_id_starts_on_a_worker():
    from airflow.sdk import task

    with DAG("d", schedule=None):

        @task
        def submit() -> str:
            return "job-1"

        sensor = DliJobStatusSensor(task_id="w", job_id=submit(), deferrable=True)
    assert sensor.start_from_trigger is False
    assert "XComArg" in sensor.why_not_start_from_trigger()


@pytest.mark.parametrize(
    "dag_kwargs",
    [{"user_defined_macros": {"m": 1}}, {"render_template_as_native_obj": True}],
    ids=["macros", "native"],
)
def test_dag_template_settings_keep_templated_sensors_on_a_worker(dag_kwargs):
    with DAG("d", schedule=None, **dag_kwargs):
        templated = DliJobStatusSensor(task_id="t", job_id="{{ m }}", deferrable=True)
        plain = DliJobStatusSensor(task_id="p", job_id="job-1", deferrable=True)
    assert (
        templated.start_from_trigger is False
        and "template settings" in templated.why_not_start_from_trigger()
    )
    assert plain.start_from_trigger is True  # nothing to render


def test_the_class_and_mapped_tasks_never_start_in_the_triggerer():
    """Airflow reads the class attributes for mapped tasks: they must stay False / None."""
    assert JobStatusSensor.start_from_trigger is False and JobStatusSensor.start_trigger_args is None
    assert DliJobStatusSensor.start_from_trigger is False


def test_a_subclass_changing_the_flow_starts_and_ends_on_a_worker():
    class Custom(DliJobStatusSensor):
        def execute_complete(self, context, event=None):
            return "mine"

    sensor = Custom(task_id="c", job_id="job-1", deferrable=True)
    assert sensor.start_from_trigger is False and sensor.end_from_trigger_states() == []


@pytest.mark.parametrize("service", ["dataproc", "vertex_ai", "cdm", "dli", "dataflow"])
def test_the_start_trigger_waits_on_the_rendered_fields(service, trigger_hook, sleeps, pushed):
    sensor = make_sensor(service, deferrable=True, poke_interval=3)
    t = JobStatusStartTrigger(**sensor.start_trigger_args.trigger_kwargs)
    hook = trigger_hook(FakeHook(JobState.RUNNING, JobState.SUCCEEDED, service=service))
    event = first_raw_event(t)
    assert isinstance(event, TaskSuccessEvent)
    assert hook.refs() == [sensor.job_ref()] * 2
    assert sleeps.async_ == [3]  # no initial delay: nothing was read before


@needs_trigger_rendering
def test_the_start_trigger_uses_what_airflow_rendered(trigger_hook, sleeps):
    t = JobStatusStartTrigger(
        service="dli",
        ref_fields=["job_id", "job_type"],
        conn_field="huaweicloud_conn_id",
        job_id="{{ params.job }}",
        job_type="sql",
        huaweicloud_conn_id="{{ params.conn }}",
    )
    t.template_fields = ("job_id", "huaweicloud_conn_id")  # what Airflow keeps (task fields ∩ kwargs)
    t.render_template_fields({"params": {"job": "job-9", "conn": "hw"}})
    hook = trigger_hook(FakeHook(JobState.SUCCEEDED, service="dli"))
    first_raw_event(t)
    assert hook.refs() == [DliJobRef(job_id="job-9")] and t.conn_id == "hw"


@needs_trigger_rendering
def test_a_template_the_triggerer_cannot_render_restarts_the_sensor_on_a_worker(trigger_hook, record_log):
    t = JobStatusStartTrigger(
        service="dli",
        ref_fields=["job_id", "job_type"],
        conn_field="huaweicloud_conn_id",
        job_id="{{ nope }}",
    )
    t.template_fields = ("job_id",)
    log = record_log(t)
    t.render_template_fields({})  # StrictUndefined, as on a worker: remembered, not raised
    hook = trigger_hook(FakeHook(JobState.SUCCEEDED, service="dli"))
    payload = first_raw_event(t).payload
    assert payload["status"] == "error" and payload["restart_in_worker"] is True
    assert "nope" in payload["message"] and hook.calls == []
    assert any("starts on a worker" in m for m in log.messages("warning"))


def test_a_rendered_value_that_is_no_job_id_restarts_the_sensor_on_a_worker(trigger_hook):
    t = JobStatusStartTrigger(
        service="dli", ref_fields=["job_id", "job_type"], conn_field="huaweicloud_conn_id", job_id="  "
    )
    payload = first_raw_event(t).payload
    assert payload["restart_in_worker"] is True and "job_id" in payload["message"]


def test_fields_airflow_did_not_render_restart_the_sensor_on_a_worker(trigger_hook):
    """No DAG data for the task in the triggerer (or no rendering at all): never wait on a template."""
    t = JobStatusStartTrigger(
        service="dli",
        ref_fields=["job_id", "job_type"],
        conn_field="huaweicloud_conn_id",
        job_id="{{ params.j }}",
    )
    hook = trigger_hook(FakeHook(JobState.SUCCEEDED, service="dli"))
    payload = first_raw_event(t).payload
    assert payload["restart_in_worker"] is True and "not rendered" in payload["message"]
    assert hook.calls == []


def test_the_sensor_restarts_on_a_worker_exactly_as_without_the_triggerer(inject):
    sensor = make_sensor("dli", deferrable=True, poke_interval=7)
    hook = FakeHook(JobState.RUNNING, service="dli")
    log = inject(sensor, hook)
    event = {
        "status": "error",
        "error": {"kind": "error", "message": "x"},
        "message": "x",
        "restart_in_worker": True,
    }
    with pytest.raises(TaskDeferred) as deferred:
        sensor.resume_execution("execute_complete", {"event": event}, {})
    assert hook.names() == ["get_status"]  # the worker's own first check, then the usual deferral
    assert isinstance(deferred.value.trigger, JobStatusTrigger)
    assert not isinstance(deferred.value.trigger, JobStatusStartTrigger)
    assert any("starting it here" in m for m in log.messages("info"))


def test_a_restarted_sensor_with_a_bad_job_id_fails_as_on_a_worker(inject):
    sensor = make_sensor("dli", deferrable=True)
    sensor.job_id = ""  # what the worker rendered
    inject(sensor, FakeHook(JobState.RUNNING, service="dli"))
    event = {
        "status": "error",
        "error": {"kind": "error", "message": "x"},
        "message": "x",
        "restart_in_worker": True,
    }
    with pytest.raises(ValueError, match="job_id must be a non-empty string"):
        sensor.execute_complete({}, event)


# == 2. end in the triggerer =========================================================================


def test_success_ends_the_task_in_the_triggerer_after_pushing_the_return_value(
    trigger_hook, sleeps, record_log, pushed
):
    trigger_hook(FakeHook(JobState.RUNNING, JobState.SUCCEEDED))
    t = trigger(end_from_trigger=True)
    log = record_log(t)
    event = first_raw_event(t)
    assert isinstance(event, TaskSuccessEvent) and event.xcoms is None  # pushed as a worker would
    assert pushed == {"return_value": status(JobState.SUCCEEDED).to_dict()}  # what the worker returns
    assert event.payload["status"] == "success"  # dag.test() resumes the worker with it
    assert set(event.payload) == {"status", "job_status", "message", "last_sub_jobs", "progress_history"}
    assert any("succeeds in the triggerer" in m for m in log.messages("info"))


def test_the_end_event_carries_only_its_state_to_airflow(trigger_hook, sleeps, pushed):
    """What the triggerer sends to Airflow: the payload stays behind (Airflow's own serializer)."""
    from airflow.triggers.base import DiscrimatedTriggerEvent
    from pydantic import TypeAdapter

    trigger_hook(FakeHook(JobState.SUCCEEDED))
    adapter = TypeAdapter(DiscrimatedTriggerEvent)
    sent = adapter.dump_python(first_raw_event(trigger(end_from_trigger=True)), mode="json")
    assert sent == {"task_instance_state": "success", "xcoms": None}
    assert isinstance(adapter.validate_python(sent), TaskSuccessEvent)


def test_no_return_value_without_do_xcom_push(trigger_hook, sleeps, monkeypatch):
    calls = []

    async def push(self, xcoms):
        calls.append(xcoms)

    monkeypatch.setattr(JobStatusTrigger, "push_xcoms", push)
    trigger_hook(FakeHook(JobState.SUCCEEDED))
    event = first_raw_event(trigger(end_from_trigger=True, push_return_value=False))
    assert isinstance(event, TaskSuccessEvent) and calls == []


def test_xcoms_that_cannot_be_pushed_resume_the_task_on_a_worker(trigger_hook, sleeps, record_log):
    """No supervisor to push through (here: none at all): the worker pushes them, as before."""
    trigger_hook(FakeHook(JobState.SUCCEEDED))
    t = trigger(end_from_trigger=True)
    log = record_log(t)
    event = first_raw_event(t)
    assert type(event) is TriggerEvent and event.payload["status"] == "success"
    assert any("resuming the task on a worker" in m for m in log.messages("error"))


class RecordingComms:
    """A supervisor channel that records what it is sent (``asend`` like the triggerer's)."""

    def __init__(self, is_async: bool) -> None:
        self.sent: list = []
        if is_async:
            self.asend = self._asend

    def send(self, msg):
        self.sent.append(msg)

    async def _asend(self, msg):
        self.sent.append(msg)


@pytest.mark.parametrize("is_async", [True, False], ids=["triggerer", "dag_test"])
def test_xcoms_are_pushed_through_the_supervisor_like_a_workers(is_async, monkeypatch):
    import types

    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import SetXCom

    comms = RecordingComms(is_async)
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", comms, raising=False)
    t = trigger(end_from_trigger=True)
    t.task_instance = types.SimpleNamespace(dag_id="d", task_id="w", run_id="r", map_index=None, task=None)
    value = status(JobState.SUCCEEDED).to_dict()
    asyncio.run(t.push_xcoms({"status": "SUCCEEDED", "return_value": value}))
    assert [type(m) for m in comms.sent] == [SetXCom, SetXCom]
    assert [(m.key, m.value, m.task_id, m.map_index) for m in comms.sent] == [
        ("status", "SUCCEEDED", "w", -1),
        ("return_value", value, "w", -1),  # the value itself, not a JSON string of it
    ]


@pytest.mark.parametrize(
    ("soft_fail", "event_type", "level", "prefix"),
    [
        (False, TaskFailedEvent, "error", ""),
        (True, TaskSkippedEvent, "warning", "soft_fail: "),
    ],
)
def test_a_job_failure_ends_the_task_with_the_workers_message(
    soft_fail, event_type, level, prefix, trigger_hook, sleeps, record_log
):
    failed = status(JobState.FAILED, native="ERROR", message="Driver exited with code 7")
    trigger_hook(FakeHook(failed))
    t = trigger(end_from_trigger=True, soft_fail=soft_fail)
    log = record_log(t)
    event = first_raw_event(t)
    assert isinstance(event, event_type) and event.xcoms is None
    assert f"{prefix}{JobFailedError(failed)}" in log.messages(level)  # the worker's exception text


def test_an_outcome_not_listed_resumes_the_task_on_a_worker(trigger_hook, sleeps):
    trigger_hook(FakeHook(JobState.FAILED))
    event = first_raw_event(trigger(end_from_trigger=["success"]))
    assert type(event) is TriggerEvent and event.payload["status"] == "failure"


def test_a_service_error_always_resumes_the_task_on_a_worker(trigger_hook, sleeps):
    trigger_hook(FakeHook(ERRORS["authentication"]()))
    event = first_raw_event(trigger(end_from_trigger=True))
    assert type(event) is TriggerEvent and event.payload["status"] == "error"


def test_end_states_are_validated():
    assert (
        parse_end_from_trigger(True) == ["failed", "skipped", "success"]
        and parse_end_from_trigger(False) == []
    )
    assert parse_end_from_trigger(("success", "success")) == ["success"]
    with pytest.raises(ValueError, match="unknown task state"):
        parse_end_from_trigger(["succeeded"])


def test_the_trigger_round_trips_its_new_kwargs():
    t = trigger(
        end_from_trigger=["success"],
        soft_fail=True,
        push_return_value=False,
        outcome_xcoms="airflow_jobstatus.operators.dli:outcome_xcoms",
    )
    path, kwargs = t.serialize()
    assert JobStatusTrigger(**kwargs).serialize() == (path, kwargs)
    old = {
        k: v
        for k, v in kwargs.items()
        if k not in {"end_from_trigger", "soft_fail", "push_return_value", "outcome_xcoms"}
    }
    assert JobStatusTrigger(**old).end_from_trigger == []  # a trigger stored before: resumes on a worker


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, ["failed", "skipped", "success"]),
        ({"end_from_trigger": False}, []),
        ({"on_success_callback": lambda ctx: None}, ["failed", "skipped"]),
        ({"outlets": ["s3://bucket/key"]}, ["failed", "skipped"]),
        ({"on_failure_callback": lambda ctx: None}, ["skipped", "success"]),
        ({"on_retry_callback": lambda ctx: None}, ["skipped", "success"]),
        ({"email": "a@b.c"}, ["skipped", "success"]),
        ({"never_fail": True}, ["skipped", "success"]),
        ({"on_skipped_callback": lambda ctx: None}, ["failed", "success"]),
    ],
    ids=[
        "default",
        "off",
        "success_cb",
        "outlets",
        "failure_cb",
        "retry_cb",
        "email",
        "never_fail",
        "skip_cb",
    ],
)
def test_what_the_triggerer_cannot_do_identically_returns_to_a_worker(extra, expected, inject):
    if "outlets" in extra:
        from airflow.sdk import Asset

        extra = {"outlets": [Asset("s3://bucket/key")]}
    sensor = make_sensor("dataproc", deferrable=True, **extra)
    inject(sensor, FakeHook(JobState.RUNNING))
    assert sensor.end_from_trigger_states() == expected
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    assert deferred.value.trigger.end_from_trigger == expected


def test_the_sensor_defers_with_soft_fail_and_do_xcom_push(inject):
    sensor = make_sensor("dataproc", deferrable=True, soft_fail=True, do_xcom_push=False)
    inject(sensor, FakeHook(JobState.RUNNING))
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    t = deferred.value.trigger
    assert t.soft_fail is True and t.push_return_value is False and t.outcome_xcoms is None


def test_dag_test_resumes_with_the_same_result_as_the_triggerer(trigger_hook, sleeps, pushed):
    """dag.test() resumes the worker with an end event's payload: the worker path, same return value."""
    trigger_hook(FakeHook(JobState.RUNNING, JobState.SUCCEEDED))
    event = first_raw_event(trigger(end_from_trigger=True))
    sensor = make_sensor("dataproc", deferrable=True)
    assert sensor.execute_complete({}, event.payload) == pushed["return_value"]


def test_operator_success_ends_in_the_triggerer_with_the_workers_xcoms(inject, trigger_hook, sleeps, pushed):
    op = dli(deferrable=True)
    inject(op, FakeDliHook(JobState.RUNNING, service="dli"))
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": FakeTI()})
    t = deferred.value.trigger
    assert t.end_from_trigger == ["success"] and t.cancel_on_kill is True
    assert t.outcome_xcoms == "airflow_jobstatus.operators.dli:outcome_xcoms"
    readings = [
        dli_reading(JobState.RUNNING, "RUNNING", progress=0.5, sub_jobs=SUB),
        dli_reading(JobState.SUCCEEDED, "FINISHED", progress=1.0),
    ]
    trigger_hook(FakeDliHook(*readings, service="dli"))
    event = first_raw_event(JobStatusTrigger(**t.serialize()[1]))
    assert isinstance(event, TaskSuccessEvent)
    # the same XComs as the worker pushes when it resumes with the same event
    worker_ti = FakeTI()
    returned = dli(deferrable=True).execute_complete(
        {"ti": worker_ti}, event=event.payload, **deferred.value.kwargs
    )
    assert pushed == {**worker_ti.xcoms, "return_value": returned}
    assert pushed["sub_jobs"] == SUB and pushed["status"] == "SUCCEEDED"


def test_operator_failure_always_resumes_on_a_worker(inject, trigger_hook, sleeps):
    op = cdm(deferrable=True)
    inject(op, FakeCdmHook(JobState.RUNNING, service="cdm"))
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": FakeTI()})
    trigger_hook(FakeCdmHook(cdm_reading(JobState.FAILED, "FAILED"), service="cdm"))
    event = first_raw_event(deferred.value.trigger)
    assert type(event) is TriggerEvent and event.payload["status"] == "failure"


def test_an_operator_whose_outcome_is_customised_resumes_on_a_worker():
    class Custom(DliRunSqlJobOperator):
        def push_outcome(self, context, status, seen):
            context["ti"].xcom_push(key="mine", value=1)

    assert Custom(task_id="c", sql="SELECT 1", queue_name="q").end_from_trigger_states() == []
    assert dli(on_success_callback=lambda ctx: None).end_from_trigger_states() == []
    assert dli(end_from_trigger=False).end_from_trigger_states() == []


def test_a_broken_outcome_function_resumes_on_a_worker(trigger_hook, sleeps, record_log, pushed):
    trigger_hook(FakeHook(JobState.SUCCEEDED))
    t = trigger(end_from_trigger=True, outcome_xcoms="airflow_jobstatus.operators.dli:no_such_function")
    record_log(t)
    event = first_raw_event(t)
    assert type(event) is TriggerEvent and event.payload["status"] == "success"


# == 3. no duplicate job on retry ====================================================================


def test_the_job_is_recorded_before_the_wait(inject):
    store = FakeTaskStateStore()
    record = submitted_try(store, inject)
    assert record["service"] == "dli" and record["job_ref"] == DLI_REF.to_dict()
    assert record["ids"] == {"job_id": "dli-job-7"} and record["reported"] is None
    assert (record["try_number"], record["first_try"], record["clear_number"]) == (1, 1, 0)
    assert datetime.fromisoformat(record["submitted_at"]).tzinfo is not None


def test_cdm_records_the_submission_and_its_start_time(inject):
    store = FakeTaskStateStore()
    record = submitted_try(store, inject, make=cdm, hook_cls=FakeCdmHook, service="cdm")
    assert record["ids"] == {"submission_id": "1001"} and record["job_ref"] == CDM_REF.to_dict()
    assert record["submitted_at"]


@pytest.mark.parametrize("deferrable", [False, True])
def test_a_retry_re_attaches_to_a_running_job(deferrable, inject, sleeps):
    store = FakeTaskStateStore()
    submitted_try(store, inject)
    retry = dli(deferrable=deferrable)
    hook = FakeDliHook(dli_reading(JobState.RUNNING), dli_reading(JobState.SUCCEEDED), service="dli")
    log = inject(retry, hook)
    ctx = lifecycle_context(store, try_number=2, max_tries=2)
    if deferrable:
        with pytest.raises(TaskDeferred) as deferred:
            retry.execute(ctx)
        assert deferred.value.kwargs == {"job_ref": DLI_REF.to_dict()}
        assert deferred.value.trigger.job_ref == DLI_REF.to_dict()
    else:
        assert retry.execute(ctx)["state"] == "SUCCEEDED"
    assert "submit_sql" not in hook.names()
    assert ctx["ti"].xcoms["job_id"] == "dli-job-7"  # pushed again: a new try starts without XComs
    assert any("Re-attaching" in m and "still RUNNING" in m for m in log.messages("info"))


def test_a_retry_after_the_job_succeeded_succeeds_without_a_job(inject):
    store = FakeTaskStateStore()
    submitted_try(store, inject)
    retry = dli()
    hook = FakeDliHook(dli_reading(JobState.SUCCEEDED, "FINISHED", progress=1.0), service="dli")
    inject(retry, hook)
    ctx = lifecycle_context(store, try_number=2, max_tries=2)
    assert retry.execute(ctx)["state"] == "SUCCEEDED"
    assert hook.names() == ["get_status"] and ctx["ti"].xcoms["status"] == "SUCCEEDED"
    assert store.values[RECORD_KEY]["reported"] == "SUCCEEDED"


def test_a_job_that_failed_unwatched_is_reported_once_then_resubmitted(inject):
    store = FakeTaskStateStore()
    submitted_try(store, inject)
    failed = dli_reading(JobState.FAILED, "FAILED", message="syntax error")
    retry = dli()
    hook = FakeDliHook(failed, service="dli")
    log = inject(retry, hook)
    with pytest.raises(JobFailedError, match="syntax error"):
        retry.execute(lifecycle_context(store, try_number=2, max_tries=2))
    assert "submit_sql" not in hook.names() and store.values[RECORD_KEY]["reported"] == "FAILED"
    assert any("while no try watched it" in m for m in log.messages("warning"))
    third = dli()
    hook3 = FakeDliHook(dli_reading(JobState.SUCCEEDED), service="dli")
    inject(third, hook3)
    third.execute(lifecycle_context(store, try_number=3, max_tries=2))
    assert hook3.names()[0] == "submit_sql"  # the failure was reported: an ordinary retry


def test_a_job_failure_the_task_reported_is_resubmitted_by_the_retry(inject):
    store = FakeTaskStateStore()
    op = dli()
    inject(op, FakeDliHook(dli_reading(JobState.FAILED), service="dli"))
    with pytest.raises(JobFailedError):
        op.execute(lifecycle_context(store, try_number=1, max_tries=2))
    assert store.values[RECORD_KEY]["reported"] == "FAILED"
    retry = dli()
    hook = FakeDliHook(dli_reading(JobState.SUCCEEDED), service="dli")
    inject(retry, hook)
    retry.execute(lifecycle_context(store, try_number=2, max_tries=2))
    assert hook.names() == ["submit_sql", "get_status"]  # no read of the old job first


def test_resubmit_on_retry_submits_instead_of_reporting(inject):
    store = FakeTaskStateStore()
    submitted_try(store, inject)
    retry = dli(resubmit_on_retry=True)
    hook = FakeDliHook(dli_reading(JobState.CANCELLED), dli_reading(JobState.SUCCEEDED), service="dli")
    inject(retry, hook)
    assert retry.execute(lifecycle_context(store, try_number=2, max_tries=2))["state"] == "SUCCEEDED"
    assert hook.names() == ["get_status", "submit_sql", "get_status"]


def test_a_job_that_is_gone_is_submitted_again(inject):
    store = FakeTaskStateStore()
    submitted_try(store, inject)
    store.values[RECORD_KEY]["submitted_at"] = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    retry = dli()
    hook = FakeDliHook(ERRORS["not_found"](), dli_reading(JobState.SUCCEEDED), service="dli")
    log = inject(retry, hook)
    retry.execute(lifecycle_context(store, try_number=2, max_tries=2))
    assert hook.names() == ["get_status", "submit_sql", "get_status"]
    assert any("is gone" in m for m in log.messages("warning"))


def test_not_found_right_after_the_submission_is_retried_not_resubmitted(inject, sleeps):
    """A worker dying just after submitting: the service may not list the job yet (grace 30 s)."""
    store = FakeTaskStateStore()
    submitted_try(store, inject)
    retry = dli()
    hook = FakeDliHook(
        ERRORS["not_found"](), dli_reading(JobState.RUNNING), dli_reading(JobState.SUCCEEDED), service="dli"
    )
    inject(retry, hook)
    retry.execute(lifecycle_context(store, try_number=2, max_tries=2))
    assert "submit_sql" not in hook.names() and len(sleeps.sync) == 1


def test_a_cdm_job_without_submissions_is_gone(inject):
    store = FakeTaskStateStore()
    submitted_try(store, inject, make=cdm, hook_cls=FakeCdmHook, service="cdm")
    retry = cdm()
    none = cdm_reading(JobState.PENDING, NO_SUBMISSION)
    hook = FakeCdmHook(none, cdm_reading(JobState.SUCCEEDED), service="cdm")
    inject(retry, hook)
    retry.execute(lifecycle_context(store, try_number=2, max_tries=2))
    assert hook.names() == ["get_status", "start_job", "get_status"]


def test_a_cdm_retry_re_attaches_and_pushes_the_recorded_submission_id(inject):
    store = FakeTaskStateStore()
    submitted_try(store, inject, make=cdm, hook_cls=FakeCdmHook, service="cdm")
    retry = cdm()
    hook = FakeCdmHook(cdm_reading(JobState.RUNNING), cdm_reading(JobState.SUCCEEDED), service="cdm")
    inject(retry, hook)
    ctx = lifecycle_context(store, try_number=2, max_tries=2)
    retry.execute(ctx)
    assert "start_job" not in hook.names() and ctx["ti"].xcoms["submission_id"] == "1001"


@pytest.mark.parametrize(
    ("reading", "clear", "submits"),
    [
        (JobState.SUCCEEDED, {"max_tries": 4}, True),  # cleared after try 2 (max_tries = 2 + retries)
        (JobState.RUNNING, {"max_tries": 4}, False),  # never two jobs at once, cleared or not
        (JobState.FAILED, {"clear_number": 1}, True),  # the run was cleared while the job ran
        (JobState.SUCCEEDED, {"clear_number": 1}, True),
    ],
    ids=["cleared_succeeded", "cleared_running", "run_cleared_failed", "run_cleared_succeeded"],
)
def test_a_cleared_task_starts_a_new_job_unless_one_runs(reading, clear, submits, inject):
    store = FakeTaskStateStore()
    submitted_try(store, inject)
    retry = dli()
    hook = FakeDliHook(dli_reading(reading), dli_reading(JobState.SUCCEEDED), service="dli")
    inject(retry, hook)
    retry.execute(lifecycle_context(store, **{"try_number": 3, "max_tries": 2, **clear}))
    assert ("submit_sql" in hook.names()) is submits


def test_reattach_on_retry_false_submits_every_try_and_records_nothing(inject):
    store = FakeTaskStateStore()
    submitted_try(store, inject)
    retry = dli(reattach_on_retry=False)
    hook = FakeDliHook(dli_reading(JobState.SUCCEEDED), service="dli")
    inject(retry, hook)
    retry.execute(lifecycle_context(store, try_number=2, max_tries=2))
    assert hook.names() == ["submit_sql", "get_status"] and len(store.sets) == 1  # try 1's record only


def test_wait_for_completion_false_returns_the_recorded_id_on_retry(inject):
    store = FakeTaskStateStore()
    submitted_try(store, inject)
    retry = dli(wait_for_completion=False)
    hook = FakeDliHook(dli_reading(JobState.RUNNING), service="dli")
    inject(retry, hook)
    assert retry.execute(lifecycle_context(store, try_number=2, max_tries=2)) == "dli-job-7"
    assert hook.names() == ["get_status"]


def test_a_failed_record_write_keeps_the_wait_going(inject):
    store = FakeTaskStateStore(fail_on_set=RuntimeError("API down"))
    op = dli()
    log = inject(op, FakeDliHook(dli_reading(JobState.SUCCEEDED), service="dli"))
    assert op.execute(lifecycle_context(store))["state"] == "SUCCEEDED"
    assert any("Could not record" in m and "API down" in m for m in log.messages("warning"))


def test_a_service_error_on_the_retry_read_fails_the_try_without_submitting(inject):
    store = FakeTaskStateStore()
    submitted_try(store, inject)
    retry = dli()
    hook = FakeDliHook(AuthenticationError("401", service="dli"), service="dli")
    inject(retry, hook)
    with pytest.raises(AuthenticationError):
        retry.execute(lifecycle_context(store, try_number=2, max_tries=2))
    assert hook.names() == ["get_status"]


# == 4. nothing left running =========================================================================


def test_a_worker_timeout_cancels_the_job_once_and_says_so(inject):
    store = FakeTaskStateStore()
    op = dli(timeout=0.001, poll_interval=0.01)
    hook = FakeDliHook(dli_reading(JobState.RUNNING), service="dli")
    log = inject(op, hook)
    with pytest.raises(TimeoutError):
        op.execute(lifecycle_context(store))
    assert hook.names("cancel") == ["cancel"] and store.values[RECORD_KEY]["reported"] == "CANCELLED"
    assert any("cancelling the dli job dli-job-7" in m for m in log.messages("warning"))
    assert any("accepted" in m for m in log.messages("info"))
    op.on_kill()  # a kill afterwards: already cancelled
    assert hook.names("cancel") == ["cancel"]


def test_cancel_on_timeout_false_leaves_the_job_for_the_retry(inject):
    store = FakeTaskStateStore()
    op = dli(timeout=0.001, poll_interval=0.01, cancel_on_timeout=False)
    hook = FakeDliHook(dli_reading(JobState.RUNNING), service="dli")
    log = inject(op, hook)
    with pytest.raises(TimeoutError):
        op.execute(lifecycle_context(store))
    assert hook.names("cancel") == [] and store.values[RECORD_KEY]["reported"] is None
    assert any("left running (a retry re-attaches" in m for m in log.messages("warning"))


def test_a_deferral_timeout_cancels_the_recorded_job_once(inject):
    store = FakeTaskStateStore()
    submitted_try(store, inject)
    resumed = dli(deferrable=True)  # a fresh instance: what Airflow resumes after the timeout
    hook = FakeDliHook(dli_reading(JobState.RUNNING), service="dli")
    log = inject(resumed, hook)
    with pytest.raises(TaskDeferralTimeout):
        resumed.resume_execution(
            "__fail__", {"error": TriggerFailureReason.TRIGGER_TIMEOUT}, lifecycle_context(store)
        )
    assert hook.calls == [("get_status", DLI_REF), ("cancel", DLI_REF)]  # read first: still running
    assert store.values[RECORD_KEY]["reported"] == "CANCELLED"
    assert any("timed out" in m and "cancelling" in m for m in log.messages("warning"))


def test_a_deferral_timeout_finds_the_job_by_its_id_xcom_without_a_record(inject):
    resumed = dli(deferrable=True)
    hook = FakeDliHook(dli_reading(JobState.RUNNING), service="dli")
    inject(resumed, hook)
    ctx = lifecycle_context(FakeTaskStateStore())
    ctx["ti"].xcoms["job_id"] = "dli-job-7"  # pushed by this try before it deferred
    with pytest.raises(TaskDeferralTimeout):
        resumed.resume_execution("__fail__", {"error": TriggerFailureReason.TRIGGER_TIMEOUT}, ctx)
    assert hook.calls == [("get_status", DLI_REF), ("cancel", DLI_REF)]


def test_a_deferral_timeout_on_a_job_that_just_succeeded_reports_its_success(inject):
    """The timeout came as the job ended: its outcome is reported, and nothing is cancelled."""
    store = FakeTaskStateStore()
    submitted_try(store, inject)
    resumed = dli(deferrable=True)
    hook = FakeDliHook(dli_reading(JobState.SUCCEEDED, native="FINISHED"), service="dli")
    log = inject(resumed, hook)
    ctx = lifecycle_context(store)
    result = resumed.resume_execution("__fail__", {"error": TriggerFailureReason.TRIGGER_TIMEOUT}, ctx)
    assert result["state"] == "SUCCEEDED"
    assert hook.calls == [("get_status", DLI_REF)]  # no cancel of a finished job
    assert store.values[RECORD_KEY]["reported"] == "SUCCEEDED"
    assert any("already ended SUCCEEDED" in m for m in log.messages("info"))


def test_a_deferral_timeout_on_a_job_that_just_failed_reports_its_failure(inject):
    store = FakeTaskStateStore()
    submitted_try(store, inject)
    resumed = dli(deferrable=True)
    hook = FakeDliHook(
        dli_reading(JobState.FAILED, native="FAILED", message="Table not found"), service="dli"
    )
    inject(resumed, hook)
    with pytest.raises(JobFailedError, match="Table not found"):
        resumed.resume_execution(
            "__fail__", {"error": TriggerFailureReason.TRIGGER_TIMEOUT}, lifecycle_context(store)
        )
    assert hook.calls == [("get_status", DLI_REF)]


def test_a_worker_timeout_on_a_job_that_just_succeeded_reports_its_success(inject, monkeypatch):
    """Non-deferrable: the watch's TimeoutError, then a read that finds the job done (no cancel)."""
    op = dli(timeout=0.001, poll_interval=0.01)
    hook = FakeDliHook(
        dli_reading(JobState.RUNNING), dli_reading(JobState.SUCCEEDED, native="FINISHED"), service="dli"
    )
    inject(op, hook)
    result = op.execute(lifecycle_context(FakeTaskStateStore()))
    assert result["state"] == "SUCCEEDED"
    assert [name for name, _ in hook.calls].count("cancel") == 0


def test_a_deferral_timeout_without_a_known_job_cancels_nothing(inject):
    resumed = cdm(deferrable=True)
    hook = FakeCdmHook(service="cdm")
    log = inject(resumed, hook)
    with pytest.raises(TaskDeferralTimeout):
        resumed.resume_execution("__fail__", {"error": TriggerFailureReason.TRIGGER_TIMEOUT}, {})
    assert hook.calls == [] and any("nothing to cancel" in m for m in log.messages("warning"))


def test_a_failed_cancel_after_a_timeout_still_reports_the_timeout(inject):
    store = FakeTaskStateStore()
    submitted_try(store, inject)
    resumed = dli(deferrable=True)
    hook = FakeDliHook(service="dli", cancels=[AuthenticationError("403", service="dli")])
    log = inject(resumed, hook)
    with pytest.raises(TaskDeferralTimeout):
        resumed.resume_execution(
            "__fail__", {"error": TriggerFailureReason.TRIGGER_TIMEOUT}, lifecycle_context(store)
        )
    assert store.values[RECORD_KEY]["reported"] is None  # not cancelled: a retry re-attaches
    assert any("Could not cancel" in m for m in log.messages("error"))


def test_a_trigger_failure_leaves_the_job_for_the_retry(inject):
    store = FakeTaskStateStore()
    submitted_try(store, inject)
    resumed = dli(deferrable=True)
    hook = FakeDliHook(service="dli")
    inject(resumed, hook)
    with pytest.raises(TaskDeferralError):
        resumed.resume_execution(
            "__fail__", {"error": TriggerFailureReason.TRIGGER_FAILURE}, lifecycle_context(store)
        )
    assert hook.calls == []


def test_execution_timeout_cancels_with_cancel_on_timeout(inject):
    """Airflow calls on_kill from its AirflowTaskTimeout handler: that is a timeout, not a kill."""
    store = FakeTaskStateStore()
    op = dli(cancel_on_kill=False)  # only cancel_on_timeout applies
    hook = FakeDliHook(dli_reading(JobState.RUNNING), service="dli")
    log = inject(op, hook)
    ctx = lifecycle_context(store)
    op._context = ctx
    op._started = DLI_REF
    op._record(ctx, DLI_REF)
    try:
        raise AirflowTaskTimeout()
    except AirflowTaskTimeout:
        op.on_kill()
    assert hook.names() == ["cancel"] and store.values[RECORD_KEY]["reported"] == "CANCELLED"
    assert any("execution_timeout reached: cancelling" in m for m in log.messages("warning"))
    op.on_kill()
    assert hook.names() == ["cancel"]


def test_execution_timeout_with_cancel_on_timeout_false_leaves_the_job(inject):
    op = dli(cancel_on_timeout=False)
    hook = FakeDliHook(service="dli")
    inject(op, hook)
    op._started = DLI_REF
    try:
        raise AirflowTaskTimeout()
    except AirflowTaskTimeout:
        op.on_kill()
    assert hook.calls == []


def test_cancel_on_kill_false_leaves_the_job_running(inject):
    op = cdm(cancel_on_kill=False)
    hook = FakeCdmHook(service="cdm")
    log = inject(op, hook)
    op._started = CDM_REF
    op.on_kill()
    assert hook.calls == [] and any("cancel_on_kill=False" in m for m in log.messages("warning"))


def test_a_re_attached_job_is_cancelled_on_kill(inject):
    """The job a previous try started is this task's job: a kill while re-attached cancels it."""
    store = FakeTaskStateStore()
    submitted_try(store, inject)
    retry = dli()
    polls = {"n": 0}

    def kill_on_second_poll(name, ref):
        if name == "get_status":
            polls["n"] += 1
            if polls["n"] == 2:
                retry.on_kill()

    hook = FakeDliHook(
        dli_reading(JobState.RUNNING),
        dli_reading(JobState.RUNNING),
        dli_reading(JobState.CANCELLED),
        service="dli",
        on_call=kill_on_second_poll,
    )
    inject(retry, hook)
    with pytest.raises(JobFailedError):
        retry.execute(lifecycle_context(store, try_number=2, max_tries=2))
    assert hook.names("cancel", "submit_sql") == ["cancel"]


def test_the_operators_trigger_cancels_on_kill_only_with_cancel_on_kill(inject):
    op = dli(deferrable=True, cancel_on_kill=False)
    inject(op, FakeDliHook(JobState.RUNNING, service="dli"))
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": FakeTI()})
    assert deferred.value.trigger.cancel_on_kill is False


def test_trigger_on_kill_is_bounded_by_the_triggerers_on_kill_timeout(trigger_hook, record_log, monkeypatch):
    class Hanging(FakeHook):
        async def acancel(self, ref):
            self.calls.append(("acancel", ref))
            await asyncio.Event().wait()

    monkeypatch.setattr(trigger_module, "on_kill_budget", lambda: 0.01)
    hook = trigger_hook(Hanging(service="dli"))
    t = trigger("dli", cancel_on_kill=True)
    log = record_log(t)
    with pytest.raises(TimeoutError):
        asyncio.run(t.on_kill())
    assert hook.names() == ["acancel"]
    assert any("no answer within" in m for m in log.messages("error"))


def test_the_on_kill_budget_stays_below_airflows_bound(monkeypatch):
    from airflow_jobstatus.core.compat import conf

    monkeypatch.setattr(conf, "getfloat", lambda *a, **kw: 10.0)
    assert trigger_module.on_kill_budget() == 8.0
    monkeypatch.setattr(conf, "getfloat", lambda *a, **kw: 300.0)
    assert trigger_module.on_kill_budget() == 30.0  # the cancel budget


def test_a_sensor_never_cancels_anything(inject):
    sensor = make_sensor("dli", deferrable=True)
    inject(sensor, FakeHook(JobState.RUNNING, service="dli"))
    assert sensor.start_trigger_args.trigger_kwargs["cancel_on_kill"] is False
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    assert deferred.value.trigger.cancel_on_kill is False
    with pytest.raises(AirflowSkipException):
        make_sensor("dli", deferrable=True, soft_fail=True).resume_execution(
            "__fail__", {"error": TriggerFailureReason.TRIGGER_TIMEOUT}, {}
        )


def test_the_transient_streak_of_a_timeout_cancel_is_retried(inject, sleeps):
    op = dli(timeout=0.001, poll_interval=0.01)
    hook = FakeDliHook(
        dli_reading(JobState.RUNNING), service="dli", cancels=[TransientServiceError("503"), None]
    )
    inject(op, hook)
    with pytest.raises(TimeoutError):
        op.execute(lifecycle_context())
    assert hook.names("cancel") == ["cancel", "cancel"]


def test_operator_base_exposes_the_record_key():
    assert operator_base.RECORD_KEY == RECORD_KEY == "airflow_jobstatus.started_job"


@pytest.mark.parametrize(
    ("reading", "starts"),
    [
        (JobState.RUNNING, False),  # started by a try lost before its record: wait on it
        (JobState.SUCCEEDED, True),  # an earlier run's submission: this retry starts the job
        (JobState.FAILED, True),
    ],
)
def test_a_cdm_retry_without_a_record_waits_on_a_running_job_instead_of_starting_it(
    reading, starts, inject, sleeps
):
    store = FakeTaskStateStore()  # no record: the first try died between its start and its record
    retry = cdm()
    hook = FakeCdmHook(cdm_reading(reading), cdm_reading(JobState.SUCCEEDED), service="cdm")
    log = inject(retry, hook)
    ctx = lifecycle_context(store, try_number=2, max_tries=2)
    retry.execute(ctx)
    assert ("start_job" in hook.names()) is starts
    if not starts:
        assert "submission_id" not in ctx["ti"].xcoms  # not known: not pushed
        assert any("lost between its start and its record" in m for m in log.messages("warning"))


def test_a_first_try_starts_a_cdm_job_even_when_it_runs(inject):
    retry = cdm()
    hook = FakeCdmHook(cdm_reading(JobState.SUCCEEDED), service="cdm")
    inject(retry, hook)
    retry.execute(lifecycle_context(FakeTaskStateStore(), try_number=1, max_tries=2))
    assert hook.names()[0] == "start_job"  # the rule is for retries only: no read before a first start
