"""Run one operator in a real DAG run with ``dag.test()`` and read back its state and XComs.

``dag.test()`` only runs DAGs it finds in the dags folder, so each case is written there as a
small DAG file (operator class and keyword arguments), imported, and run in this process.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_counter = itertools.count()

DAG_TEMPLATE = """\
from datetime import datetime
from airflow.sdk import DAG
from {module} import {cls}

with DAG({dag_id!r}, schedule=None, start_date=datetime(2024, 1, 1), catchup=False) as dag:
    {cls}(task_id="wait", **{kwargs!r})
"""


@dataclass
class RunResult:
    state: str | None
    xcoms: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""

    @property
    def return_value(self) -> Any:
        return self.xcoms.get("return_value")


def ensure_db() -> None:
    """Create the session's SQLite metadata DB once."""
    marker = Path(os.environ["AIRFLOW_HOME"]) / ".db-ready"
    if marker.exists():
        return
    from airflow.utils.db import initdb

    initdb()
    marker.touch()


def run_operator(module: str, cls: str, kwargs: dict[str, Any], name: str = "case") -> RunResult:
    """Write a one-task DAG running ``cls(**kwargs)``, run it with dag.test(), return the task's outcome."""
    ensure_db()
    dags = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dags.mkdir(parents=True, exist_ok=True)
    dag_id = f"{name}_{next(_counter)}_{os.getpid()}"
    path = dags / f"{dag_id}.py"
    path.write_text(DAG_TEMPLATE.format(module=module, cls=cls, dag_id=dag_id, kwargs=kwargs))
    spec = importlib.util.spec_from_file_location(dag_id, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    try:
        run = mod.dag.test()
    finally:
        path.unlink()  # keep later dag-bag walks short
    return RunResult(state=_task_state(run), xcoms=_xcoms(dag_id, run.run_id), run_id=run.run_id)


def _task_state(run: Any) -> str | None:
    tis = [ti for ti in run.get_task_instances() if ti.task_id == "wait"]
    return str(tis[0].state) if tis and tis[0].state is not None else None


def _xcoms(dag_id: str, run_id: str) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter_by(dag_id=dag_id, run_id=run_id, task_id="wait").all()
        return {row.key: XComModel.deserialize_value(row) for row in rows}
