"""The simulator core alone: timelines, interpolation, validation, faults, call records, scenarios."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import airflow_jobstatus.simulator as simulator_package
from airflow_jobstatus.simulator import DEFAULT_SCENARIOS, SimulatorCore
from airflow_jobstatus.simulator.faults import FAULT_KINDS
from airflow_jobstatus.simulator.timeline import validate_timeline
from airflow_jobstatus.simulator.vocabulary import GOOGLE_STATES

THREE_PHASES = [
    {"state": "PENDING", "duration": 1},
    {"state": "RUNNING", "duration": 2, "substate": "QUEUED"},
    {"state": "DONE"},
]


@pytest.fixture
def core() -> SimulatorCore:
    return SimulatorCore("ak", "sk", "proj")


def test_phase_lookup_follows_the_timeline(core: SimulatorCore) -> None:
    job = core.add_job("dataproc", "j1", THREE_PHASES)
    t0 = job.created_at
    assert job.phase_at(t0 + 0.5)[0]["state"] == "PENDING"
    phase, elapsed, duration = job.phase_at(t0 + 1.5)
    assert (phase["state"], round(elapsed, 6), duration) == ("RUNNING", 0.5, 2.0)
    phase, elapsed, duration = job.phase_at(t0 + 100)
    assert phase["state"] == "DONE" and duration is None and elapsed == pytest.approx(97)
    assert not job.is_terminal(t0 + 2.9) and job.is_terminal(t0 + 3.1)


def test_snapshot_interpolates_progress_counters_and_subjob_counts(core: SimulatorCore) -> None:
    timeline = [
        {
            "state": "RUNNING",
            "duration": 4,
            "progress": [0, 100],
            "counters": {"rows_read": [0, 1000], "files_read": 3},
            "sub_jobs": [{"id": 0, "stage_ids": [0, 1], "num_completed_tasks": [0, 10]}],
        },
        {"state": "SUCCEEDED", "progress": [50, 100]},
    ]
    job = core.add_job("cdm", "copy", timeline, cluster_id="c1")
    snap = job.snapshot(job.created_at + 1)
    assert snap["state"] == "RUNNING"
    assert snap["progress"] == pytest.approx(25)
    assert snap["counters"] == {"rows_read": 250, "files_read": 3}
    assert snap["sub_jobs"] == [{"id": 0, "stage_ids": [0, 1], "num_completed_tasks": 2}]
    assert "duration" not in snap and snap["where"] == {"cluster_id": "c1"}
    assert job.snapshot(job.created_at + 10)["progress"] == 100  # last phase shows "to"


def test_where_defaults_and_mismatch(core: SimulatorCore) -> None:
    job = core.add_job("vertex_ai", "123", [{"state": "JOB_STATE_RUNNING"}])
    assert job.where == {"project_id": "proj", "location": "europe-west1", "job_type": "custom_job"}
    assert core.get_job("vertex_ai", "123") is job
    assert core.get_job("vertex_ai", "123", location="europe-west1", project_id="proj") is job
    assert core.get_job("vertex_ai", "123", location="us-central1") is None
    assert core.get_job("vertex_ai", "123", job_type="batch_prediction_job") is None
    assert core.get_job("vertex_ai", "nope") is None
    with pytest.raises(ValueError, match="unknown where-key"):
        core.get_job("dataproc", "123", location="x")


@pytest.mark.parametrize(
    ("service", "timeline", "match"),
    [
        ("nope", [{"state": "X"}], "Unknown service 'nope'"),
        ("dataproc", [], "non-empty list"),
        ("dataproc", [{"duration": 1}, {"state": "DONE"}], "missing 'state'"),
        ("dataproc", [{"state": "PENDING"}, {"state": "DONE"}], "positive 'duration'"),
        ("dataproc", [{"state": "PENDING", "duration": 0}, {"state": "DONE"}], "positive 'duration'"),
        ("dataproc", [{"state": "RUNING"}], "unknown dataproc state 'RUNING'"),
        ("dataproc", [{"state": "RUNNING", "substate": "BAD"}], "unknown dataproc substate"),
        ("cdm", [{"state": "RUNNING", "progress": "half"}], "'progress' must be"),
        ("dataflow", ["JOB_STATE_DONE"], "must be a dict"),
    ],
)
def test_invalid_timelines_are_rejected(
    core: SimulatorCore, service: str, timeline: list, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        core.add_job(service, "j", timeline)


def test_other_validation_errors(core: SimulatorCore) -> None:
    with pytest.raises(ValueError, match="job_id"):
        core.add_job("dataproc", " ", [{"state": "DONE"}])
    with pytest.raises(ValueError, match="unknown job_type 'pyspark'"):
        core.add_job("dli", "j", [{"state": "RUNNING"}], job_type="pyspark")
    with pytest.raises(ValueError, match="Unknown fault kind"):
        core.inject_fault("http_418")
    with pytest.raises(ValueError, match="count"):
        core.inject_fault("http_500", count=0)
    # Huawei states are free strings, so unknown-state handling can be exercised.
    assert core.add_job("cdm", "j", [{"state": "SOMETHING_NEW"}]).state_at() == "SOMETHING_NEW"


def test_google_state_lists_match_the_sdks() -> None:
    from google.cloud.dataflow_v1beta3.types import jobs as dataflow_jobs
    from google.cloud.dataproc_v1.types import jobs as dataproc_jobs

    assert {s.name for s in dataproc_jobs.JobStatus.State} == GOOGLE_STATES["dataproc"]
    assert {s.name for s in dataflow_jobs.JobState} == GOOGLE_STATES["dataflow"]


def test_faults_are_consumed_by_count_and_matched_by_protocol_and_target(core: SimulatorCore) -> None:
    core.inject_fault("http_503", count=2, service="cdm", job_id="sim-cluster/job-a")
    core.inject_fault("grpc_unavailable", service="dataproc")
    core.inject_fault("latency", seconds=0.2)
    assert core.take_fault("cdm", "sim-cluster/job-a", "grpc") is not None  # the global latency one
    assert core.take_fault("cdm", "sim-cluster/job-b", "http") is None
    fault = core.take_fault("cdm", "job-a", "http")  # a bare CDM job name matches cluster/name
    assert fault is not None and fault.kind == "http_503" and fault.http_status == 503
    assert core.take_fault("cdm", "sim-cluster/job-a", "http") is not None
    assert core.take_fault("cdm", "sim-cluster/job-a", "http") is None
    assert core.take_fault("dataproc", "x", "http") is None  # grpc_* never applies to REST
    grpc_fault = core.take_fault("dataproc", None, "grpc")
    assert grpc_fault is not None and grpc_fault.kind == "grpc_unavailable"
    assert core.pending_faults() == []


def test_a_fault_for_one_method_leaves_the_service_s_other_calls_alone(core: SimulatorCore) -> None:
    """A submit's held answer is not taken by a watcher's list call of the same service."""
    core.inject_fault("hold_answer", count=1, service="dli", method="CreateSqlJob")
    assert core.take_fault("dli", None, "http", "ListSqlJobs") is None
    fault = core.take_fault("dli", None, "http", "CreateSqlJob")
    assert fault is not None and fault.kind == "hold_answer"
    assert core.pending_faults() == []
    with pytest.raises(ValueError, match="method must be"):
        core.inject_fault("http_503", service="dli", method="")


def test_latency_fault_defaults_and_seconds(core: SimulatorCore) -> None:
    core.inject_fault("latency", seconds=0.5, service="dli")
    core.inject_fault("latency", service="dli")
    first, second = core.take_fault("dli", "x", "http"), core.take_fault("dli", "x", "http")
    assert first is not None and first.seconds == 0.5
    assert second is not None and second.seconds == 1.0


def test_call_records(core: SimulatorCore) -> None:
    core.record_call("dataproc", "j1", "GetJob", detail={"a": 1}, headers={"h": "v"})
    core.record_call("dataproc", "j1", "CancelJob")
    core.record_call("dataproc", "j2", "GetJob")
    core.record_call("cdm", "c1/job-a", "show_job_status")
    assert core.calls("dataproc", "j1") == 2 and core.calls("dataproc") == 3
    assert core.calls("cdm", "job-a") == 1 and core.calls("cdm", "c1/job-a") == 1
    assert [r["method"] for r in core.requests("dataproc", "j1")] == ["GetJob", "CancelJob"]
    last = core.last_request("dataproc", "j1")
    assert last is not None and last["method"] == "CancelJob"
    assert core.last_request("dataproc", "zzz") is None
    assert core.stats()["calls"]["dataproc"] == 3
    core.reset()
    assert core.calls("dataproc") == 0 and core.stats()["total_calls"] == 0


def test_create_job_uses_default_timeline_and_cdm_keeps_submissions(core: SimulatorCore) -> None:
    core.set_default_timeline("cdm", [{"state": "RUNNING", "duration": 1}, {"state": "SUCCEEDED"}])
    first = core.create_job("cdm", "job-a")
    second = core.create_job("cdm", "job-a")
    assert first.state_at() == "RUNNING" and first.where == {"cluster_id": "sim-cluster"}
    subs = core.cdm_submissions("job-a")
    assert subs == [first, second]
    assert second.submission_id is not None and first.submission_id is not None
    assert second.submission_id > first.submission_id
    assert core.get_job("cdm", "job-a") is second
    assert core.cdm_submissions("job-a", cluster_id="other") is None
    core.define_cdm_job("never-run")
    assert core.cdm_submissions("never-run") == []
    dli = core.create_job("dli")
    assert dli.state_at() == "LAUNCHING" and len(dli.job_id) == 36
    spark = core.create_job("dli", job_type="spark")
    assert spark.state_at() == "starting"
    dataproc = core.create_job("dataproc", region="us-east1")
    assert dataproc.job_id.startswith("sim-") and dataproc.where["region"] == "us-east1"
    assert core.default_timeline("cdm")[-1]["state"] == "SUCCEEDED"


def test_cancel_switches_timeline_and_is_recorded(core: SimulatorCore) -> None:
    job = core.add_job("dataflow", "df", [{"state": "JOB_STATE_RUNNING"}])
    assert core.cancel_job("dataflow", "df", "drain") is job
    assert job.actions == ["drain"] and job.cancelled
    assert job.state_at() == "JOB_STATE_DRAINING"
    assert job.state_at(job.timeline_start + 1) == "JOB_STATE_DRAINED"
    done = core.add_job("dataproc", "done", [{"state": "DONE"}])
    core.cancel_job("dataproc", "done")
    assert done.actions == [] and done.state_at() == "DONE"  # a finished job is left alone
    assert core.cancel_job("dataproc", "missing") is None
    stopped = core.add_job("cdm", "job-a", [{"state": "RUNNING"}])
    core.cancel_job("cdm", "job-a", "stop")
    assert stopped.snapshot()["error_summary"] == "stopped by user"


def test_load_scenarios_from_list_dict_and_file(core: SimulatorCore, tmp_path: Path) -> None:
    jobs = core.load_scenarios(
        [{"service": "dataflow", "job_id": "df", "timeline": [{"state": "JOB_STATE_DONE"}], "location": "l1"}]
    )
    assert jobs[0].where == {"project_id": "proj", "location": "l1"}
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps(
            {
                "defaults": {"dli": [{"state": "FINISHED"}], "dli:spark": [{"state": "success"}]},
                "jobs": [{"service": "dli", "job_id": "q", "timeline": [{"state": "RUNNING"}]}],
            }
        )
    )
    assert [j.job_id for j in core.load_scenarios(path)] == ["q"]
    assert core.create_job("dli").state_at() == "FINISHED"
    assert core.create_job("dli", job_type="spark").state_at() == "success"
    with pytest.raises(ValueError, match="Scenario entry 0 needs"):
        core.load_scenarios([{"service": "dli"}])


def test_default_scenarios_file_loads_and_stays_short(core: SimulatorCore) -> None:
    jobs = core.load_scenarios(DEFAULT_SCENARIOS)
    assert {j.service for j in jobs} == {
        "dataproc",
        "dataflow",
        "vertex_ai",
        "dataproc_batch",
        "vertex_pipeline",
        "dli_flink",
    }
    for job in jobs:
        assert sum(p.get("duration", 0) for p in job.timeline) <= 8
    for key in ("cdm", "dli"):
        assert sum(p.get("duration", 0) for p in core.default_timeline(key)) <= 8
    assert validate_timeline("dli", core.default_timeline("dli"))


def test_fault_kinds_protocols_and_seconds(core: SimulatorCore) -> None:
    assert {"empty_body", "http_409", "grpc_aborted", "grpc_undecodable"} <= set(FAULT_KINDS)
    core.inject_fault("empty_body")
    core.inject_fault("http_409")
    core.inject_fault("grpc_aborted")
    core.inject_fault("grpc_undecodable")
    core.inject_fault("http_429", seconds=2.5)
    core.inject_fault("http_429")
    taken = [core.take_fault("dli", "j", "grpc") for _ in range(3)]
    assert [f.kind if f else None for f in taken] == ["grpc_aborted", "grpc_undecodable", None]
    taken = [core.take_fault("dli", "j", "http") for _ in range(5)]
    assert [f.kind if f else None for f in taken] == ["empty_body", "http_409", "http_429", "http_429", None]
    assert taken[1] is not None and taken[1].http_status == 409
    assert taken[2] is not None and (taken[2].seconds, taken[2].retry_after) == (2.5, "3")
    assert taken[3] is not None and taken[3].retry_after is None
    with pytest.raises(ValueError, match="seconds applies only to latency, hold_answer and http_429"):
        core.inject_fault("http_503", seconds=2)
    with pytest.raises(ValueError, match="seconds >= 0"):
        core.inject_fault("http_429", seconds=-1)
    with pytest.raises(ValueError, match="Unknown service"):
        core.inject_fault("empty_body", service="s3")


def test_spark_states_keep_their_spelling_and_end_case_insensitively(core: SimulatorCore) -> None:
    core.set_default_timeline(
        "dli", [{"state": "Running", "duration": 60}, {"state": "Success"}], job_type="spark"
    )
    running = core.create_job("dli", job_type="spark")
    assert running.state_at() == "Running" and not running.is_terminal()
    done = core.add_job("dli", "b", [{"state": "Success"}], job_type="spark")
    assert done.state_at() == "Success" and done.is_terminal()
    core.cancel_job("dli", "b", job_type="spark")
    assert done.actions == [] and done.state_at() == "Success"
    sql = core.add_job("dli", "q", [{"state": "success"}])  # not a SQL state: a SQL job keeps running
    assert not sql.is_terminal()


def test_the_simulator_imports_nothing_from_the_package_outside_itself() -> None:
    """An independent witness: no hooks, services or states (no native → normalized mapping)."""
    package = Path(simulator_package.__file__).parent
    outside = []
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                # level 1 (``from . import x``) stays inside the package; level 2 would leave it
                names = [node.module or ""] if node.level == 0 else ["airflow_jobstatus"] * (node.level > 1)
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.startswith("airflow_jobstatus") and not name.startswith(
                    "airflow_jobstatus.simulator"
                ):
                    outside.append(f"{path.name}: {name}")
    assert outside == []
