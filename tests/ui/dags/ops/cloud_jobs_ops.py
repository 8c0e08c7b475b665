"""A DAG of team "ops" (its own bundle): a poke-mode DLI sensor. Used by tests/ui's auth tests."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_jobstatus.sensors.dli import DliJobStatusSensor

with DAG("cloud_jobs_ops", schedule=None, start_date=datetime(2024, 1, 1), catchup=False) as dag:
    DliJobStatusSensor(
        task_id="wait_for_ops_job",
        job_id="sim-dli-ops",
        deferrable=False,
        mode="poke",
        poke_interval=1.0,
        timeout=600,
        retries=0,
    )
