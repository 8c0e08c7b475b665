"""A cross-cloud pipeline: CDM migration → DLI SQL → Dataproc job → Vertex AI batch prediction → summary.

Every wait is deferrable (the triggerer polls; no worker slot is held). The DAG reads nothing but
the ``huaweicloud_default`` and ``google_cloud_default`` connections; identifiers are params whose
defaults match the simulator's default scenarios, so ``airflow-jobstatus demo`` runs it as is and a
real deployment only changes the connections and params. POLL_INTERVAL is 1 s because simulated
jobs last a few seconds; for real jobs lasting minutes use 30-60 s (each poll is one API read).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_jobstatus.operators.cdm import CdmStartJobOperator
from airflow_jobstatus.operators.dli import DliRunSqlJobOperator
from airflow_jobstatus.sensors.dataproc import DataprocJobStatusSensor
from airflow_jobstatus.sensors.vertex_ai import VertexAIJobStatusSensor

DAG_ID = "example_jobstatus_cross_cloud"
POLL_INTERVAL = 1.0
TIMEOUT = 3600.0
SQL = "INSERT OVERWRITE TABLE orders_clean SELECT * FROM orders_raw WHERE amount IS NOT NULL"


@task
def submit_dataproc_job(**context: Any) -> str:
    """Submit a PySpark job to the Dataproc cluster and return its job id (the sensor's XCom input)."""
    from airflow_jobstatus.hooks.dataproc import DataprocJobHook

    params = context["params"]
    job = {
        "placement": {"cluster_name": params["dataproc_cluster"]},
        "pyspark_job": {"main_python_file_uri": params["dataproc_main"]},
    }
    return DataprocJobHook("google_cloud_default").submit_job(job, region=params["region"])


#: Spark job states a DLI subjob does not leave.
SUBJOB_FINAL_STATES = ("SUCCEEDED", "FAILED")


@task
def summarize(**context: Any) -> dict[str, Any]:
    """Print and return what each step reported: CDM counters, the DLI job's final state and subjobs."""
    ti = context["ti"]
    summary = {
        "cdm_counters": ti.xcom_pull(task_ids="cdm_migration", key="counters"),
        "dli_job_id": ti.xcom_pull(task_ids="dli_sql", key="job_id"),
        "dli_status": ti.xcom_pull(task_ids="dli_sql", key="status"),
        "dli_progress": ti.xcom_pull(task_ids="dli_sql", key="progress"),
        "dli_sub_jobs": ti.xcom_pull(task_ids="dli_sql", key="sub_jobs"),
        "dli_progress_history": ti.xcom_pull(task_ids="dli_sql", key="progress_history"),
        "dataproc_job_id": ti.xcom_pull(task_ids="submit_dataproc_job"),
        "vertex_ai_state": (ti.xcom_pull(task_ids="wait_for_batch_prediction") or {}).get("state"),
    }
    counters = summary["cdm_counters"] or {}
    print(f"CDM: {counters.get('rows_written', 0)} rows written of {counters.get('rows_read', 0)} read")
    progress = summary["dli_progress"]
    percent = f", progress {progress:.0%}" if isinstance(progress, int | float) else ""
    print(f"DLI job {summary['dli_job_id']} {summary['dli_status']}{percent}")
    # DLI lists a job's subjobs only while it runs: ``sub_jobs`` is the last list the wait saw, so a
    # subjob may be caught before its end. Its final state is printed when the list has it.
    for sub in summary["dli_sub_jobs"] or []:
        state = sub.get("status")
        tasks = f"{sub.get('num_completed_tasks', 0)}/{sub.get('num_tasks', 0)} tasks"
        if state in SUBJOB_FINAL_STATES:
            print(f"DLI subjob {sub.get('id')} {state}: {tasks}")
        else:
            print(
                f"DLI subjob {sub.get('id')}: last seen {state} at {tasks}, before the job ended "
                "(DLI stops listing subjobs once the job has ended)"
            )
    print(
        f"Dataproc job {summary['dataproc_job_id']}; Vertex AI batch prediction {summary['vertex_ai_state']}"
    )
    return summary


with DAG(
    DAG_ID,
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example", "airflow-jobstatus"],
    params={
        "cdm_cluster_id": Param("sim-cluster", type="string", minLength=1),
        "cdm_job_name": Param("sim-cdm-job", type="string", minLength=1),
        "dli_queue": Param("default", type="string", minLength=1),
        "dli_database": Param("demo_db", type="string", minLength=1),
        "region": Param("europe-west1", type="string", minLength=1),
        "dataproc_cluster": Param("sim-cluster", type="string", minLength=1),
        "dataproc_main": Param("gs://sim-bucket/jobs/aggregate_orders.py", type="string", minLength=1),
        "vertex_ai_job_id": Param("4242424242424242424", type="string", minLength=1),
    },
) as dag:
    migrate = CdmStartJobOperator(
        task_id="cdm_migration",
        cluster_id="{{ params.cdm_cluster_id }}",
        job_name="{{ params.cdm_job_name }}",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=TIMEOUT,
    )
    transform = DliRunSqlJobOperator(
        task_id="dli_sql",
        sql=SQL,
        queue_name="{{ params.dli_queue }}",
        database_name="{{ params.dli_database }}",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=TIMEOUT,
    )
    submitted = submit_dataproc_job()
    wait_dataproc = DataprocJobStatusSensor(
        task_id="wait_for_dataproc_job",
        job_id=submitted,  # the upstream task's return value, resolved at run time
        region="{{ params.region }}",
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=TIMEOUT,
    )
    wait_vertex = VertexAIJobStatusSensor(
        task_id="wait_for_batch_prediction",
        job_id="{{ params.vertex_ai_job_id }}",
        location="{{ params.region }}",
        job_type="batch_prediction_job",
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=TIMEOUT,
    )
    migrate >> transform >> submitted >> wait_dataproc >> wait_vertex >> summarize()


# `python example_dags/example_cross_cloud.py` runs the DAG once with dag.test() (connections: see the README).
if __name__ == "__main__":
    dag.test()
