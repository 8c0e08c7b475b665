"""Progress in the task state store and the wait's metrics, in real DAG runs (dag.test()) against the simulator.

The task state store is Airflow's own (dag.test()'s in-process supervisor writes it to the metadata DB,
read back here as the REST API reads it); metrics go through Airflow's ``Stats`` into a recording
backend installed with ``Stats.initialize`` (tests/recording_stats.py), as Airflow's processes do.
"""

from __future__ import annotations

import json
from typing import Any

from airflow_jobstatus.tasks.progress import PROGRESS_KEY
from airflow_jobstatus.wait import metrics
from tests.airflow_versions import needs_progress_store
from tests.dag_harness import RunResult, run_operator
from tests.recording_stats import recording_stats

CDM = ("airflow_jobstatus.sensors.cdm", "CdmJobStatusSensor")
DLI = ("airflow_jobstatus.sensors.dli", "DliJobStatusSensor")
FAST = {"poke_interval": 0.2, "max_backoff": 0.2, "error_budget": 20.0}


def stored_progress(result: RunResult, dag_prefix: str) -> dict[str, Any]:
    """The task's progress key as stored (what ``GET .../taskInstances/wait/state-store/<key>`` returns)."""
    from airflow.models.task_state_store import TaskStateStoreModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(TaskStateStoreModel)
            .filter(TaskStateStoreModel.dag_id.startswith(dag_prefix))
            .filter_by(run_id=result.run_id, task_id="wait", key=PROGRESS_KEY)
            .one()
        )
        return json.loads(row.value)


def tag(**tags: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(tags.items()))


@needs_progress_store
def test_a_running_cdm_job_s_progress_and_counters_are_in_the_task_state_store(sim):
    """Poke mode: the sensor times out mid-job; the key holds the last poll's state, progress, counters."""
    sim.add_job(
        "cdm",
        "prog-run",
        [{"state": "RUNNING", "progress": [0, 100], "duration": 300, "counters": {"rows_read": 1234}}],
    )
    result = run_operator(
        *CDM,
        {"cluster_id": "sim-cluster", "job_name": "prog-run", **FAST, "timeout": 1.5},
        name="progress_cdm",
    )
    assert result.state == "failed"  # the sensor's timeout
    value = stored_progress(result, "progress_cdm")
    assert value["service"] == "cdm" and value["job_id"] == "sim-cluster/prog-run"
    assert value["state"] == "RUNNING" and value["native_state"] == "RUNNING"
    assert 0 < value["progress"] < 0.5  # a poll's reading mid-job, not the end
    assert value["counters"]["rows_read"] == 1234
    assert value["updated_at"].endswith("Z")


@needs_progress_store
def test_a_deferred_dli_wait_writes_the_final_progress_when_it_resumes(sim):
    """Deferrable: the triggerer cannot write the store; the worker writes the event's status at resume."""
    sim.add_job(
        "dli",
        "prog-dli",
        [{"state": "RUNNING", "duration": 0.6, "progress": [0.1, 0.9]}, {"state": "FINISHED", "progress": 1}],
    )
    result = run_operator(*DLI, {"job_id": "prog-dli", **FAST, "deferrable": True}, name="progress_dli")
    assert result.state == "success"
    value = stored_progress(result, "progress_dli")
    assert (value["state"], value["native_state"], value["progress"]) == ("SUCCEEDED", "FINISHED", 1.0)


def test_metrics_of_a_wait_through_a_transient_fault(sim):
    sim.add_job(
        "cdm",
        "metrics-ok",
        [{"state": "RUNNING", "duration": 0.4, "progress": 50}, {"state": "SUCCEEDED", "progress": 100}],
    )
    sim.inject_fault("http_503", count=2, service="cdm", job_id="sim-cluster/metrics-ok")
    with recording_stats() as stats:
        result = run_operator(
            *CDM, {"cluster_id": "sim-cluster", "job_name": "metrics-ok", **FAST}, name="metrics_ok"
        )
    assert result.state == "success"
    polls = stats.counts(metrics.POLL)
    assert polls[tag(service="cdm", outcome="error")] == 2
    assert polls[tag(service="cdm", outcome="success")] == 1
    assert stats.counts(metrics.TRANSIENT_ERROR) == {tag(service="cdm", kind="transient"): 2}
    assert stats.counts("jobstatus.transient_error.cdm.transient") == {(): 2}  # the untagged name
    assert stats.counts(metrics.ERROR) == {}
    (duration,) = stats.timings(metrics.WAIT_DURATION)
    assert (
        duration.tags == {"service": "cdm", "outcome": "success"} and 0.2 <= duration.value < 120
    )  # seconds; generous: a unit slip or a hang only
    # CDM dates the end (last-update-date): the latency runs from it to the read that saw it (the
    # simulator's clock starts at add_job, so the job may end before or during the DAG run's wait).
    (latency,) = stats.timings(metrics.DETECTION_LATENCY)
    assert latency.tags == {"service": "cdm", "outcome": "success"} and 0 <= latency.value < 120


def test_metrics_of_a_failed_job_and_of_a_final_error(sim):
    sim.add_job("dli", "metrics-bad", [{"state": "RUNNING", "duration": 0.3}, {"state": "FAILED"}])
    with recording_stats() as stats:
        failed = run_operator(*DLI, {"job_id": "metrics-bad", **FAST, "deferrable": True}, name="metrics_bad")
        missing = run_operator(*DLI, {"job_id": "metrics-none", **FAST}, name="metrics_missing")
    assert failed.state == "failed" and missing.state == "failed"
    polls = stats.counts(metrics.POLL)
    assert polls[tag(service="dli", outcome="failure")] == 1  # the triggerer's read that saw the end
    assert polls[tag(service="dli", outcome="error")] == 1  # the not-found read
    assert stats.counts(metrics.ERROR) == {tag(service="dli", kind="not_found"): 1}
    outcomes = sorted(m.tags["outcome"] for m in stats.timings(metrics.WAIT_DURATION))
    assert outcomes == ["error", "failure"]
