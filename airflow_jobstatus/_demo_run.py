"""Run one DAG file with dag.test() and read back its outcome and XComs (the demo and the tests use it).

As the demo's child process: run as ``python -m airflow_jobstatus._demo_run DAG_FILE RESULT_JSON`` with AIRFLOW_HOME, the dags
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


def ensure_db() -> None:
    """Create the metadata DB of this AIRFLOW_HOME once per home (a marker file remembers it)."""
    import os

    from airflow.utils.db import initdb

    marker = Path(os.environ["AIRFLOW_HOME"]) / ".jobstatus-db-ready"
    if not marker.exists():
        started = time.monotonic()
        initdb()
        marker.touch()
        print(f"[run] metadata DB ready in {time.monotonic() - started:.1f} s", flush=True)


def run_dag_file(dag_file: Path) -> dict[str, Any]:
    """Run the file's ``dag`` once with dag.test(): its run, task states and every XCom.

    ``dag.test()`` only runs DAGs found in the dags folder: a file elsewhere is copied there for the run.
    """
    import os
    import shutil

    ensure_db()
    dags = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dags.mkdir(parents=True, exist_ok=True)
    path = dag_file if dag_file.resolve().parent == dags.resolve() else dags / dag_file.name
    if path != dag_file:
        shutil.copy(dag_file, path)
    try:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        dag = module.dag
        print(f"[run] running DAG {dag.dag_id}", flush=True)
        run_started = time.monotonic()
        run = dag.test()
    finally:
        if path != dag_file:
            path.unlink()  # keep later dag-bag walks short
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
