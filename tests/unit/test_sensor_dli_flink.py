"""DliFlinkJobStatusSensor's integer job ids through the task layer: checked at parse (templates stand
in as a number), started in the triggerer with an int or a rendered template, a bad rendered id sent
back to a worker."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

import pytest
from airflow.sdk import DAG

from airflow_jobstatus.core.exceptions import ConfigurationError
from airflow_jobstatus.core.states import JobState
from airflow_jobstatus.sensors.dli_flink import DliFlinkJobStatusSensor
from airflow_jobstatus.triggers.job_status import JobStatusStartTrigger
from tests.airflow_versions import needs_trigger_rendering
from tests.unit.fakes import FakeHook
from tests.unit.test_triggerer_path import _record_pushes, first_payload


def sensor(**kw: object) -> DliFlinkJobStatusSensor:
    return DliFlinkJobStatusSensor(task_id="up", deferrable=True, poke_interval=3, max_backoff=0.001, **kw)


@pytest.mark.parametrize("job_id", [50320, "50320", "{{ params.flink_job }}", "{{ ti.xcom_pull('submit') }}"])
def test_integer_and_templated_ids_are_accepted_at_parse(job_id: object) -> None:
    assert sensor(job_id=job_id).job_id == job_id


@pytest.mark.parametrize("job_id", ["orders-stream", "-1", 0, "12.5"])
def test_a_non_integer_id_fails_at_parse(job_id: object) -> None:
    with pytest.raises(ConfigurationError, match="positive integer"):
        sensor(job_id=job_id)


def test_an_int_id_starts_in_the_triggerer_and_is_read_as_its_string(
    trigger_hook, sleeps, monkeypatch
) -> None:
    monkeypatch.setattr(JobStatusStartTrigger, "push_xcoms", _record_pushes([]))
    task = sensor(job_id=50320, success_states={"RUNNING"})
    assert task.start_from_trigger is True
    t = JobStatusStartTrigger(**task.start_trigger_args.trigger_kwargs)
    t.task_instance = SimpleNamespace(dag_id="d", task_id="up", run_id="r", map_index=-1)
    hook = trigger_hook(FakeHook(JobState.PENDING, JobState.RUNNING, service="dli_flink", job_id="50320"))
    payload = first_payload(t)
    assert payload["status"] == "success" and payload["job_status"]["state"] == "RUNNING"
    assert {r.job_id for r in hook.refs("aget_status")} == {"50320"}


@needs_trigger_rendering
@pytest.mark.parametrize(("rendered", "ok"), [("7", True), ("not-a-number", False)])
def test_a_template_rendered_in_the_triggerer(
    trigger_hook, sleeps, monkeypatch, rendered: str, ok: bool
) -> None:
    monkeypatch.setattr(JobStatusStartTrigger, "push_xcoms", _record_pushes([]))
    with DAG("flink_rendered", schedule=None, start_date=datetime(2024, 1, 1)):
        task = sensor(job_id="{{ params.flink_job }}", success_states={"RUNNING"})
    t = JobStatusStartTrigger(**task.start_trigger_args.trigger_kwargs)
    t.template_fields = ("job_id",)
    t.render_template_fields({"params": {"flink_job": rendered}})
    hook = trigger_hook(FakeHook(JobState.RUNNING, service="dli_flink", job_id=rendered))
    payload = first_payload(t)
    if ok:
        assert payload["status"] == "success" and [r.job_id for r in hook.refs("aget_status")] == ["7"]
    else:  # an invalid rendered id: the worker starts the task and fails it there, as before
        assert payload["restart_in_worker"] is True and hook.calls == []
