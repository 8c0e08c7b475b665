"""Session fixtures of the deployment harness: PostgreSQL, the simulator, and one Airflow deployment.

One AIRFLOW_HOME and one deployment per session; the scenarios (test_deployment.py) run against it
in sequence. Every process is stopped with its whole session (all its process groups) in the
fixtures' finalizers, whatever the tests did. Measurements are collected in ``METRICS`` and printed
at the end of the run.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deployment.harness import (
    METRICS,
    Airflow,
    Postgres,
    SimProc,
    free_port,
    install_postgres,
    postgres_bindir,
    wait_for,
)
from tests.deployment.plan import FAILOVER_SIZE, FLEET_SIZE, RACE_SIZE

#: The example DAGs (example_dags/, the second bundle) that test_examples.py runs.
EXAMPLE_DAG_IDS = (
    "example_jobstatus_dataproc",
    "example_jobstatus_dataflow",
    "example_jobstatus_vertex_ai",
    "example_jobstatus_cdm",
    "example_jobstatus_dli",
    "example_jobstatus_cross_cloud",
    "example_jobstatus_dataproc_batch",
    "example_jobstatus_vertex_pipeline",
    "example_jobstatus_dli_flink",
)
DAG_IDS = (
    "deploy_fleet",
    "deploy_failover",
    "deploy_race",
    "deploy_user_kill",
    "deploy_triggerer_pause",
    "deploy_warm_up",
    "deploy_worker_loss",
    *EXAMPLE_DAG_IDS,
)
STARTUP_TIMEOUT = 300.0
#: Lowered so the survivor takes a dead triggerer's triggers over within seconds (defaults: 30 s, 5 s).
TRIGGERER_HEALTH_CHECK_THRESHOLD = 15
TRIGGERER_HEARTBEAT = 3

PRELOAD = (
    "airflow.sdk",
    "airflow.sdk.execution_time.supervisor",
    "airflow.sdk.execution_time.task_runner",
    "airflow.dag_processing.dagbag",
    "airflow_jobstatus.sensors",
    "airflow_jobstatus.operators.cdm",
    "airflow_jobstatus.operators.dli",
    "airflow_jobstatus.triggers.job_status",
    "google.cloud.dataproc_v1",
    "google.cloud.dataflow_v1beta3",
    "google.cloud.aiplatform_v1",
    "huaweicloudsdkcdm.v1",
    "huaweicloudsdkdli.v1",
    "tests.deployment.plan",
)
SETTINGS = {
    # LocalExecutor: at most 12 task processes, 8 of one DAG run at once (the race scenario's lingering
    # processes need spare slots).
    "AIRFLOW__CORE__PARALLELISM": "12",
    "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "8",
    # Two api-server workers: every task process talks to the execution API (start, XCom, defer, finish).
    "AIRFLOW__API__WORKERS": "2",
    # A task's supervisor gives up on the execution API after 5 retries of a 5 s read (the default):
    # a fresh api-server worker on this loaded 2-core machine once took 33 s for its first requests
    # (`PATCH .../run`), and the tasks failed before they started. Airflow: "Increase this value if
    # you experience timeout errors under high load."
    "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
    # Each task process would otherwise import Airflow's task SDK, the provider and its service's SDK
    # (Vertex AI alone takes seconds): LocalExecutor workers start from a forkserver that has them.
    "AIRFLOW__SCHEDULER__MP_START_METHOD": "forkserver",
    "AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD": ",".join(PRELOAD),
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TRIGGERER_HEALTH_CHECK_THRESHOLD),
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": str(TRIGGERER_HEARTBEAT),
    "AIRFLOW__TRIGGERER__CAPACITY": "1000",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "1800",
    "JOBSTATUS_DEPLOY_FLEET": str(FLEET_SIZE),
    "JOBSTATUS_DEPLOY_FAILOVER": str(FAILOVER_SIZE),
    "JOBSTATUS_DEPLOY_RACE": str(RACE_SIZE),
}

#: The documented parse error of JobEventTrigger on Airflow < 3.3 (README "Supported Airflow versions").
OLDER_AIRFLOW_ERROR = "JobEventTrigger needs Airflow >= 3.3"


@pytest.fixture(scope="session")
def deploy_root() -> Iterator[Path]:
    """A temp dir for the session's AIRFLOW_HOME and logs, kept when a test failed (its path is printed)."""
    root = Path(tempfile.mkdtemp(prefix="jobstatus-deploy-", dir="/tmp"))
    yield root
    if os.environ.get("JOBSTATUS_DEPLOY_KEEP") or METRICS.get("_session", {}).get("failed"):
        METRICS.setdefault("_session", {})["kept"] = str(root)
    else:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(deploy_root: Path) -> Iterator[Postgres]:
    bindir = postgres_bindir() or install_postgres(deploy_root / "apt.log")
    db = Postgres(bindir)
    try:
        db.start()
        yield db
    finally:
        db.stop()


@pytest.fixture(scope="session")
def simulator(deploy_root: Path) -> Iterator[SimProc]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    sim = SimProc.start(deploy_root / "simulator.log", env)
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture(scope="session")
def airflow(deploy_root: Path, postgres: Postgres, simulator: SimProc) -> Iterator[Airflow]:
    home = deploy_root / "airflow-home"
    home.mkdir()
    api_port = free_port()
    env = Airflow.environment(home, postgres, simulator, api_port, SETTINGS)
    af = Airflow(home, postgres, simulator, env, api_port)
    started = time.monotonic()
    try:
        af.run("db-migrate", "db", "migrate", timeout=STARTUP_TIMEOUT)
        METRICS.setdefault("_session", {})["db_migrate_s"] = round(time.monotonic() - started, 1)
        af.start("scheduler", "scheduler")
        af.start("dag-processor", "dag-processor")
        af.start("api-server", "api-server")
        # One after the other (while the rest starts), so each TriggererJob row maps to its process.
        af.start_triggerer("triggerer-1")
        af.start_triggerer("triggerer-2")

        def ready() -> bool:
            af.check_alive()
            return all(af.api.get(f"/dags/{dag_id}").status_code == 200 for dag_id in DAG_IDS)

        wait_for(
            "the api-server and the harness DAGs", ready, STARTUP_TIMEOUT, interval=2, on_fail=af.diagnostics
        )
        # On Airflow < 3.3 (test-deployment-oldest) the asset-watcher example fails at parse as documented.
        errors = [
            e for e in af.get("/importErrors")["import_errors"] if OLDER_AIRFLOW_ERROR not in e["stack_trace"]
        ]
        assert not errors, json.dumps(errors, indent=1)[:3000]
        METRICS.setdefault("_session", {})["startup_s"] = round(time.monotonic() - started, 1)
        af.warm_up()
        METRICS["_session"]["warm_up"] = af.warm_ups
        yield af
    finally:
        session = METRICS.setdefault("_session", {})
        session["cpu_s_by_component"] = af.cpu_seconds() | {
            "simulator": round(simulator.proc.cpu_seconds(), 1)
        }
        af.stop()


@pytest.fixture
def deployment(airflow: Airflow, request: pytest.FixtureRequest) -> Iterator[Airflow]:
    """The session's deployment, checked alive and with two triggerers before each scenario."""
    airflow.check_alive()
    restarted = False
    for name in ("triggerer-1", "triggerer-2"):
        if name not in airflow.procs:  # replaced after a scenario killed it
            airflow.start_triggerer(name)
            restarted = True
    if restarted:
        airflow.warm_up()
        METRICS.setdefault("_session", {})["warm_up"] = airflow.warm_ups
    airflow.sim.reset()
    yield airflow
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        METRICS.setdefault("_session", {})["failed"] = True
        print("\n" + airflow.diagnostics())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    scenarios = {k: v for k, v in METRICS.items() if not k.startswith("_")}
    kept = METRICS.get("_session", {}).get("kept")
    if not METRICS:
        return
    terminalreporter.section("deployment harness measurements")
    session = {k: v for k, v in METRICS.get("_session", {}).items() if k not in ("kept", "failed")}
    if session:
        terminalreporter.write_line(f"session: {json.dumps(session, sort_keys=True)}")
    if kept:
        terminalreporter.write_line(f"AIRFLOW_HOME, component logs and PostgreSQL log kept in {kept}")
    for name, values in scenarios.items():
        terminalreporter.write_line(f"{name}: {json.dumps(values, sort_keys=True)}")
    out = os.environ.get("JOBSTATUS_DEPLOY_METRICS")
    if out:
        Path(out).write_text(json.dumps(METRICS, indent=2, sort_keys=True))
