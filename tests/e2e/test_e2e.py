"""End to end: the cross-cloud example DAG in a real Airflow (``airflow standalone``) against the simulator,
and the ``airflow-jobstatus demo`` command.

The standalone Airflow (scheduler, dag-processor, api-server, triggerer; LocalExecutor, SQLite) runs in
its own process group in a temp AIRFLOW_HOME and is always stopped, group and all, at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_jobstatus.simulator import DEFAULT_SCENARIOS, Simulator
from tests.fixtures import EXAMPLES

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

DAG_ID = "example_jobstatus_cross_cloud"
DEFERRED_TASKS = ("cdm_migration", "dli_sql", "wait_for_dataproc_job")
PARSE_TIMEOUT = 150.0
RUN_TIMEOUT = 150.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``, read from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def stop_group(proc: subprocess.Popen[Any], grace: float = 20.0) -> None:
    """SIGTERM the whole process group, wait for every member, SIGKILL what is left."""
    pgid = proc.pid
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while group_members(pgid) and time.monotonic() < deadline:
            proc.poll()
            time.sleep(0.2)
        if not group_members(pgid):
            break
    proc.poll()
    if proc.returncode is None:
        proc.wait(10)


def log_tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Airflow:
    """A running standalone Airflow: its REST API client, home, and combined output log."""

    api: httpx.Client
    home: Path
    log: Path
    proc: subprocess.Popen[Any]

    def get(self, path: str, **params: Any) -> Any:
        response = self.api.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def wait_for(self, what: str, check: Any, timeout: float) -> Any:
        """Poll ``check()`` until it returns a truthy value; fail with the Airflow log if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"airflow standalone exited:\n{log_tail(self.log)}"
            try:
                value = check()
            except httpx.HTTPError:
                value = None
            if value:
                return value
            time.sleep(1)
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}:\n{log_tail(self.log)}")


def airflow_env(home: Path, sim: Simulator, api_port: int) -> dict[str, str]:
    """A clean environment (nothing from the test session's Airflow settings) for a standalone Airflow."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(sim.env())
    env.update(
        PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),  # standalone runs `airflow`
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        AIRFLOW__CORE__PARALLELISM="4",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        # No login: the simple auth manager makes every request an admin one.
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__PORT=str(api_port),
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{api_port}/execution/",
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
    )
    return env


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    home = tmp_path_factory.mktemp("airflow-e2e")
    (home / "dags").mkdir()
    shutil.copy(EXAMPLES / "example_cross_cloud.py", home / "dags")
    sim = Simulator(scenarios=DEFAULT_SCENARIOS).start()
    api_port = free_port()
    log = home / "standalone.log"
    proc = None
    try:
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "airflow", "standalone"],
                env=airflow_env(home, sim, api_port),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        with httpx.Client(base_url=f"http://127.0.0.1:{api_port}/api/v2", timeout=15) as api:
            yield Airflow(api, home, log, proc)
    finally:
        if proc is not None:
            stop_group(proc)
        sim.stop()


def task_log_events(airflow: Airflow, run_id: str, task_id: str) -> list[dict[str, Any]]:
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/logs/1"
    response = airflow.api.get(path, headers={"Accept": "application/json"})
    response.raise_for_status()
    return [e if isinstance(e, dict) else {"event": str(e)} for e in response.json()["content"]]


def xcom(airflow: Airflow, run_id: str, task_id: str, key: str) -> Any:
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
    value = airflow.get(path, deserialize="true", stringify="false")["value"]
    return json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value


def test_cross_cloud_dag_in_standalone_airflow(airflow: Airflow) -> None:
    airflow.wait_for("the DAG to be parsed", lambda: airflow.get(f"/dags/{DAG_ID}"), PARSE_TIMEOUT)
    airflow.api.patch(f"/dags/{DAG_ID}", json={"is_paused": False}).raise_for_status()
    response = airflow.api.post(f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None})
    response.raise_for_status()
    run_id = response.json()["dag_run_id"]

    def finished() -> str | None:
        state = airflow.get(f"/dags/{DAG_ID}/dagRuns/{run_id}")["state"]
        return state if state in ("success", "failed") else None

    state = airflow.wait_for("the DAG run to finish", finished, RUN_TIMEOUT)
    tis = airflow.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")["task_instances"]
    states = {ti["task_id"]: ti["state"] for ti in tis}
    failed_logs = {
        t: [e.get("event") for e in task_log_events(airflow, run_id, t)][-15:]
        for t, st in states.items()
        if st == "failed"
    }
    assert state == "success", f"{states}\n{failed_logs}\n{log_tail(airflow.log)}"
    assert set(states.values()) == {"success"}

    # The waits really ran in the triggerer: each deferred task's log holds records emitted by
    # JobStatusTrigger, which only the triggerer process runs (the worker never executes a trigger).
    for task_id in DEFERRED_TASKS:
        events = task_log_events(airflow, run_id, task_id)
        from_trigger = [e for e in events if "JobStatusTrigger" in str(e.get("logger", ""))]
        assert from_trigger, f"{task_id}: no JobStatusTrigger record in its log: {events[-5:]}"
        assert any("SUCCEEDED" in str(e.get("event")) for e in from_trigger)

    counters = xcom(airflow, run_id, "cdm_migration", "counters")
    assert counters["rows_written"] == 119800 and counters["rows_read"] == 120000
    assert xcom(airflow, run_id, "dli_sql", "progress") == 1
    sub_jobs = xcom(airflow, run_id, "dli_sql", "sub_jobs")
    assert [s["id"] for s in sub_jobs] == [0, 1] and sub_jobs[0]["num_tasks"] == 8
    history = xcom(airflow, run_id, "dli_sql", "progress_history")
    assert history[-1]["state"] == "SUCCEEDED"
    summary = xcom(airflow, run_id, "summarize", "return_value")
    assert summary["cdm_counters"] == counters


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    command = [sys.executable, "-m", "airflow_jobstatus.cli", "demo", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)


def test_demo_command_succeeds() -> None:
    started = time.monotonic()
    done = run_demo()
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "cdm       sim-cluster/sim-cdm-job  RUNNING" in out  # live progress lines
    assert "subjob 1" in out and "SUCCEEDED" in out
    assert "DAG example_jobstatus_cross_cloud: success" in out
    assert "CDM counters: rows_read 120,000, rows_written 119,800" in out
    assert "#1 collect at SparkSQL.scala:112" in out
    assert elapsed < 120, f"the demo took {elapsed:.0f} s"


def test_demo_command_fails_with_the_task_error(tmp_path: Path) -> None:
    failing_cdm = [
        {"state": "BOOTING", "duration": 0.5, "progress": 0},
        {"state": "FAILED", "progress": -1, "error_summary": "Table orders does not exist"},
    ]
    scenarios = tmp_path / "failing.json"
    cdm_job = {"service": "cdm", "job_id": "sim-cdm-job", "cluster_id": "sim-cluster", "timeline": None}
    scenarios.write_text(json.dumps({"defaults": {"cdm": failing_cdm}, "jobs": [cdm_job]}))
    done = run_demo("--scenarios", str(scenarios))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Failed: cdm_migration" in done.stdout
    assert "Full Airflow log:" in done.stdout
    assert "JobFailedError" in done.stdout and "Table orders does not exist" in done.stdout
    kept_log = Path(done.stdout.split("Full Airflow log: ", 1)[1].split()[0])
    assert kept_log.is_file()
    kept_log.unlink()
