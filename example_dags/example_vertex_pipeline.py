"""Wait for a Vertex AI pipeline job (a pipeline run) in the triggerer (deferrable sensor).

Defaults match the simulator's default scenarios; POLL_INTERVAL is 1 s because simulated jobs last
seconds (use 30-60 s for real ones). Each poll logs the share of the pipeline's tasks that have
finished; the return value lists the tasks in ``sub_jobs``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_jobstatus.sensors.vertex_pipeline import VertexAIPipelineJobStatusSensor

POLL_INTERVAL = 1.0
TIMEOUT = 3600.0

with DAG(
    "example_jobstatus_vertex_pipeline",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example", "airflow-jobstatus", "vertex_pipeline"],
    params={
        "pipeline_job_id": Param("sim-vertex-pipeline", type="string", minLength=1),
        "location": Param("europe-west1", type="string", minLength=1),
    },
) as dag:
    VertexAIPipelineJobStatusSensor(
        task_id="wait_for_pipeline_job",
        pipeline_job_id="{{ params.pipeline_job_id }}",
        location="{{ params.location }}",
        gcp_conn_id="google_cloud_default",
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=TIMEOUT,
    )


# `python example_dags/example_vertex_pipeline.py` runs the DAG once with dag.test() (connections: see the README).
if __name__ == "__main__":
    dag.test()
