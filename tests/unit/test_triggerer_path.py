"""The default path through the triggerer (issue 21): which templates it renders, a bounded render,
the console link pushed from there, and the arguments rejected or warned about when the DAG is parsed."""

from __future__ import annotations

import asyncio
import warnings
from types import SimpleNamespace

import pytest
from airflow.sdk import DAG
from airflow.sdk.execution_time import task_runner

from airflow_jobstatus.core.compat import TaskDeferred
from airflow_jobstatus.core.exceptions import ConfigurationError
from airflow_jobstatus.core.states import JobState
from airflow_jobstatus.core.templating import not_renderable_in_triggerer
from airflow_jobstatus.links import link_for
from airflow_jobstatus.sensors.dataproc import DataprocJobStatusSensor
from airflow_jobstatus.sensors.dli import DliJobStatusSensor
from airflow_jobstatus.services import SERVICES
from airflow_jobstatus.triggers.job_status import JobStatusStartTrigger
from tests.airflow_versions import needs_trigger_rendering
from tests.unit.fakes import FakeHook, make_sensor


def first_payload(t) -> dict:
    async def collect():
        async for event in t.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(collect())


def start_trigger(job_id: str) -> JobStatusStartTrigger:
    t = JobStatusStartTrigger(
        service="dli",
        ref_fields=["job_id", "job_type"],
        conn_field="huaweicloud_conn_id",
        job_id=job_id,
        job_type="sql",
        huaweicloud_conn_id="huaweicloud_default",
    )
    t.template_fields = ("job_id",)  # what Airflow keeps (the task's fields among the kwargs)
    return t


# -- which templates start in the triggerer ---------------------------------------------------------


@pytest.mark.parametrize(
    "job_id",
    [
        "{{ ti.xcom_pull(task_ids='submit_only', key='job_id') }}",  # the example that hung
        "{{ ti.xcom_pull('submit') }}",  # the README's first snippet
        "{{ task_instance.xcom_pull('submit') }}",
        "{{ var.value.nightly_job }}",
        "{{ prev_start_date_success }}",
        "{{ unknown_name }}",
    ],
)
def test_templates_that_ask_the_supervisor_start_on_a_worker(job_id):
    with DAG("d", schedule=None):
        sensor = DliJobStatusSensor(task_id="w", job_id=job_id, deferrable=True)
    assert sensor.start_from_trigger is False and sensor.start_trigger_args is None
    assert "only a worker renders" in sensor.why_not_start_from_trigger()


@pytest.mark.parametrize(
    "job_id",
    [
        "{{ params.job }}",
        "{{ dag_run.conf['job'] }}",
        "job-{{ ds_nodash }}-{{ run_id | replace(':', '_') }}",
        "{% set j = params.job %}{{ j }}",
        "{{ macros.ds_add(ds, 1) }}",
    ],
)
@needs_trigger_rendering
def test_templates_of_dag_run_values_start_in_the_triggerer(job_id):
    with DAG("d", schedule=None):
        sensor = DliJobStatusSensor(task_id="w", job_id=job_id, deferrable=True)
    assert sensor.why_not_start_from_trigger() is None and sensor.start_from_trigger is True


def test_a_template_jinja_cannot_parse_starts_on_a_worker():
    assert "not a valid template" in not_renderable_in_triggerer({"job_id": "{{ oops"})


# -- the render in the triggerer is bounded -----------------------------------------------------------


@needs_trigger_rendering
def test_a_render_that_gets_no_answer_restarts_the_sensor_on_a_worker(trigger_hook, monkeypatch):
    """As ``GetXComSequenceSlice`` on Airflow 3.3: a sync SDK call whose answer never comes."""
    import greenback

    def ask() -> str:
        return greenback.await_(asyncio.get_running_loop().create_future())  # never resolved

    monkeypatch.setattr(JobStatusStartTrigger, "render_timeout", 0.2)
    t = start_trigger("{{ ask() }}")
    t.render_template_fields({"ask": ask})  # what Airflow calls before run(): nothing rendered yet
    assert t.job_id == "{{ ask() }}"
    hook = trigger_hook(FakeHook(JobState.SUCCEEDED, service="dli"))
    payload = first_payload(t)
    assert payload["status"] == "error" and payload["restart_in_worker"] is True
    assert "no answer within 0.2 s" in payload["message"] and hook.calls == []


@needs_trigger_rendering
def test_a_render_that_fails_restarts_the_sensor_on_a_worker(trigger_hook):
    def ask() -> str:
        raise RuntimeError("Unable to decode message")

    t = start_trigger("{{ ask() }}")
    t.render_template_fields({"ask": ask})
    hook = trigger_hook(FakeHook(JobState.SUCCEEDED, service="dli"))
    payload = first_payload(t)
    assert payload["restart_in_worker"] is True and "Unable to decode message" in payload["message"]
    assert hook.calls == []


@needs_trigger_rendering
def test_a_render_that_answers_waits_on_the_rendered_job(trigger_hook, sleeps, monkeypatch):
    monkeypatch.setattr(JobStatusStartTrigger, "push_xcoms", _record_pushes([]))
    t = start_trigger("{{ params.job }}")
    t.render_template_fields({"params": {"job": "job-9"}})
    hook = trigger_hook(FakeHook(JobState.SUCCEEDED, service="dli"))
    payload = first_payload(t)
    assert payload["status"] == "success" and [r.job_id for r in hook.refs()] == ["job-9"]


# -- the console link of a task that starts and ends in the triggerer -------------------------------


def _record_pushes(into: list):
    async def push(self, xcoms, *, to_db=False):
        into.append((dict(xcoms), to_db))

    return push


@pytest.mark.parametrize("service", SERVICES)
def test_the_start_trigger_pushes_the_console_link_once(service, trigger_hook, sleeps, monkeypatch):
    pushes: list = []
    monkeypatch.setattr(JobStatusStartTrigger, "push_xcoms", _record_pushes(pushes))
    sensor = make_sensor(service, deferrable=True, poke_interval=3)
    t = JobStatusStartTrigger(**sensor.start_trigger_args.trigger_kwargs)
    t.task_instance = SimpleNamespace(dag_id="d", task_id="w", run_id="r", map_index=-1)
    trigger_hook(
        FakeHook(JobState.RUNNING, JobState.RUNNING, JobState.SUCCEEDED, service=service, scope="p-1")
    )
    first_payload(t)
    link = link_for(service)
    links = [(x, db) for x, db in pushes if link.xcom_key in x]
    assert len(links) == 1 and links[0][1] is True  # once, straight to the DB as a worker's finalize does
    url = links[0][0][link.xcom_key]
    assert url.startswith("https://") and sensor.job_ref().display_id.split("/")[-1] in url


def test_the_link_goes_through_the_supervisor_as_a_raw_set_xcom(monkeypatch):
    sent: list = []

    class Comms:
        async def asend(self, message):
            sent.append(message)

    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", Comms(), raising=False)
    t = start_trigger("job-1")
    t.task_instance = SimpleNamespace(dag_id="d", task_id="w", run_id="r", map_index=None)
    asyncio.run(t.push_xcoms({"_link_DliJobLink": "https://console/x"}, to_db=True))
    [message] = sent
    assert (message.type, message.key, message.value, message.map_index) == (
        "SetXCom",
        "_link_DliJobLink",
        "https://console/x",  # not through the XCom backend: the links view reads the DB value
        -1,
    )


# -- expected errors in the triggerer: one line -------------------------------------------------------


def test_an_undefined_connection_is_one_error_line_in_the_triggerer(trigger_hook, record_log):
    t = start_trigger("job-1")
    log = record_log(t)
    trigger_hook(FakeHook(ConfigurationError("Connection 'nope' is not defined"), service="dli"))
    payload = first_payload(t)
    assert payload["status"] == "error" and "not defined" in payload["message"]
    assert [m for m in log.messages("error")] == [
        "Cannot wait on dli job {'job_id': 'job-1', 'job_type': 'sql'}: Connection 'nope' is not defined"
    ]
    assert not any("Unexpected" in m for m in log.messages())


# -- arguments checked when the DAG is parsed ---------------------------------------------------------


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_a_zero_poke_interval_is_rejected_in_every_mode(mode):
    extra = {"deferrable": True} if mode == "deferrable" else {"mode": mode, "deferrable": False}
    with pytest.raises(ValueError, match=r"poke_interval must be a finite number of seconds > 0, got 0"):
        make_sensor("dataproc", poke_interval=0, **extra)


def test_reschedule_with_deferrable_warns():
    with pytest.warns(UserWarning, match="mode='reschedule' has no effect with deferrable=True"):
        make_sensor("dataproc", mode="reschedule", deferrable=True)


def test_a_timeout_shorter_than_the_interval_warns():
    with pytest.warns(UserWarning, match=r"timeout \(30 s\) is shorter than poke_interval \(60 s\)"):
        make_sensor("dataproc", timeout=30, poke_interval=60)


def test_ordinary_arguments_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_sensor("dataproc", deferrable=True, timeout=600, poke_interval=30)


def test_another_providers_argument_name_is_named_with_ours():
    with pytest.raises(
        TypeError,
        match=r"unknown argument\(s\) 'dataproc_job_id' \(this class calls it 'job_id'\); missing 'job_id'",
    ):
        DataprocJobStatusSensor(task_id="w", dataproc_job_id="j-1", region="europe-west1")


def test_an_unknown_argument_without_a_close_name_is_still_named():
    with pytest.raises(TypeError, match=r"unknown argument\(s\) 'zzz'; missing 'region'"):
        DataprocJobStatusSensor(task_id="w", job_id="j-1", zzz=1)


# -- deferral says what the triggerer waits for ------------------------------------------------------


def test_deferring_logs_what_the_triggerer_waits_for(inject):
    sensor = make_sensor("dataproc", deferrable=True, poke_interval=7, timeout=42)
    log = inject(sensor, FakeHook(JobState.RUNNING, service="dataproc"))
    with pytest.raises(TaskDeferred):
        sensor.execute({})
    [line] = [m for m in log.messages("info") if m.startswith("Deferring")]
    assert "every 7 s (timeout 42 s)" in line and "running triggerer" in line


def test_on_an_airflow_whose_triggerer_does_not_render_a_templated_sensor_starts_on_a_worker(monkeypatch):
    """Airflow < 3.3 (no ``BaseTrigger.render_template_fields``): the same sensor starts on a worker,
    where its fields are rendered; a sensor with plain values still starts in the triggerer."""
    from airflow_jobstatus.core import compat

    monkeypatch.setattr(compat, "trigger_renders_templates", lambda: False)
    with DAG("d", schedule=None):
        templated = DliJobStatusSensor(task_id="w", job_id="{{ params.job }}", deferrable=True)
        plain = DliJobStatusSensor(task_id="p", job_id="job-1", deferrable=True, start_from_trigger=True)
    assert "Airflow < 3.3" in templated.why_not_start_from_trigger()
    assert templated.start_from_trigger_args() is None
    assert plain.why_not_start_from_trigger() is None
