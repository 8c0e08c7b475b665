"""Wait for a Dataflow job in the triggerer (deferrable sensor); DRAINED and UPDATED count as success.

Defaults match the simulator's default scenarios; POLL_INTERVAL is 1 s because simulated jobs last
seconds (use 30-60 s for real streaming or batch jobs).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_jobstatus.sensors.dataflow import DataflowJobStatusSensor

POLL_INTERVAL = 1.0
TIMEOUT = 3600.0

with DAG(
    "example_jobstatus_dataflow",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example", "airflow-jobstatus", "dataflow"],
    params={
        "job_id": Param("2026-01-01_00_00_00-1234567890123456789", type="string", minLength=1),
        "location": Param("europe-west1", type="string", minLength=1),
    },
) as dag:
    DataflowJobStatusSensor(
        task_id="wait_for_dataflow_job",
        job_id="{{ params.job_id }}",
        location="{{ params.location }}",
        gcp_conn_id="google_cloud_default",
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=TIMEOUT,
    )


# `python example_dags/example_dataflow.py` runs the DAG once with dag.test() (connections: see the README).
if __name__ == "__main__":
    dag.test()
