"""Wait for a Dataproc job in the triggerer (deferrable sensor); ids are params, access is the connection.

Defaults match the simulator's default scenarios (``airflow-jobstatus simulate``); trigger with other
params to watch a real job. POLL_INTERVAL is 1 s because simulated jobs last seconds; for real jobs
that run minutes use 30-60 s (each poll is one read call against the service's API quota).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_jobstatus.sensors.dataproc import DataprocJobStatusSensor

POLL_INTERVAL = 1.0
TIMEOUT = 3600.0

with DAG(
    "example_jobstatus_dataproc",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example", "airflow-jobstatus", "dataproc"],
    params={
        "job_id": Param("sim-dataproc-job", type="string", minLength=1),
        "region": Param("europe-west1", type="string", minLength=1),
    },
) as dag:
    DataprocJobStatusSensor(
        task_id="wait_for_dataproc_job",
        job_id="{{ params.job_id }}",
        region="{{ params.region }}",
        gcp_conn_id="google_cloud_default",
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=TIMEOUT,
    )


# `python example_dags/example_dataproc.py` runs the DAG once with dag.test() (connections: see the README).
if __name__ == "__main__":
    dag.test()
