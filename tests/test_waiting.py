"""The shared wait rules: verdicts, warnings once per change, error budget, backoff, history; sensor arguments."""

from __future__ import annotations

import logging

import pytest

from airflow_jobstatus.exceptions import (
    AuthenticationError,
    ConfigurationError,
    JobNotFoundError,
    TransientServiceError,
)
from airflow_jobstatus.states import JobState, JobStatus
from airflow_jobstatus.waiting import HISTORY_LIMIT, JobWatch, RetryPolicy


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def status(state: JobState, native: str = "X", **kw) -> JobStatus:
    return JobStatus("dataproc", "j1", state, native, **kw)


def test_verdicts_follow_the_sets():
    watch = JobWatch()
    assert watch.verdict(status(JobState.RUNNING)) == "wait"
    assert watch.verdict(status(JobState.CANCELLING)) == "wait"
    assert watch.verdict(status(JobState.SUCCEEDED)) == "success"
    assert watch.verdict(status(JobState.DRAINED)) == "success"
    assert watch.verdict(status(JobState.PARTIALLY_SUCCEEDED)) == "failure"
    fail_fast = JobWatch(failure_states=["FAILED", "PAUSED"])
    assert fail_fast.verdict(status(JobState.PAUSED)) == "failure"
    assert fail_fast.verdict(status(JobState.CANCELLED)) == "wait"  # the user's set replaces the default


def test_stuck_states_warn_once_per_change(caplog):
    watch = JobWatch()
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            watch.verdict(status(JobState.RETRYING, "ATTEMPT_FAILURE", message="attempt 1 died"))
        watch.verdict(status(JobState.RUNNING, "RUNNING"))
        watch.verdict(status(JobState.RUNNING, "RUNNING", substate="STALE_STATUS"))
        watch.verdict(status(JobState.RUNNING, "RUNNING", substate="STALE_STATUS"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "attempt 1 died" in warnings[0] and "STALE_STATUS" in warnings[1]
    progress_lines = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(progress_lines) == 6  # one progress line per poll


def test_transient_errors_back_off_and_budget_runs_out():
    clock = FakeClock()
    watch = JobWatch(policy=RetryPolicy(error_budget=10, initial_backoff=1, max_backoff=4), clock=clock)
    err = TransientServiceError("503", service="cdm")
    delays = []
    for _ in range(4):
        delays.append(watch.on_error(err))
        clock.now += 2
    assert all(0 < d <= 4 for d in delays)
    assert delays[-1] >= 2  # capped exponential: attempt 4 draws from [2, 4]
    clock.now += 10
    with pytest.raises(TransientServiceError):
        watch.on_error(err)


def test_success_resets_the_streak():
    clock = FakeClock()
    watch = JobWatch(policy=RetryPolicy(error_budget=5, max_backoff=0.01), clock=clock)
    calls = iter([TransientServiceError("x"), TransientServiceError("x"), status(JobState.RUNNING)])

    def fetch() -> JobStatus:
        item = next(calls)
        clock.now += 2
        if isinstance(item, Exception):
            raise item
        return item

    assert watch.read(fetch, sleep=lambda _: None).state is JobState.RUNNING
    assert watch.errors == 0
    clock.now += 100  # a later error starts a fresh streak
    assert watch.on_error(TransientServiceError("y")) >= 0


def test_final_errors_are_not_retried_and_not_found_grace():
    clock = FakeClock()
    watch = JobWatch(policy=RetryPolicy(not_found_grace=5), clock=clock)
    with pytest.raises(AuthenticationError):
        watch.on_error(AuthenticationError("401"))
    assert watch.on_error(JobNotFoundError("404")) >= 0  # inside the grace
    clock.now += 6
    with pytest.raises(JobNotFoundError):
        watch.on_error(JobNotFoundError("404"))
    with pytest.raises(ValueError):
        watch.on_error(ValueError("a bug is not retried"))


def test_history_is_compact_and_bounded_and_keeps_last_sub_jobs():
    watch = JobWatch()
    sub = [{"id": 1, "status": "RUNNING", "num_tasks": 10, "num_completed_tasks": 0}]
    for i in range(HISTORY_LIMIT * 2):
        watch.verdict(status(JobState.RUNNING, progress=i / 1000, sub_jobs=sub))
        watch.verdict(status(JobState.RUNNING, progress=i / 1000, sub_jobs=sub))  # unchanged: no entry
    watch.verdict(status(JobState.SUCCEEDED, progress=1.0))
    snap = watch.snapshot()
    assert len(snap["progress_history"]) == HISTORY_LIMIT
    assert snap["progress_history"][-1]["state"] == "SUCCEEDED"
    assert snap["last_sub_jobs"] == sub  # kept although the final status lists none


def test_retry_policy_rejects_negative_values():
    with pytest.raises(ValueError, match="error_budget"):
        RetryPolicy(error_budget=-1)


def test_sensor_arguments_are_validated_at_construction():
    from airflow_jobstatus.sensors import DataprocJobStatusSensor, DliJobStatusSensor

    with pytest.raises(ValueError, match="Valid states"):
        DataprocJobStatusSensor(task_id="a", job_id="j", region="r", success_states=["DONE"])
    with pytest.raises(ValueError, match="both"):
        DataprocJobStatusSensor(
            task_id="b", job_id="j", region="r", success_states=["SUCCEEDED"], failure_states=["SUCCEEDED"]
        )
    with pytest.raises(ConfigurationError, match="job_id"):
        DataprocJobStatusSensor(task_id="c", job_id=" ", region="r")
    with pytest.raises(ConfigurationError, match="sql, spark"):
        DliJobStatusSensor(task_id="d", job_id="j", job_type="flink")
    sensor = DliJobStatusSensor(task_id="e", job_id="{{ ti.xcom_pull('x') }}", deferrable=True)
    assert sensor.failure_states == ["CANCELLED", "EXPIRED", "FAILED", "PARTIALLY_SUCCEEDED"]
    assert "job_id" in sensor.template_fields


def test_trigger_serializes_and_rebuilds():
    from airflow_jobstatus.sensors import CdmJobStatusSensor
    from airflow_jobstatus.triggers.job_status import JobStatusTrigger

    sensor = CdmJobStatusSensor(task_id="t", cluster_id="c1", job_name="load", poke_interval=7)
    trigger = sensor.make_trigger(sensor.poke_interval)
    path, kwargs = trigger.serialize()
    assert path == "airflow_jobstatus.triggers.job_status.JobStatusTrigger"
    rebuilt = JobStatusTrigger(**kwargs)
    assert rebuilt.serialize() == (path, kwargs)
    assert kwargs["job_ref"] == {"cluster_id": "c1", "job_name": "load"}
    assert kwargs["poll_interval"] == 7


def test_sensor_accepts_an_xcom_arg_as_job_id():
    """An upstream task's output is resolved at run time, not stringified at parse time."""
    from datetime import datetime

    from airflow.sdk import DAG, task

    from airflow_jobstatus.sensors import DataprocJobStatusSensor

    with DAG("xcomarg_job_id", schedule=None, start_date=datetime(2024, 1, 1)):

        @task
        def submit() -> str:
            return "job-1"

        submitted = submit()
        sensor = DataprocJobStatusSensor(task_id="wait", job_id=submitted, region="r")
    assert not isinstance(sensor.job_id, str)
    assert sensor.upstream_task_ids == {"submit"}


def test_console_links_are_built_from_the_operators_fields():
    from airflow_jobstatus.links import CdmJobLink, DataflowJobLink, DataprocJobLink, VertexAIJobLink
    from airflow_jobstatus.sensors import DataprocJobStatusSensor, VertexAIJobStatusSensor

    sensor = DataprocJobStatusSensor(task_id="a", job_id="j-1", region="europe-west1", project_id="p")
    url = DataprocJobLink().get_link(sensor, ti_key=None)  # type: ignore[arg-type]
    assert url == "https://console.cloud.google.com/dataproc/jobs/j-1?region=europe-west1&project=p"
    vertex = VertexAIJobStatusSensor(
        task_id="b", job_id="42", location="us-central1", job_type="batch_prediction_job"
    )
    assert (
        VertexAIJobLink()
        .get_link(vertex, ti_key=None)
        .endswith(  # type: ignore[arg-type]
            "/vertex-ai/locations/us-central1/batch-predictions/42"
        )
    )
    assert DataflowJobLink.url({"job_id": "d", "location": "l", "project": None}).endswith(
        "/dataflow/jobs/l/d"
    )
    assert CdmJobLink.url({"cluster_id": "c", "job_name": "n"}) == ""  # region unknown: no half-built link
    assert "clusterDetail/c/" in CdmJobLink.url({"region": "cn-north-4", "cluster_id": "c", "job_name": "n"})
