"""A deferrable DLI sensor whose job fails (the board shows DLI's message): used by tests/ui."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_jobstatus.sensors.dli import DliJobStatusSensor

with DAG("cloud_jobs_failing", schedule=None, start_date=datetime(2024, 1, 1), catchup=False) as dag:
    DliJobStatusSensor(
        task_id="wait_for_dli_job",
        job_id="sim-dli-failing",
        deferrable=True,
        poke_interval=1.0,
        timeout=600,
        retries=0,
    )
