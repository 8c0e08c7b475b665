"""The OpenLineage provider's own listener, emitting to a file, in a real DAG run (dag.test()).

In a fresh process: the provider registers its listener only when OpenLineage is configured when the
plugins load, and caches its configuration per process, so it cannot be switched on inside the test
session. The process runs a deferrable ``DliRunSqlJobOperator`` against the simulator with the file
transport (``execute_in_thread``: no fork per event); the test reads the emitted events.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from airflow_jobstatus.simulator import Simulator
    from tests.dag_harness import run_operator

    with Simulator(ak="sim-ak", sk="sim-sk", project_id="sim-project") as sim:
        os.environ.update(sim.env())
        sim.set_default_timeline("dli", [{"state": "RUNNING", "duration": 0.3}, {"state": "FINISHED"}])
        kwargs = {"sql": "INSERT INTO dw.t SELECT 1", "queue_name": "default", "deferrable": True,
                  "poll_interval": 0.2}
        result = run_operator("airflow_jobstatus.operators.dli", "DliRunSqlJobOperator", kwargs, "ol")
    # execute_in_thread: the events are sent by daemon threads; give them a moment before exiting.
    import pathlib, time
    events = pathlib.Path(sys.argv[1])
    deadline = time.monotonic() + 30
    def task_complete():
        lines = events.read_text().splitlines() if events.exists() else []
        return any('"COMPLETE"' in line and '.wait"' in line for line in lines)

    while time.monotonic() < deadline and not task_complete():
        time.sleep(0.2)
    print("RESULT " + json.dumps({"state": result.state, "job_id": result.xcoms.get("job_id")}))
    """
)


def test_the_openlineage_listener_emits_the_job_facets(tmp_path: Path):
    home, events, script = tmp_path / "home", tmp_path / "events.jsonl", tmp_path / "run.py"
    home.mkdir()
    script.write_text(SCRIPT)
    env = {
        # Not a pytest process: the provider reads its configuration differently under pytest.
        **{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "True",
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "jobstatus-test",
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")]),
    }
    run = subprocess.run(
        [sys.executable, str(script), str(events)], env=env, capture_output=True, text=True, timeout=240
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT ") :])
    # A deferrable task while a listener is registered: the DAG loads (end_from_trigger reads False)
    # and the task resumes on a worker, where the listener sends its COMPLETE event.
    assert result["state"] == "success"
    emitted = [json.loads(line) for line in events.read_text().splitlines()]
    (complete,) = [e for e in emitted if e["eventType"] == "COMPLETE" and e["job"]["name"].endswith(".wait")]
    facet = complete["run"]["facets"]["jobStatus"]
    assert facet["_schemaURL"].startswith("https://pypi.org/project/airflow-jobstatus/")
    assert {k: facet[k] for k in ("service", "jobId", "state", "nativeState")} == {
        "service": "dli",
        "jobId": result["job_id"],
        "state": "SUCCEEDED",
        "nativeState": "FINISHED",
    }
    assert complete["run"]["facets"]["externalQuery"]["externalQueryId"] == result["job_id"]
    sql = complete["job"]["facets"]["sql"]
    assert (sql["query"], sql["dialect"]) == ("INSERT INTO dw.t SELECT 1", "spark")
    assert "sim-sk" not in events.read_text()  # no secret of the connection in any event
