"""Wait for a Dataproc Serverless batch in the triggerer (deferrable sensor).

Defaults match the simulator's default scenarios; POLL_INTERVAL is 1 s because simulated batches last
seconds (use 30-60 s for real ones). The return value carries the batch's approximate usage as
counters (``milli_dcu_seconds``, ``shuffle_storage_gb_seconds``).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_jobstatus.sensors.dataproc_batch import DataprocBatchStatusSensor

POLL_INTERVAL = 1.0
TIMEOUT = 3600.0

with DAG(
    "example_jobstatus_dataproc_batch",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example", "airflow-jobstatus", "dataproc_batch"],
    params={
        "batch_id": Param("sim-dataproc-batch", type="string", minLength=1),
        "region": Param("europe-west1", type="string", minLength=1),
    },
) as dag:
    DataprocBatchStatusSensor(
        task_id="wait_for_batch",
        batch_id="{{ params.batch_id }}",
        region="{{ params.region }}",
        gcp_conn_id="google_cloud_default",
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=TIMEOUT,
    )


# `python example_dags/example_dataproc_batch.py` runs the DAG once with dag.test() (connections: see the README).
if __name__ == "__main__":
    dag.test()
