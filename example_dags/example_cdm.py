"""Start a Huawei Cloud CDM job, then wait for it in the triggerer with the deferrable sensor.

The operator could wait itself (see example_cross_cloud.py); here it only starts the job, to show
the sensor. The default job is the simulator's ``sim-cluster/sim-cdm-sensor-job``, not the
cross-cloud example's ``sim-cdm-job``: CDM refuses to start a job that is running ("Cdm.0104 ... is
running"), so two DAGs starting one job collide. POLL_INTERVAL is 1 s because simulated jobs last
seconds (use 30-60 s for real migrations).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_jobstatus.operators.cdm import CdmStartJobOperator
from airflow_jobstatus.sensors.cdm import CdmJobStatusSensor

POLL_INTERVAL = 1.0
TIMEOUT = 3600.0

with DAG(
    "example_jobstatus_cdm",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example", "airflow-jobstatus", "cdm"],
    params={
        "cluster_id": Param("sim-cluster", type="string", minLength=1),
        "job_name": Param("sim-cdm-sensor-job", type="string", minLength=1),
    },
) as dag:
    start = CdmStartJobOperator(
        task_id="start_cdm_job",
        cluster_id="{{ params.cluster_id }}",
        job_name="{{ params.job_name }}",
        huaweicloud_conn_id="huaweicloud_default",
        wait_for_completion=False,
    )
    wait = CdmJobStatusSensor(
        task_id="wait_for_cdm_job",
        cluster_id="{{ params.cluster_id }}",
        job_name="{{ params.job_name }}",
        huaweicloud_conn_id="huaweicloud_default",
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=TIMEOUT,
    )
    start >> wait


# `python example_dags/example_cdm.py` runs the DAG once with dag.test() (connections: see the README).
if __name__ == "__main__":
    dag.test()
