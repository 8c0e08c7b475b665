"""Wait for a Vertex AI batch prediction job in the triggerer (deferrable sensor).

Defaults match the simulator's default scenarios; POLL_INTERVAL is 1 s because simulated jobs last
seconds (use 30-60 s for real jobs). ``job_type`` is fixed here because the sensor validates it
when the DAG is parsed.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_jobstatus.sensors.vertex_ai import VertexAIJobStatusSensor

POLL_INTERVAL = 1.0
TIMEOUT = 3600.0

with DAG(
    "example_jobstatus_vertex_ai",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example", "airflow-jobstatus", "vertex_ai"],
    params={
        "job_id": Param("4242424242424242424", type="string", minLength=1),
        "location": Param("europe-west1", type="string", minLength=1),
    },
) as dag:
    VertexAIJobStatusSensor(
        task_id="wait_for_batch_prediction",
        job_id="{{ params.job_id }}",
        location="{{ params.location }}",
        job_type="batch_prediction_job",
        gcp_conn_id="google_cloud_default",
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=TIMEOUT,
    )


# `python example_dags/example_vertex_ai.py` runs the DAG once with dag.test() (connections: see the README).
if __name__ == "__main__":
    dag.test()
