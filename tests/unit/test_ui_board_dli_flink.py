"""The Cloud jobs page's rows for DLI Flink jobs: read from the registry with no change to the board
(the job, its console link with the connection's region, the status description, the restart count)."""

from __future__ import annotations

import time

import pytest

from airflow_jobstatus.core.states import JobState, JobStatus
from airflow_jobstatus.ui import board
from airflow_jobstatus.ui.live import Reading
from tests.unit.test_ui_board_rules import NOW, RowTI, row_job


@pytest.fixture(autouse=True)
def huawei_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(board, "console_scope", lambda service, conn_id: "cn-north-4")


def reading(status: JobStatus) -> Reading:
    return Reading(status=status, error=None, read_at=NOW, started=time.monotonic())


def test_the_page_lists_dli_flink() -> None:
    assert {"name": "dli_flink", "title": "DLI Flink"} in board.vocabulary()["services"]


def test_a_flink_row_names_the_job_its_link_and_its_restarts() -> None:
    fields = {"job_id": "50320", "huaweicloud_conn_id": "huaweicloud_default"}
    job = row_job(RowTI("DliFlinkJobStatusSensor", "deferred"), board.Recorded(rendered=fields))
    assert (job.service, job.job_id) == ("dli_flink", "50320")
    status = JobStatus(
        "dli_flink", "50320", JobState.RUNNING, "job_running", message="up", counters={"restart_times": 2}
    )
    row = board.make_row(job, reading(status))
    assert (row["service_title"], row["state"], row["native_state"], row["state_kind"]) == (
        "DLI Flink",
        "RUNNING",
        "job_running",
        "active",
    )
    assert row["console_url"] == (
        "https://console.huaweicloud.com/dli/?region=cn-north-4#/main/jobsManagement/flinkJob/detail?jobId=50320"
    )
    assert row["counters"] == [{"name": "restart_times", "value": 2}]


def test_a_job_stopped_for_arrears_is_shown_as_needing_attention() -> None:
    fields = {"job_id": "7", "huaweicloud_conn_id": "huaweicloud_default"}
    job = row_job(RowTI("DliFlinkJobStatusSensor", "deferred"), board.Recorded(rendered=fields))
    status = JobStatus("dli_flink", "7", JobState.PAUSED, "job_arrearage_stopped")
    assert board.make_row(job, reading(status))["state_kind"] == "attention"
