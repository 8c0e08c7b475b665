"""``airflow-jobstatus status`` and ``watch`` for Dataproc Serverless batches and Vertex AI pipeline jobs."""

from __future__ import annotations

import importlib.util
import json

import pytest

from airflow_jobstatus.simulator import Simulator
from tests.wire.test_cli import REGION, assert_one_line_error, run, watch_lines

VERTEX = pytest.mark.skipif(
    importlib.util.find_spec("google.cloud.aiplatform_v1") is None, reason="the vertex extra is not installed"
)


def test_status_text_dataproc_batch(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    usage = {"milli_dcu_seconds": 1_200_000}
    sim.add_job("dataproc_batch", "cli-b", [{"state": "RUNNING", "approximate_usage": usage}])
    code, out, err = run(capsys, "status", "dataproc-batch", "cli-b", "--region", REGION)
    assert (code, err) == (0, "")
    assert (
        "dataproc_batch job cli-b: RUNNING (native RUNNING), milli_dcu_seconds 1,200,000" in out.splitlines()
    )
    assert out.strip().splitlines()[-1] == "  counters: milli_dcu_seconds=1,200,000"


def test_status_json_and_errors_dataproc_batch(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    sim.add_job("dataproc_batch", "cli-bad", [{"state": "FAILED", "state_message": "Driver exited 3"}])
    code, out, _ = run(capsys, "status", "dataproc_batch", "cli-bad", "--region", REGION, "--json")
    assert code == 1  # a failed job
    data = json.loads(out)
    assert (data["service"], data["state"], data["message"]) == (
        "dataproc_batch",
        "FAILED",
        "Driver exited 3",
    )
    code, _, err = run(capsys, "status", "dataproc_batch", "cli-b")
    assert code == 2 and "needs --region" in err
    code, _, err = run(capsys, "status", "dataproc_batch", "ghost", "--region", REGION)
    assert code == 3
    assert_one_line_error(err, "ghost", "NOT_FOUND")


def test_watch_dataproc_batch(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    timeline = [
        {"state": "PENDING", "duration": 0.3},
        {"state": "RUNNING", "duration": 0.3},
        {"state": "SUCCEEDED", "approximate_usage": {"milli_dcu_seconds": 5}},
    ]
    sim.add_job("dataproc_batch", "cli-watch", timeline)
    code, out, _ = run(
        capsys, "watch", "dataproc_batch", "cli-watch", "--region", REGION, "--interval", "0.1"
    )
    assert code == 0
    lines = watch_lines(out)
    assert "PENDING" in lines[0] and "SUCCEEDED" in lines[-1] and "milli_dcu_seconds 5" in lines[-1]


@VERTEX
def test_status_and_watch_vertex_pipeline(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    tasks = [{"task_name": "prepare", "state": "SUCCEEDED"}, {"task_name": "train", "state": "RUNNING"}]
    sim.add_job("vertex_pipeline", "cli-p", [{"state": "PIPELINE_STATE_RUNNING", "task_details": tasks}])
    code, out, err = run(capsys, "status", "vertex-pipeline", "cli-p", "--location", REGION, "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert (data["state"], data["progress"]) == ("RUNNING", 0.5)
    assert [s["id"] for s in data["sub_jobs"]] == ["prepare", "train"]
    timeline = [
        {"state": "PIPELINE_STATE_RUNNING", "duration": 0.3, "task_details": tasks},
        {"state": "PIPELINE_STATE_FAILED", "error": "train failed"},
    ]
    sim.add_job("vertex_pipeline", "cli-pw", timeline)
    code, out, err = run(
        capsys, "watch", "vertex_pipeline", "cli-pw", "--location", REGION, "--interval", "0.1"
    )
    assert code == 1
    lines = watch_lines(out)
    assert "50%" in lines[0] and "subjob train 0/1 tasks" in lines[0] and "FAILED" in lines[-1]
    assert_one_line_error(err, "cli-pw", "FAILED", "train failed")
