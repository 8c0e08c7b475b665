"""The ``airflow-jobstatus`` command: help, status and watch against the simulator, one-line errors, simulate."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_jobstatus.cli import main
from airflow_jobstatus.simulator import Simulator

SUBCOMMANDS = ("status", "watch", "simulate", "demo", "example-dags")
REGION = "europe-west1"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; (exit code, stdout, stderr)."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse: --help and usage errors
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def watch_lines(out: str) -> list[str]:
    """watch's own lines (timestamped), without what Airflow may print first under pytest."""
    return [line for line in out.splitlines() if line.startswith("[") and "] " in line[:12]]


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


def test_watch_prints_a_retried_attempts_details(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    """A Dataproc ATTEMPT_FAILURE (RETRYING): watch prints the warning the sensor logs, details included,
    once per change (not once per poll)."""
    details = "Container killed on request. Exit code is 137"
    sim.add_job("dataproc", "cli-retrying", [{"state": "ATTEMPT_FAILURE", "details": details}], region=REGION)
    argv = ["watch", "dataproc", "cli-retrying", "--region", REGION, "--interval", "0.1", "--timeout", "0.5"]
    code, out, _ = run(capsys, *argv)
    assert code == 4  # still retrying at the timeout
    lines = watch_lines(out)
    assert "dataproc job cli-retrying: RETRYING (native ATTEMPT_FAILURE)" in lines[0]
    assert "warning: dataproc job cli-retrying is RETRYING (native ATTEMPT_FAILURE)" in lines[1]
    assert details in lines[1]
    assert len(lines) == 2, out  # every poll after the first repeats neither line
    assert sim.calls("dataproc", "cli-retrying") >= 2


def test_watch_prints_transient_errors_it_rides_out(
    sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.add_job("cdm", "cli-flaky-cdm", [{"state": "SUCCEEDED", "progress": 100}])
    sim.inject_fault("http_503", count=1, service="cdm")
    code, out, err = run(capsys, "watch", "cdm", "sim-cluster", "cli-flaky-cdm", "--interval", "0.1")
    assert (code, err) == (0, "")
    lines = watch_lines(out)
    assert "warning: Transient error" in lines[0] and "HTTP 503" in lines[0]
    assert "SUCCEEDED" in lines[1]


def test_watch_timeout_has_its_own_exit_code(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    """--timeout while the job runs: exit 4 (3 means the job could not be read)."""
    sim.add_job("dli", "cli-slow", [{"state": "RUNNING", "progress": 0.1}])
    started = time.monotonic()
    code, out, err = run(capsys, "watch", "dli", "cli-slow", "--interval", "5", "--timeout", "0.3")
    assert code == 4
    assert time.monotonic() - started < 4  # the last reading is at the timeout, not an interval later
    assert_one_line_error(err, "timeout", "still RUNNING after 0.3 s")
    assert "RUNNING" in out
    assert sim.calls("dli", "cli-slow") in (
        1,
        2,
    )  # the first reading (and one at the timeout, if not past it)


def test_watch_rejects_a_timeout_that_is_not_positive(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "watch", "dli", "j1", "--timeout", "0")
    assert code == 2
    assert_one_line_error(err, "--timeout")


def test_watch_and_status_print_only_the_counters_that_moved(
    sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """CDM reports all ten counters; the progress line shows the non-zero ones (status lists them all)."""
    counters = {"rows_read": 50, "rows_written": 40, "bytes_read": 0, "files_skipped": 0}
    sim.add_job("cdm", "cli-zeros", [{"state": "SUCCEEDED", "progress": 100, "counters": counters}])
    code, out, _ = run(capsys, "watch", "cdm", "sim-cluster", "cli-zeros", "--interval", "0.1")
    assert code == 0
    line = watch_lines(out)[-1]
    assert "rows_read 50, rows_written 40" in line and " 0" not in line.split("%")[-1]
    assert "bytes_read" not in line and "files_skipped" not in line
    code, out, _ = run(capsys, "status", "cdm", "sim-cluster", "cli-zeros")
    first, counters_line = out.strip().splitlines()[-2:]
    assert "bytes_read" not in first
    assert "bytes_read=0" in counters_line and "files_skipped=0" in counters_line


def test_status_of_a_dli_job_under_the_wrong_type_hints_at_the_other(
    sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.add_job("dli", "batch-7", [{"state": "running"}], job_type="spark")
    sim.add_job("dli", "sql-7", [{"state": "RUNNING"}], job_type="sql")
    code, _, err = run(capsys, "status", "dli", "batch-7")  # --job-type sql is the default
    assert code == 3
    assert_one_line_error(err, "'batch-7' not found", "DLI.0002", "Spark batch", "job_type 'spark'")
    code, _, err = run(capsys, "status", "dli", "sql-7", "--job-type", "spark")
    assert code == 3
    assert_one_line_error(err, "'sql-7' not found", "SQL job", "job_type 'sql'")
    code, out, _ = run(capsys, "status", "dli", "batch-7", "--job-type", "spark")
    assert code == 0 and "RUNNING" in out


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


@pytest.mark.parametrize("front", ["http", "grpc"])
def test_simulate_on_a_taken_port_is_one_line(capsys: pytest.CaptureFixture[str], front: str) -> None:
    import socket

    other = "grpc" if front == "http" else "http"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run(capsys, "simulate", f"--{front}-port", str(port), f"--{other}-port", "0")
    assert code == 2
    # The hint names the command's option, not the Simulator argument (``http_port=<port>``).
    assert_one_line_error(err, str(port), "already in use", f"--{front}-port PORT")
    assert "_port" not in err


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (
            {"jobs": [{"service": "dataproc", "job_id": "j", "timeline": [{"state": "FINISHED_OK"}]}]},
            ["unknown dataproc state 'FINISHED_OK'", "DONE"],
        ),
        ({"jobs": [{"service": "nope", "job_id": "j", "timeline": [{"state": "X"}]}]}, ["nope"]),
        ("{not json", ["scenarios.json"]),
        ({"jobs": [{"service": "dli", "job_id": "j"}]}, ["needs 'service', 'job_id' and 'timeline'"]),
    ],
)
@pytest.mark.parametrize("command", ["simulate", "demo"])
def test_a_bad_scenario_file_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str, content: Any, fragments: list[str]
) -> None:
    """An invalid scenario (unknown state, service, not JSON) is the user's input: exit 2, not 3."""
    path = tmp_path / "scenarios.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    argv = [command, "--scenarios", str(path)]
    if command == "simulate":
        argv += ["--grpc-port", "0", "--http-port", "0"]
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert_one_line_error(err, "scenario file", *fragments)
    assert "Simulator up" not in out  # nothing was started


def test_demo_without_its_dag_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither the installed package nor a checkout has the example DAGs: exit 2 (1 means "the job failed")."""
    from airflow_jobstatus import demo

    monkeypatch.setattr(demo, "PACKAGED_EXAMPLE_DAGS", tmp_path / "packaged")
    monkeypatch.setattr(demo, "CHECKOUT_EXAMPLE_DAGS", tmp_path / "checkout")
    code, out, err = run(capsys, "demo")
    assert code == 2
    assert_one_line_error(err, "example DAGs", "reinstall")
    assert "Simulator up" not in out
    assert demo.run_demo() == 2  # called directly: the same code


def test_demo_without_the_vertex_extra_says_what_to_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_jobstatus import demo

    monkeypatch.setattr(demo, "DEMO_EXTRAS", {"no_such_module_xyz.sub": ("vertex", "the Vertex AI client")})
    code, _, err = run(capsys, "demo")
    assert code == 2
    assert_one_line_error(err, "the Vertex AI client", "pip install 'airflow-jobstatus[vertex]'")


def test_example_dags_copies_the_shipped_dags(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from airflow_jobstatus.demo import DEMO_DAG_FILE, example_dags_dir

    source = example_dags_dir()
    assert source is not None
    names = sorted(f.name for f in source.glob("example_*.py"))
    assert DEMO_DAG_FILE in names and len(names) >= 6
    dest = tmp_path / "airflow" / "dags"
    code, out, err = run(capsys, "example-dags", str(dest))
    assert (code, err) == (0, "")
    assert sorted(f.name for f in dest.iterdir()) == names
    assert (dest / DEMO_DAG_FILE).read_bytes() == (source / DEMO_DAG_FILE).read_bytes()
    assert f"Copied {len(names)} example DAG(s) to {dest}" in out

    code, out, _ = run(capsys, "example-dags", str(dest))  # again: nothing to do
    assert code == 0 and f"Copied 0 example DAG(s) to {dest} ({len(names)} already there, unchanged)" in out

    (dest / DEMO_DAG_FILE).write_text("# my edits\n", encoding="utf-8")
    code, _, err = run(capsys, "example-dags", str(dest))
    assert code == 2
    assert_one_line_error(err, DEMO_DAG_FILE, "--force")
    assert (dest / DEMO_DAG_FILE).read_text(encoding="utf-8") == "# my edits\n"  # left alone

    code, out, _ = run(capsys, "example-dags", str(dest), "--force")
    assert code == 0 and f"Copied 1 example DAG(s) to {dest}" in out
    assert (dest / DEMO_DAG_FILE).read_bytes() == (source / DEMO_DAG_FILE).read_bytes()


def test_the_wheel_ships_the_example_dags(tmp_path: Path) -> None:
    """The build maps the checkout's example_dags/ into the package: the wheel has them where
    ``demo`` and ``example-dags`` look when installed (airflow_jobstatus/example_dags)."""
    import shutil
    import zipfile

    root = Path(__file__).resolve().parents[2]
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("airflow_jobstatus", "example_dags"):
        shutil.copytree(root / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(root / name, src / name)
    # The real build (isolated: pyproject's setuptools>=68, from the package index as for any install).
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check", "-w"]
    done = subprocess.run([*build, str(tmp_path / "dist"), str(src)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = (tmp_path / "dist").glob("airflow_jobstatus-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n.rpartition("/")[2] for n in names if n.startswith("airflow_jobstatus/example_dags/")}
    assert shipped == {f.name for f in (root / "example_dags").glob("*.py")}
    assert "airflow_jobstatus/simulator/scenarios/default.json" in names  # package data still there
    assert "airflow_jobstatus/py.typed" in names


def test_example_dags_into_a_file_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "a-file"
    target.write_text("x", encoding="utf-8")
    code, _, err = run(capsys, "example-dags", str(target))
    assert code == 2
    assert_one_line_error(err, "is not a folder")


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
