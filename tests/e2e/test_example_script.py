"""An example DAG file run as a script: a real Python process importing Airflow (``dag.test()`` in it)."""

from __future__ import annotations

from airflow_jobstatus.simulator import Simulator
from tests.fixtures import EXAMPLES


def test_an_example_runs_as_a_script(demo_sim: Simulator) -> None:
    """``python example_dags/example_dataproc.py`` runs the DAG once (it did nothing before)."""
    import os
    import subprocess
    import sys

    from airflow_jobstatus._demo_run import ensure_db

    ensure_db()
    env = {**os.environ, **demo_sim.env(), "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES)}
    script = EXAMPLES / "example_dataproc.py"
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert demo_sim.calls("dataproc") >= 1  # it really ran: the sensor read the job
