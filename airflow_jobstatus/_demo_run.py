"""The demo's child process: migrate the throwaway DB, run one DAG file with dag.test(), write a JSON outcome.

Run as ``python -m airflow_jobstatus._demo_run DAG_FILE RESULT_JSON`` with AIRFLOW_HOME, the dags
folder and the connections already in the environment. Its (verbose) output goes to the demo's log.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any


def run_dag_file(dag_file: Path) -> dict[str, Any]:
    """Create the metadata DB, run the file's ``dag`` once, and return its run, task states and XComs."""
    from airflow.utils.db import initdb

    started = time.monotonic()
    initdb()
    print(f"[demo] metadata DB ready in {time.monotonic() - started:.1f} s", flush=True)
    spec = importlib.util.spec_from_file_location(dag_file.stem, dag_file)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.dag
    print(f"[demo] running DAG {dag.dag_id}", flush=True)
    run_started = time.monotonic()
    run = dag.test()
    tasks = {ti.task_id: (str(ti.state) if ti.state is not None else None) for ti in run.get_task_instances()}
    return {
        "dag_id": dag.dag_id,
        "run_id": run.run_id,
        "state": str(run.state),
        "run_seconds": round(time.monotonic() - run_started, 1),
        "task_order": [t.task_id for t in dag.topological_sort()],
        "tasks": tasks,
        "xcoms": read_xcoms(dag.dag_id, run.run_id),
    }


def read_xcoms(dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
    """Every XCom of the run, by task id and key."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    out: dict[str, dict[str, Any]] = {}
    with create_session() as session:
        for row in session.query(XComModel).filter_by(dag_id=dag_id, run_id=run_id).all():
            out.setdefault(row.task_id, {})[row.key] = XComModel.deserialize_value(row)
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m airflow_jobstatus._demo_run DAG_FILE RESULT_JSON", file=sys.stderr)
        return 2
    dag_file, result_path = Path(args[0]), Path(args[1])
    try:
        result = run_dag_file(dag_file)
    except Exception as err:
        traceback.print_exc()
        result = {"state": "error", "error": f"{type(err).__name__}: {err}"}
    result_path.write_text(json.dumps(result, default=str), encoding="utf-8")
    return 0 if result.get("state") == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
