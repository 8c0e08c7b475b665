"""The scale scenario's DAGs (tests/deployment/scale_plan.py): one task per wait, sensors starting in the triggerer.

``deploy_scale_google*`` exist only where apache-airflow-providers-google is installed (the benchmark's
components venv, benchmarks/deployment_scale.py); its tasks use the ``google_sim`` connection.
"""

from __future__ import annotations

import importlib.util
import json
import os
from datetime import datetime
from typing import Any

from airflow.sdk import DAG

from airflow_jobstatus import sensors
from tests.deployment.plan import CDM_CLUSTER, Wait
from tests.deployment.scale_plan import (
    DATAPROC_GOOGLE,
    DATAPROC_GOOGLE_DIRECT,
    DATAPROC_OURS,
    scale_dags,
)

START = datetime(2024, 1, 1)
REGION = "europe-west1"
TIMEOUT = 3600.0
GOOGLE_CONN = "google_sim"
TAGS = ["deployment-harness", "scale"]


#: kind -> (sensor class, the argument naming the job, extra arguments). Not deploy_dags.make_task:
#: importing that module would build its DAGs again and register them as this file's.
SENSORS: dict[str, tuple[str, str, dict[str, str]]] = {
    "dataproc": ("DataprocJobStatusSensor", "job_id", {"region": REGION}),
    "dataflow": ("DataflowJobStatusSensor", "job_id", {"location": REGION}),
    "vertex_ai": ("VertexAIJobStatusSensor", "job_id", {"location": REGION}),
    "dataproc_batch": ("DataprocBatchStatusSensor", "batch_id", {"region": REGION}),
    "vertex_pipeline": ("VertexAIPipelineJobStatusSensor", "pipeline_job_id", {"location": REGION}),
    "dli_flink": ("DliFlinkJobStatusSensor", "job_id", {}),
    "cdm": ("CdmJobStatusSensor", "job_name", {"cluster_id": CDM_CLUSTER}),
    "dli": ("DliJobStatusSensor", "job_id", {}),
}


def make_sensor(wait: Wait) -> Any:
    cls, ref, extra = SENSORS[wait.kind]
    return getattr(sensors, cls)(
        task_id=wait.task_id,
        deferrable=True,
        poke_interval=wait.poll,
        timeout=TIMEOUT,
        **{ref: wait.job_id},
        **extra,
        **wait.variant.kwargs,
    )


def waits_dag(dag_id: str, waits: list[Wait], doc: str) -> DAG:
    with DAG(dag_id, schedule=None, start_date=START, catchup=False, doc_md=doc, tags=TAGS) as dag:
        for wait in waits:
            make_sensor(wait)
    return dag


def google_dag(dag_id: str, waits: list[Wait], start_from_trigger: bool) -> DAG:
    from airflow.providers.google.cloud.operators.dataproc import DataprocSubmitJobOperator

    # The project given explicitly: the provider's DataprocAsyncHook has no ``project_id`` to fall back
    # on, so its trigger fails with AttributeError when the operator leaves it to the connection.
    conn = json.loads(os.environ.get(f"AIRFLOW_CONN_{GOOGLE_CONN.upper()}", "{}"))
    project = conn.get("extra", {}).get("project")
    with DAG(dag_id, schedule=None, start_date=START, catchup=False, tags=TAGS) as dag:
        for wait in waits:
            DataprocSubmitJobOperator(
                task_id=wait.task_id,
                job={
                    "reference": {"job_id": wait.job_id},
                    "placement": {"cluster_name": CDM_CLUSTER},
                    "pyspark_job": {"main_python_file_uri": "gs://sim-bucket/job.py"},
                },
                region=REGION,
                project_id=project,
                gcp_conn_id=GOOGLE_CONN,
                deferrable=True,
                start_from_trigger=start_from_trigger,
                polling_interval_seconds=int(wait.poll),
                cancel_on_kill=False,
            )
    return dag


for _dag_id, _waits in scale_dags().items():
    globals()[_dag_id] = waits_dag(
        _dag_id, _waits, "The scale scenario: sensors over every service, from the triggerer."
    )
scale_dataproc = waits_dag("deploy_scale_dataproc", DATAPROC_OURS, "This provider's Dataproc sensors.")
if importlib.util.find_spec("airflow.providers.google") is not None:
    scale_google = google_dag("deploy_scale_google", DATAPROC_GOOGLE, start_from_trigger=False)
    scale_google_direct = google_dag("deploy_scale_google_direct", DATAPROC_GOOGLE_DIRECT, True)
