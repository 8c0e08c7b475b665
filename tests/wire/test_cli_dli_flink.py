"""``airflow-jobstatus status`` / ``watch`` on DLI Flink jobs against the simulator."""

from __future__ import annotations

import json

import pytest

from airflow_jobstatus.simulator import Simulator
from tests.wire.test_cli import assert_one_line_error, run, watch_lines

SERVICE = "dli_flink"


def test_status_text_and_json(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    sim.add_job(SERVICE, "50320", [{"state": "job_running", "status_desc": "healthy", "restart_times": 2}])
    code, out, _ = run(capsys, "status", SERVICE, "50320")
    assert code == 0
    assert "RUNNING" in out and "job_running" in out and "healthy" in out and "restart_times=2" in out
    code, out, _ = run(capsys, "status", SERVICE, "50320", "--json")
    data = json.loads(out)
    assert code == 0 and (data["service"], data["job_id"], data["state"]) == (SERVICE, "50320", "RUNNING")
    assert data["counters"] == {"restart_times": 2}


def test_status_of_a_failed_job_exits_1(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    sim.add_job(SERVICE, "7", [{"state": "job_submit_fail", "status_desc": "Insufficient CUs"}])
    code, out, _ = run(capsys, "status", SERVICE, "7")
    assert code == 1 and "FAILED" in out and "Insufficient CUs" in out


def test_watch_follows_a_job_until_it_is_stopped(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    timeline = [
        {"state": "job_submitting", "duration": 0.3},
        {"state": "job_running", "duration": 0.3},
        {"state": "job_canceling", "duration": 0.3},
        {"state": "job_cancel_success", "status_desc": "stopped by ops"},
    ]
    sim.add_job(SERVICE, "8", timeline)
    code, out, err = run(capsys, "watch", SERVICE, "8", "--interval", "0.1")
    lines = watch_lines(out)
    assert code == 1
    assert "PENDING" in lines[0] and any("CANCELLING" in line for line in lines) and "CANCELLED" in lines[-1]
    assert_one_line_error(err, "8", "job_cancel_success", "stopped by ops")


def test_watch_of_a_streaming_job_ends_at_its_timeout(
    sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.add_job(SERVICE, "9", [{"state": "job_running"}])
    code, out, _ = run(capsys, "watch", SERVICE, "9", "--interval", "0.1", "--timeout", "0.4")
    assert code == 4 and "RUNNING" in watch_lines(out)[0]


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["status", SERVICE, "abc"], ["positive integer", "'abc'"]),
        (["status", SERVICE, "1", "--job-type", "sql"], ["does not apply to dli_flink"]),
    ],
)
def test_usage_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragments: list[str]
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert_one_line_error(err, *fragments)


def test_an_unknown_job_is_one_line(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "status", SERVICE, "404")
    assert code == 3
    assert_one_line_error(err, "404", "not found", "DLI.0002")
