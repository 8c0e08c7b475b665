"""Sensor scenario table: each sensor in poke and deferrable mode, in a real DAG run, against the simulator."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.dag_harness import run_operator

FAST = {"poke_interval": 0.2, "error_budget": 20.0, "max_backoff": 0.2, "timeout": 30}
SENSORS = {
    "dataproc": ("airflow_jobstatus.sensors.dataproc", "DataprocJobStatusSensor"),
    "dataflow": ("airflow_jobstatus.sensors.dataflow", "DataflowJobStatusSensor"),
    "vertex_ai": ("airflow_jobstatus.sensors.vertex_ai", "VertexAIJobStatusSensor"),
    "cdm": ("airflow_jobstatus.sensors.cdm", "CdmJobStatusSensor"),
    "dli": ("airflow_jobstatus.sensors.dli", "DliJobStatusSensor"),
}
REGION = "europe-west1"


def sensor_kwargs(service: str, job_id: str) -> dict[str, Any]:
    return {
        "dataproc": {"job_id": job_id, "region": REGION},
        "dataflow": {"job_id": job_id, "location": REGION},
        "vertex_ai": {"job_id": job_id, "location": REGION},
        "cdm": {"cluster_id": "sim-cluster", "job_name": job_id},
        "dli": {"job_id": job_id},
    }[service]


def sim_job_id(service: str, job_id: str) -> str:
    return job_id


@dataclass
class Case:
    name: str
    service: str
    timeline: list[dict[str, Any]]
    expect: str  # task state: success | failed | skipped
    kwargs: dict[str, Any] = field(default_factory=dict)
    add: dict[str, Any] = field(default_factory=dict)  # add_job where-keys
    faults: list[dict[str, Any]] = field(default_factory=list)
    expect_state: str | None = None  # normalized state in return_value / failure
    text: str | None = None  # expected in the task's output (failure message)
    min_calls: int | None = None
    max_calls: int | None = None
    # dag.test() runs a trigger inline until its first event and ignores the deferral timeout,
    # so timeouts in deferrable mode are tested through resume_execution below instead.
    poke_only: bool = False


CASES = [
    Case(
        "dataproc_success",
        "dataproc",
        [{"state": "PENDING", "duration": 0.3}, {"state": "RUNNING", "duration": 0.3}, {"state": "DONE"}],
        "success",
        expect_state="SUCCEEDED",
    ),
    Case(
        "dataproc_failure_with_details",
        "dataproc",
        [{"state": "RUNNING", "duration": 0.3}, {"state": "ERROR", "details": "Driver exited with code 7"}],
        "failed",
        text="Driver exited with code 7",
    ),
    Case(
        "dataproc_cancel_pending_fails_only_at_cancelled",
        "dataproc",
        [{"state": "CANCEL_PENDING", "duration": 0.8}, {"state": "CANCELLED"}],
        "failed",
        text="native state CANCELLED",
        min_calls=3,
    ),
    Case(
        "dataproc_attempt_failure_then_done",
        "dataproc",
        [
            {"state": "ATTEMPT_FAILURE", "duration": 0.5, "details": "attempt 1 failed"},
            {"state": "RUNNING", "duration": 0.3},
            {"state": "DONE"},
        ],
        "success",
        expect_state="SUCCEEDED",
    ),
    Case(
        "dataflow_drained_succeeds",
        "dataflow",
        [{"state": "JOB_STATE_DRAINED"}],
        "success",
        expect_state="DRAINED",
    ),
    Case(
        "dataflow_drained_fails_when_only_succeeded_accepted",
        "dataflow",
        [{"state": "JOB_STATE_RUNNING", "duration": 0.3}, {"state": "JOB_STATE_DRAINED"}],
        "failed",
        kwargs={"success_states": ["SUCCEEDED"]},
        text="JOB_STATE_DRAINED",
    ),
    Case(
        "vertex_partially_succeeded_fails_by_default",
        "vertex_ai",
        [{"state": "JOB_STATE_PARTIALLY_SUCCEEDED", "error": "3 of 10 items failed"}],
        "failed",
        text="3 of 10 items failed",
    ),
    Case(
        "vertex_partially_succeeded_accepted",
        "vertex_ai",
        [{"state": "JOB_STATE_RUNNING", "duration": 0.3}, {"state": "JOB_STATE_PARTIALLY_SUCCEEDED"}],
        "success",
        kwargs={"success_states": ["SUCCEEDED", "PARTIALLY_SUCCEEDED"]},
        expect_state="PARTIALLY_SUCCEEDED",
    ),
    Case(
        "cdm_503_burst_then_success",
        "cdm",
        [{"state": "RUNNING", "duration": 0.3, "progress": 50}, {"state": "SUCCEEDED", "progress": 100}],
        "success",
        faults=[{"kind": "http_503", "count": 3}],
        expect_state="SUCCEEDED",
        min_calls=4,
    ),
    Case(
        "dli_429_burst_then_success",
        "dli",
        [{"state": "RUNNING", "duration": 0.3}, {"state": "FINISHED", "progress": 1}],
        "success",
        faults=[{"kind": "http_429", "count": 3}],
        expect_state="SUCCEEDED",
        min_calls=4,
    ),
    Case(
        "dataproc_unavailable_burst_then_success",
        "dataproc",
        [{"state": "DONE"}],
        "success",
        faults=[{"kind": "grpc_unavailable", "count": 2}],
        min_calls=3,
    ),
    Case(
        "dli_unknown_native_value_keeps_waiting",
        "dli",
        [{"state": "REBALANCING", "duration": 0.6}, {"state": "FINISHED", "progress": 1}],
        "success",
        min_calls=2,
    ),
    Case(
        "cdm_failure_soft_fail_skips",
        "cdm",
        [{"state": "FAILED", "progress": -1, "error_summary": "Table not found"}],
        "skipped",
        kwargs={"soft_fail": True},
    ),
    Case(
        "dataflow_timeout",
        "dataflow",
        [{"state": "JOB_STATE_RUNNING"}],
        "failed",
        kwargs={"timeout": 1},
        poke_only=True,
    ),
    Case(
        "dataflow_timeout_soft_fail_skips",
        "dataflow",
        [{"state": "JOB_STATE_RUNNING"}],
        "skipped",
        kwargs={"timeout": 1, "soft_fail": True},
        poke_only=True,
    ),
]


MATRIX = [(c, d) for c in CASES for d in (False, True) if not (d and c.poke_only)]


@pytest.mark.parametrize(
    ("case", "deferrable"), MATRIX, ids=[f"{c.name}-{'deferrable' if d else 'poke'}" for c, d in MATRIX]
)
def test_sensor_scenarios(sim, capfd, case: Case, deferrable: bool):
    job_id = f"{case.name}-{'d' if deferrable else 'p'}"
    sim.add_job(case.service, job_id, case.timeline, **case.add)
    for fault in case.faults:
        sim.inject_fault(fault["kind"], count=fault["count"], service=case.service)
    module, cls = SENSORS[case.service]
    kwargs = {**sensor_kwargs(case.service, job_id), **FAST, **case.kwargs, "deferrable": deferrable}
    result = run_operator(module, cls, kwargs, name=case.name)
    out = capfd.readouterr().out
    assert result.state == case.expect, out[-3000:]
    if case.expect == "success":
        assert result.return_value["state"] == (case.expect_state or "SUCCEEDED")
        assert result.return_value["service"] == case.service
    if case.text:
        assert case.text in out
    calls = sim.calls(case.service)
    if case.min_calls is not None:
        assert calls >= case.min_calls
    if case.max_calls is not None:
        assert calls <= case.max_calls


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_wrong_credentials_fail_fast(sim, monkeypatch, capfd, caplog, deferrable: bool):
    sim.add_job("dli", "job-auth", [{"state": "RUNNING"}])
    bad = dict(sim.connections()["huaweicloud_default"], password="not-the-secret-key")
    monkeypatch.setenv("AIRFLOW_CONN_BAD_HUAWEI", json.dumps(bad))
    module, cls = SENSORS["dli"]
    kwargs = {"job_id": "job-auth", "huaweicloud_conn_id": "bad_huawei", **FAST, "deferrable": deferrable}
    result = run_operator(module, cls, kwargs, name="auth")
    out = capfd.readouterr().out + caplog.text
    assert result.state == "failed"
    assert "AuthenticationError" in out and "401" in out
    assert "retrying in" not in out  # failed on the first 401, no retry
    assert "not-the-secret-key" not in out


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_not_found_fails_at_once(sim, capfd, deferrable: bool):
    module, cls = SENSORS["dataproc"]
    kwargs = {"job_id": "no-such-job", "region": REGION, **FAST, "deferrable": deferrable}
    result = run_operator(module, cls, kwargs, name="notfound")
    out = capfd.readouterr().out
    assert result.state == "failed"
    assert "no-such-job" in out
    assert sim.calls("dataproc") == 1


def test_error_budget_runs_out(sim, capfd):
    sim.add_job("cdm", "job-budget", [{"state": "RUNNING"}])
    sim.inject_fault("http_503", count=1000, service="cdm")
    module, cls = SENSORS["cdm"]
    kwargs = {**sensor_kwargs("cdm", "job-budget"), **FAST, "error_budget": 1.0, "deferrable": False}
    result = run_operator(module, cls, kwargs, name="budget")
    assert result.state == "failed"
    assert "503" in capfd.readouterr().out
    assert 2 <= sim.calls("cdm") < 100  # retried with backoff, then gave up


@pytest.mark.parametrize("soft_fail", [False, True])
def test_deferred_timeout_fails_or_skips_like_poke_mode(sim, soft_fail):
    from airflow.sdk.bases.operator import TriggerFailureReason
    from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException, TaskDeferred

    from airflow_jobstatus.sensors import DataflowJobStatusSensor

    sim.add_job("dataflow", "job-long", [{"state": "JOB_STATE_RUNNING"}])
    sensor = DataflowJobStatusSensor(
        task_id="t", job_id="job-long", location=REGION, timeout=42, deferrable=True, soft_fail=soft_fail
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})  # type: ignore[arg-type]
    assert deferred.value.timeout.total_seconds() == 42  # a deferred sensor cannot wait forever
    expected = AirflowSkipException if soft_fail else AirflowSensorTimeout
    with pytest.raises(expected):
        sensor.resume_execution("__fail__", {"error": TriggerFailureReason.TRIGGER_TIMEOUT}, {})  # type: ignore[arg-type]


def test_deferrable_sensor_does_not_defer_a_finished_job(sim):
    from airflow_jobstatus.sensors import DataprocJobStatusSensor

    sim.add_job("dataproc", "job-done", [{"state": "DONE"}])
    sensor = DataprocJobStatusSensor(task_id="t", job_id="job-done", region=REGION, deferrable=True)
    assert sensor.execute({})["state"] == "SUCCEEDED"  # type: ignore[arg-type]
    assert sim.calls("dataproc", "job-done") == 1


def test_reschedule_mode_ends_in_a_decision(sim):
    """dag.test() runs a reschedule-mode sensor's pokes until it decides; the budget never resets mid-streak."""
    sim.add_job("dataproc", "job-resched", [{"state": "RUNNING", "duration": 0.5}, {"state": "DONE"}])
    sim.inject_fault("grpc_unavailable", count=2, service="dataproc")
    module, cls = SENSORS["dataproc"]
    kwargs = {"job_id": "job-resched", "region": REGION, **FAST, "mode": "reschedule", "deferrable": False}
    result = run_operator(module, cls, kwargs, name="resched")
    assert result.state == "success"
    assert result.return_value["state"] == "SUCCEEDED"
