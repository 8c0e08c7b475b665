"""Run one operator in a real DAG run with ``dag.test()`` and read back its state and XComs.

Each case is written to the dags folder as a small DAG file (operator class and keyword arguments)
and run in this process by the same runner the demo uses.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_jobstatus._demo_run import run_dag_file

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


def run_operator(module: str, cls: str, kwargs: dict[str, Any], name: str = "case") -> RunResult:
    """Write a one-task DAG running ``cls(**kwargs)``, run it with dag.test(), return the task's outcome."""
    dags = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dags.mkdir(parents=True, exist_ok=True)
    dag_id = f"{name}_{next(_counter)}_{os.getpid()}"
    path = dags / f"{dag_id}.py"
    path.write_text(DAG_TEMPLATE.format(module=module, cls=cls, dag_id=dag_id, kwargs=kwargs))
    try:
        outcome = run_dag_file(path)
    finally:
        path.unlink()  # keep later dag-bag walks short
    return RunResult(
        state=outcome["tasks"].get("wait"), xcoms=outcome["xcoms"].get("wait", {}), run_id=outcome["run_id"]
    )
