"""Sensors over the wire in a real DAG run (dag.test() against the simulator): a few cases per service.

The rules themselves are tested in tests/unit (FakeHook, no network, no dag.test()).
"""

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
    "dataproc_batch": ("airflow_jobstatus.sensors.dataproc_batch", "DataprocBatchStatusSensor"),
    "vertex_pipeline": ("airflow_jobstatus.sensors.vertex_pipeline", "VertexAIPipelineJobStatusSensor"),
}
REGION = "europe-west1"
DEFERRABLE, POKE, BOTH = (True,), (False,), (True, False)


def sensor_kwargs(service: str, job_id: str) -> dict[str, Any]:
    return {
        "dataproc": {"job_id": job_id, "region": REGION},
        "dataflow": {"job_id": job_id, "location": REGION},
        "vertex_ai": {"job_id": job_id, "location": REGION},
        "cdm": {"cluster_id": "sim-cluster", "job_name": job_id},
        "dli": {"job_id": job_id},
        "dataproc_batch": {"batch_id": job_id, "region": REGION},
        "vertex_pipeline": {"pipeline_job_id": job_id, "location": REGION},
    }[service]


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
    returns: dict[str, Any] = field(default_factory=dict)  # expected items of return_value
    modes: tuple[bool, ...] = DEFERRABLE  # deferrable=True / False runs


CASES = [
    # Per service: a success and a failure in deferrable mode (async path, trigger, resume) and one
    # case in poke mode (sync path). Every rule is tested in tests/unit against a FakeHook; these
    # check the wire and real Airflow: parsing, the service's message, XComs, task states.
    Case(
        "dataproc_success",
        "dataproc",
        [{"state": "PENDING", "duration": 0.3}, {"state": "RUNNING", "duration": 0.3}, {"state": "DONE"}],
        "success",
        expect_state="SUCCEEDED",
        modes=BOTH,
    ),
    Case(
        "dataproc_failure_with_details",
        "dataproc",
        [{"state": "RUNNING", "duration": 0.3}, {"state": "ERROR", "details": "Driver exited with code 7"}],
        "failed",
        text="Driver exited with code 7",
    ),
    Case(
        "dataflow_drained_succeeds",
        "dataflow",
        [{"state": "JOB_STATE_DRAINED"}],
        "success",
        expect_state="DRAINED",
        modes=BOTH,
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
        modes=BOTH,
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
        "cdm_success_with_counters",
        "cdm",
        [
            {"state": "BOOTING", "duration": 0.2},
            {"state": "RUNNING", "duration": 0.3, "progress": 50},
            {"state": "SUCCEEDED", "progress": 100, "counters": {"rows_read": 500, "rows_written": 500}},
        ],
        "success",
        expect_state="SUCCEEDED",
        returns={
            "progress": 1.0,
            "native_state": "SUCCEEDED",
            "counters": {"rows_read": 500, "rows_written": 500},
        },
        modes=BOTH,
    ),
    Case(
        "cdm_failure_soft_fail_skips",
        "cdm",
        [{"state": "FAILED", "progress": -1, "error_summary": "Table not found"}],
        "skipped",
        kwargs={"soft_fail": True},
        text="Table not found",
    ),
    Case(
        "dli_success",
        "dli",
        [{"state": "RUNNING", "duration": 0.3, "progress": 0.5}, {"state": "FINISHED", "progress": 1}],
        "success",
        expect_state="SUCCEEDED",
        returns={"progress": 1.0, "native_state": "FINISHED"},
        modes=BOTH,
    ),
    Case(
        "dli_failure_with_message",
        "dli",
        [{"state": "RUNNING", "duration": 0.3}, {"state": "FAILED", "message": "Table dw.orders not found"}],
        "failed",
        text="Table dw.orders not found",
    ),
    # A transient-error burst over each cloud's wire (gRPC status codes; HTTP 503 on signed REST).
    Case(
        "dataproc_unavailable_burst_then_success",
        "dataproc",
        [{"state": "DONE"}],
        "success",
        faults=[{"kind": "grpc_unavailable", "count": 2}],
        min_calls=3,
    ),
    Case(
        "cdm_503_burst_then_success",
        "cdm",
        [{"state": "RUNNING", "duration": 0.3, "progress": 50}, {"state": "SUCCEEDED", "progress": 100}],
        "success",
        faults=[{"kind": "http_503", "count": 3}],
        expect_state="SUCCEEDED",
        min_calls=4,
        modes=POKE,
    ),
    # Dataproc Serverless batches: state_message, approximate usage as counters, every mode.
    Case(
        "batch_success_with_usage",
        "dataproc_batch",
        [
            {"state": "PENDING", "duration": 0.3},
            {"state": "RUNNING", "duration": 0.3},
            {"state": "SUCCEEDED", "approximate_usage": {"milli_dcu_seconds": 3_600_000}},
        ],
        "success",
        expect_state="SUCCEEDED",
        returns={"native_state": "SUCCEEDED", "counters": {"milli_dcu_seconds": 3_600_000}},
        modes=BOTH,
    ),
    Case(
        "batch_success_reschedule",
        "dataproc_batch",
        [{"state": "RUNNING", "duration": 0.5}, {"state": "SUCCEEDED"}],
        "success",
        kwargs={"mode": "reschedule"},
        modes=POKE,
    ),
    Case(
        "batch_failure_with_state_message",
        "dataproc_batch",
        [{"state": "RUNNING", "duration": 0.3}, {"state": "FAILED", "state_message": "Driver exited 3"}],
        "failed",
        text="Driver exited 3",
        modes=BOTH,
    ),
    Case(
        "batch_cancelled_soft_fail_skips",
        "dataproc_batch",
        [{"state": "CANCELLING", "duration": 0.3}, {"state": "CANCELLED", "state_message": "by user"}],
        "skipped",
        kwargs={"soft_fail": True},
        text="by user",
        modes=BOTH,
    ),
    Case(
        "batch_transient_burst_then_success",
        "dataproc_batch",
        [{"state": "RUNNING", "duration": 0.3}, {"state": "SUCCEEDED"}],
        "success",
        faults=[{"kind": "grpc_unavailable", "count": 2}, {"kind": "grpc_resource_exhausted", "count": 1}],
        min_calls=4,
        modes=BOTH,
    ),
    Case(
        "batch_not_found_fails_fast",
        "dataproc_batch",
        [{"state": "RUNNING"}],
        "failed",
        add={"region": "us-east4"},
        text="JobNotFoundError",
        modes=BOTH,
    ),
    Case(
        "batch_timeout_fails",
        "dataproc_batch",
        [{"state": "RUNNING"}],
        "failed",
        kwargs={"timeout": 1},
        text="Timeout",
        modes=POKE,  # dag.test() runs a trigger without its timeout: the deferral timeout is in tests/unit
    ),
    # Vertex AI pipeline jobs: tasks as sub-jobs and progress; CANCELLING can still succeed.
    Case(
        "pipeline_success_with_tasks",
        "vertex_pipeline",
        [
            {"state": "PIPELINE_STATE_PENDING", "duration": 0.3},
            {
                "state": "PIPELINE_STATE_RUNNING",
                "duration": 0.3,
                "task_details": [{"task_name": "train", "state": "RUNNING"}],
            },
            {
                "state": "PIPELINE_STATE_SUCCEEDED",
                "task_details": [
                    {"task_name": "prepare", "state": "SUCCEEDED"},
                    {"task_name": "train", "state": "SUCCEEDED"},
                ],
            },
        ],
        "success",
        expect_state="SUCCEEDED",
        returns={"progress": 1.0, "native_state": "PIPELINE_STATE_SUCCEEDED"},
        modes=BOTH,
    ),
    Case(
        "pipeline_cancelling_then_succeeded",
        "vertex_pipeline",
        # 4 s: the clock starts at add_job; dag.test() on Airflow 3.1 takes seconds to the first read
        [{"state": "PIPELINE_STATE_CANCELLING", "duration": 4.0}, {"state": "PIPELINE_STATE_SUCCEEDED"}],
        "success",
        min_calls=2,
        modes=BOTH,
    ),
    Case(
        "pipeline_failure_with_error",
        "vertex_pipeline",
        [
            {"state": "PIPELINE_STATE_RUNNING", "duration": 0.3},
            {"state": "PIPELINE_STATE_FAILED", "error": "Task train OOM"},
        ],
        "failed",
        text="Task train OOM",
        modes=BOTH,
    ),
    Case(
        "pipeline_paused_fails_fast_when_asked",
        "vertex_pipeline",
        [{"state": "PIPELINE_STATE_PAUSED"}],
        "skipped",
        kwargs={"failure_states": ["FAILED", "CANCELLED", "PAUSED"], "soft_fail": True},
        text="PIPELINE_STATE_PAUSED",
    ),
    Case(
        "pipeline_transient_burst_then_success",
        "vertex_pipeline",
        [{"state": "PIPELINE_STATE_SUCCEEDED"}],
        "success",
        faults=[{"kind": "grpc_deadline_exceeded", "count": 1}, {"kind": "grpc_aborted", "count": 1}],
        min_calls=3,
        modes=BOTH,
    ),
    Case(
        "pipeline_not_found_fails_fast",
        "vertex_pipeline",
        [{"state": "PIPELINE_STATE_RUNNING"}],
        "failed",
        add={"location": "us-east4"},
        text="JobNotFoundError",
    ),
]


MATRIX = [(c, d) for c in CASES for d in c.modes]


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
        for key, expected in case.returns.items():
            actual = result.return_value[key]
            if isinstance(expected, dict):  # only the items named (CDM lists every counter, zeros too)
                actual = {k: actual.get(k) for k in expected}
            assert actual == expected, key
    if case.text:
        assert case.text in out
    calls = sim.calls(case.service)
    if case.min_calls is not None:
        assert calls >= case.min_calls


def test_wrong_credentials_fail_fast_without_leaking_the_secret(sim, monkeypatch, capfd, caplog):
    """A wrong SK gets the simulator's 401: the task fails at once and its log never shows the SK."""
    sim.add_job("dli", "job-auth", [{"state": "RUNNING"}])
    bad = dict(sim.connections()["huaweicloud_default"], password="not-the-secret-key")
    monkeypatch.setenv("AIRFLOW_CONN_BAD_HUAWEI", json.dumps(bad))
    module, cls = SENSORS["dli"]
    kwargs = {"job_id": "job-auth", "huaweicloud_conn_id": "bad_huawei", **FAST, "deferrable": True}
    result = run_operator(module, cls, kwargs, name="auth")
    out = capfd.readouterr().out + caplog.text
    assert result.state == "failed"
    assert "AuthenticationError" in out and "401" in out
    assert "retrying in" not in out  # failed on the first 401, no retry
    assert "not-the-secret-key" not in out
