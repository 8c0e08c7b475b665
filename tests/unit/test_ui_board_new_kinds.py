"""The Cloud jobs page's rows for Dataproc Serverless batches and Vertex AI pipeline jobs: read from the
registry with no change to the board (the job, its console link, usage counters, pipeline tasks)."""

from __future__ import annotations

import time

import pytest

from airflow_jobstatus.core.states import JobState, JobStatus
from airflow_jobstatus.ui import board
from airflow_jobstatus.ui.live import Reading
from tests.unit.test_ui_board_rules import NOW, RowTI, row_job

GOOGLE = "https://console.cloud.google.com"


@pytest.fixture(autouse=True)
def google_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(board, "console_scope", lambda service, conn_id: "proj-b")


def reading(status: JobStatus) -> Reading:
    return Reading(status=status, error=None, read_at=NOW, started=time.monotonic())


def test_the_page_lists_both_kinds() -> None:
    services = board.vocabulary()["services"]
    assert {"name": "dataproc_batch", "title": "Dataproc Serverless"} in services
    assert {"name": "vertex_pipeline", "title": "Vertex AI Pipelines"} in services


def test_a_batch_row_names_the_batch_its_link_and_its_usage() -> None:
    fields = {"batch_id": "nightly-1", "region": "europe-west1", "project_id": None, "gcp_conn_id": "g"}
    job = row_job(RowTI("DataprocBatchStatusSensor", "running"), board.Recorded(rendered=fields))
    assert (job.service, job.job_id) == ("dataproc_batch", "nightly-1")
    status = JobStatus(
        "dataproc_batch", "nightly-1", JobState.RUNNING, "RUNNING", counters={"milli_dcu_seconds": 5}
    )
    row = board.make_row(job, reading(status))
    assert (row["service_title"], row["state"], row["native_state"]) == (
        "Dataproc Serverless",
        "RUNNING",
        "RUNNING",
    )
    assert row["console_url"] == f"{GOOGLE}/dataproc/batches/europe-west1/nightly-1?project=proj-b"
    assert row["counters"] == [{"name": "milli_dcu_seconds", "value": 5}]


def test_a_pipeline_row_counts_its_finished_tasks() -> None:
    fields = {"pipeline_job_id": "run-7", "location": "us-central1", "project_id": "p", "gcp_conn_id": "g"}
    job = row_job(RowTI("VertexAIPipelineJobStatusSensor", "running"), board.Recorded(rendered=fields))
    assert (job.service, job.job_id) == ("vertex_pipeline", "run-7")
    tasks = [
        {"id": "prepare", "status": "SUCCEEDED", "num_tasks": 1, "num_completed_tasks": 1},
        {"id": "train", "status": "RUNNING", "num_tasks": 1, "num_completed_tasks": 0},
    ]
    status = JobStatus(
        "vertex_pipeline", "run-7", JobState.RUNNING, "PIPELINE_STATE_RUNNING", progress=0.5, sub_jobs=tasks
    )
    row = board.make_row(job, reading(status))
    assert row["console_url"] == f"{GOOGLE}/vertex-ai/locations/us-central1/pipelines/runs/run-7?project=p"
    assert row["progress"] == 0.5
    assert row["sub_jobs"] == {
        "count": 2,
        "tasks_completed": 1,
        "tasks_total": 2,
        "current": "train 0/1 tasks",
    }
