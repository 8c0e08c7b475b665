"""The ``airflow-jobstatus`` command: help, status and watch against the simulator, one-line errors, simulate."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from airflow_jobstatus.cli import main
from airflow_jobstatus.simulator import Simulator

SUBCOMMANDS = ("status", "watch", "simulate", "demo")
REGION = "europe-west1"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; (exit code, stdout, stderr)."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse: --help and usage errors
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("command", [None, *SUBCOMMANDS])
def test_help(capsys: pytest.CaptureFixture[str], command: str | None) -> None:
    code, out, _ = run(capsys, *([command] if command else []), "--help")
    assert code == 0
    assert out.startswith("usage: airflow-jobstatus")
    if command in ("status", "watch"):
        assert "CLUSTER_ID JOB_NAME" in out and "--region" in out


def test_cli_import_is_light() -> None:
    """``--help`` must not pay for importing Airflow or the SDKs."""
    heavy = (
        "airflow",
        "grpc",
        "google.cloud.dataproc_v1",
        "google.cloud.aiplatform_v1",
        "huaweicloudsdkcore",
    )
    code = f"import sys, airflow_jobstatus.cli; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_status_text_dataproc(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    sim.add_job("dataproc", "cli-dp", [{"state": "RUNNING"}], region=REGION)
    code, out, err = run(capsys, "status", "dataproc", "cli-dp", "--region", REGION)
    assert (code, err) == (0, "")
    # (the last line: under pytest, Airflow's unit-test mode prints a config line first)
    assert out.strip().splitlines()[-1] == "dataproc job cli-dp: RUNNING (native RUNNING)"


def test_status_json_dli_with_subjobs(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    sub = {"id": 3, "status": "RUNNING", "num_tasks": 10, "num_completed_tasks": 4}
    sim.add_job("dli", "cli-dli", [{"state": "RUNNING", "progress": 0.4, "sub_jobs": [sub]}])
    code, out, _ = run(capsys, "status", "dli", "cli-dli", "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["service"], data["state"], data["progress"]) == ("dli", "RUNNING", 0.4)
    assert data["sub_jobs"][0]["num_completed_tasks"] == 4


def test_status_text_cdm_counters(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    counters = {"rows_read": 50, "rows_written": 40}
    sim.add_job("cdm", "cli-cdm", [{"state": "RUNNING", "progress": 40, "counters": counters}])
    code, out, _ = run(capsys, "status", "cdm", "sim-cluster", "cli-cdm")
    assert code == 0
    assert "cdm job sim-cluster/cli-cdm: RUNNING" in out and "rows_written=40" in out


def test_status_json_vertex_ai_job_type(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    timeline = [{"state": "JOB_STATE_SUCCEEDED"}]
    sim.add_job("vertex_ai", "777", timeline, job_type="batch_prediction_job")
    argv = [
        "status",
        "vertex-ai",
        "777",
        "--location",
        REGION,
        "--job-type",
        "batch_prediction_job",
        "--json",
    ]
    code, out, _ = run(capsys, *argv)
    assert code == 0
    assert json.loads(out)["state"] == "SUCCEEDED"


@pytest.mark.parametrize(
    ("argv", "code", "fragments"),
    [
        (["status", "nope", "1"], 2, ["unknown service 'nope'", "dataproc, dataflow"]),
        (["status", "dli", "  "], 2, ["job_id must be a non-empty string"]),
        (["status", "cdm", "only-cluster"], 2, ["CLUSTER_ID JOB_NAME"]),
        (["status", "dataproc", "j1"], 2, ["needs --region"]),
        (["status", "dli", "j1", "--job-type", "x"], 2, ["job_type", "sql, spark"]),
        (["status", "dli", "j1", "--region", "r"], 2, ["does not apply to dli"]),
        (["status", "cdm", "c", "j", "--project", "p"], 2, ["--project does not apply to cdm"]),
        (["status", "dli", ".."], 2, ["not a valid identifier"]),
        (["watch", "dli", "j1", "--error-budget", "nan"], 2, ["--error-budget"]),
        (["watch", "dataproc", "j1", "--region", REGION, "--interval", "0"], 2, ["--interval"]),
        (["frobnicate"], 2, ["invalid choice"]),
    ],
)
def test_usage_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], code: int, fragments: list[str]
) -> None:
    got, _, err = run(capsys, *argv)
    assert got == code
    assert_one_line_error(err, *fragments)


def test_missing_connection_is_one_line(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "status", "dataflow", "x", "--location", REGION, "--conn-id", "no_such_conn")
    assert code == 3  # a service or connection error
    assert_one_line_error(err, "no_such_conn")


def test_unknown_job_is_one_line(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "status", "dli", "ghost")
    assert code == 3
    assert_one_line_error(err, "ghost", "not found")


def test_status_of_a_failed_job_exits_1(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    sim.add_job("dataproc", "cli-failed", [{"state": "ERROR", "details": "exit 7"}], region=REGION)
    code, out, _ = run(capsys, "status", "dataproc", "cli-failed", "--region", REGION)
    assert code == 1
    assert "FAILED" in out and "exit 7" in out


def test_watch_error_budget_bounds_the_retrying(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    sim.add_job("dataproc", "cli-flaky", [{"state": "RUNNING"}], region=REGION)
    sim.inject_fault("grpc_unavailable", count=1000, service="dataproc")
    argv = ["watch", "dataproc", "cli-flaky", "--region", REGION, "--interval", "0.1", "--error-budget", "0"]
    code, _, err = run(capsys, *argv)
    assert code == 3
    assert_one_line_error(err, "UNAVAILABLE")
    assert sim.calls("dataproc", "cli-flaky") == 1  # a budget of 0 s: the first error is final


def test_watch_succeeds(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    timeline = [
        {"state": "RUNNING", "duration": 0.6, "progress": [0, 100], "counters": {"rows_read": 10}},
        {"state": "SUCCEEDED", "progress": 100, "counters": {"rows_read": 10, "rows_written": 10}},
    ]
    sim.add_job("cdm", "cli-watch", timeline)
    code, out, _ = run(capsys, "watch", "cdm", "sim-cluster", "cli-watch", "--interval", "0.1")
    assert code == 0
    lines = out.strip().splitlines()
    assert "RUNNING" in lines[0] and "SUCCEEDED" in lines[-1] and "rows_written 10" in lines[-1]


def test_watch_fails(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    sub = {"id": 0, "status": "RUNNING", "num_tasks": 4, "num_completed_tasks": [0, 4]}
    timeline = [
        {"state": "RUNNING", "duration": 0.5, "progress": [0, 1], "sub_jobs": [sub]},
        {"state": "FAILED", "message": "boom"},
    ]
    sim.add_job("dli", "cli-watch-fail", timeline)
    code, out, err = run(capsys, "watch", "dli", "cli-watch-fail", "--interval", "0.1")
    assert code == 1
    assert "tasks" in out.splitlines()[0] and "FAILED" in out.splitlines()[-1]
    assert_one_line_error(err, "cli-watch-fail", "FAILED", "boom")  # the service's message, as status shows


def test_simulate_prints_connections_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_jobstatus.cli", "simulate", "--grpc-port", "0", "--http-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Serving" in line:
                break
        text = "".join(lines)
        assert "export AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT=" in text
        assert "export AIRFLOW_CONN_HUAWEICLOUD_DEFAULT=" in text
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "Simulator stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_simulate_on_a_taken_port_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run(capsys, "simulate", "--http-port", str(port), "--grpc-port", "0")
    assert code == 2
    assert_one_line_error(err, str(port), "already in use")


def test_simulate_defaults_to_fixed_ports() -> None:
    from airflow_jobstatus.cli import build_parser
    from airflow_jobstatus.simulator import DEFAULT_GRPC_PORT, DEFAULT_HTTP_PORT

    args = build_parser().parse_args(["simulate"])
    assert (args.grpc_port, args.http_port) == (DEFAULT_GRPC_PORT, DEFAULT_HTTP_PORT) == (50061, 8961)


def test_unreachable_huawei_endpoint_is_one_line(
    sim: Simulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No stray SDK log line before our error (the SDK client printed one)."""
    conn = json.loads(sim.env()["AIRFLOW_CONN_HUAWEICLOUD_DEFAULT"])
    conn["extra"]["endpoint"] = "http://127.0.0.1:1"
    monkeypatch.setenv("AIRFLOW_CONN_HW_DOWN", json.dumps(conn))
    code, _, err = run(capsys, "status", "dli", "j1", "--conn-id", "hw_down")
    assert code == 3
    assert_one_line_error(err, "connection")
