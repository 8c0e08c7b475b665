"""Tasks that start no job (used by tests/ui): the board must name none and say why.

``start_cdm_job`` starts a CDM job the test holds RUNNING: CDM refuses ("Cdm.0104 ... is running"),
so the task fails before submitting; ``wait_for_cdm_job`` then never runs (upstream failed). Both
name that running job in their (templated) arguments: the board shows it on neither.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_jobstatus.operators.cdm import CdmStartJobOperator
from airflow_jobstatus.sensors.cdm import CdmJobStatusSensor

with DAG(
    "cloud_jobs_unstarted",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    params={
        "cluster_id": Param("sim-cluster", type="string", minLength=1),
        "job_name": Param("sim-cdm-held", type="string", minLength=1),
    },
) as dag:
    start = CdmStartJobOperator(
        task_id="start_cdm_job",
        cluster_id="{{ params.cluster_id }}",
        job_name="{{ params.job_name }}",
        wait_for_completion=False,
        retries=0,
    )
    wait = CdmJobStatusSensor(
        task_id="wait_for_cdm_job",
        cluster_id="{{ params.cluster_id }}",
        job_name="{{ params.job_name }}",
        deferrable=True,
        poke_interval=1.0,
        timeout=600,
        retries=0,
    )
    start >> wait
