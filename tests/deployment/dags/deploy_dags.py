"""DAGs of the deployment harness (tests/deployment): every wait is one task, built from tests/deployment/plan.py.

The harness runs Airflow with ``PYTHONPATH`` at the repository root, so the plan imports as
``tests.deployment.plan`` here, in the dag-processor and in every task process.
"""

from __future__ import annotations

import atexit
import time
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, BaseOperator

from airflow_jobstatus.operators.cdm import CdmStartJobOperator
from airflow_jobstatus.operators.dli import DliRunSqlJobOperator
from airflow_jobstatus.sensors import (
    CdmJobStatusSensor,
    DataflowJobStatusSensor,
    DataprocBatchStatusSensor,
    DataprocJobStatusSensor,
    DliFlinkJobStatusSensor,
    DliJobStatusSensor,
    VertexAIJobStatusSensor,
    VertexAIPipelineJobStatusSensor,
)
from tests.deployment.plan import CDM_CLUSTER, FAILOVER, FLEET, RACE, RACE_EXIT_DELAY, RACE_RUN_DELAY, Wait

TIMEOUT = 1800.0
REGION = "europe-west1"
START = datetime(2024, 1, 1)


def make_task(wait: Wait, **extra: Any) -> BaseOperator:
    """The sensor or operator for one wait, deferrable, with the variant's own arguments."""
    common: dict[str, Any] = {
        "task_id": wait.task_id,
        "deferrable": True,
        "timeout": TIMEOUT,
        **wait.variant.kwargs,
        **extra,
    }
    if wait.is_operator:
        common["poll_interval"] = wait.poll
        if wait.kind == "cdm_op":
            return CdmStartJobOperator(cluster_id=CDM_CLUSTER, job_name=wait.job_id, **common)
        return DliRunSqlJobOperator(sql=wait.sql, queue_name="default", database_name="deploy", **common)
    common["poke_interval"] = wait.poll
    # The fleet and triggerer-loss scenarios check each job's own reads per interval: per-job polling,
    # as in the benchmarks' fleets (coalesce="auto" is measured by test_scale.py and the wire tests).
    common.setdefault("coalesce", False)
    if wait.kind == "dataproc":
        return DataprocJobStatusSensor(job_id=wait.job_id, region=REGION, **common)
    if wait.kind == "dataflow":
        return DataflowJobStatusSensor(job_id=wait.job_id, location=REGION, **common)
    if wait.kind == "vertex_ai":
        return VertexAIJobStatusSensor(job_id=wait.job_id, location=REGION, **common)
    if wait.kind == "dataproc_batch":
        return DataprocBatchStatusSensor(batch_id=wait.job_id, region=REGION, **common)
    if wait.kind == "vertex_pipeline":
        return VertexAIPipelineJobStatusSensor(pipeline_job_id=wait.job_id, location=REGION, **common)
    if wait.kind == "dli_flink":
        return DliFlinkJobStatusSensor(job_id=wait.job_id, **common)
    if wait.kind == "cdm":
        return CdmJobStatusSensor(cluster_id=CDM_CLUSTER, job_name=wait.job_id, **common)
    return DliJobStatusSensor(job_id=wait.job_id, **common)


def slow_worker(context: Any) -> None:
    """In the task process: the first attempt exits RACE_EXIT_DELAY s late, a resumed one starts RACE_RUN_DELAY s late."""
    server = getattr(context["ti"], "_ti_context_from_server", None)
    if getattr(server, "next_method", None):  # resuming after the trigger fired
        time.sleep(RACE_RUN_DELAY)
    else:
        atexit.register(time.sleep, RACE_EXIT_DELAY)


def waits_dag(dag_id: str, waits: list[Wait], doc: str, **extra: Any) -> DAG:
    with DAG(
        dag_id, schedule=None, start_date=START, catchup=False, doc_md=doc, tags=["deployment-harness"]
    ) as dag:
        for wait in waits:
            make_task(wait, **extra)
    return dag


fleet = waits_dag(
    "deploy_fleet", FLEET, "The fleet: deferred waits over five services, sensors and operators."
)
failover = waits_dag("deploy_failover", FAILOVER, "Waits deferred while a triggerer is SIGKILLed.")
race = waits_dag(
    "deploy_race",
    RACE,
    "Sensors whose trigger fires on its first read, right after deferral, while the worker's exit is slow.",
    pre_execute=slow_worker,
    # The job's timeline flips on its second read (the trigger's first): per-job reads, whatever
    # JOBSTATUS_DEPLOY_RACE makes of the waits per scope (a list call is no read: it would never flip).
    coalesce=False,
)

with DAG(
    "deploy_user_kill", schedule=None, start_date=START, catchup=False, tags=["deployment-harness"]
) as user_kill:
    # Deferred operators a user marks failed through the REST API: each cancels the job it started.
    CdmStartJobOperator(
        task_id="cdm_op", cluster_id=CDM_CLUSTER, job_name="user-kill-cdm", deferrable=True, poll_interval=2.0
    )
    DliRunSqlJobOperator(
        task_id="dli_op",
        sql="SELECT 'user-kill-dli' AS marker",
        queue_name="default",
        deferrable=True,
        poll_interval=2.0,
    )

with DAG(
    "deploy_warm_up",
    schedule=None,
    start_date=START,
    catchup=False,
    tags=["deployment-harness"],
    params={"job_id": "warm-up"},
) as warm_up:
    # Started and ended in a triggerer on a finished job: its console link is that triggerer's first
    # request to its supervisor, which builds Airflow's in-process execution API (see harness.warm_up).
    DataprocJobStatusSensor(
        task_id="wait", job_id="{{ params.job_id }}", region=REGION, deferrable=True, poke_interval=1.0
    )

with DAG(
    "deploy_triggerer_pause", schedule=None, start_date=START, catchup=False, tags=["deployment-harness"]
) as triggerer_pause:
    # Deferred operators whose triggerer freezes past the health-check threshold, then comes back.
    CdmStartJobOperator(
        task_id="cdm_op", cluster_id=CDM_CLUSTER, job_name="pause-cdm", deferrable=True, poll_interval=2.0
    )
    DliRunSqlJobOperator(
        task_id="dli_op",
        sql="SELECT 'pause-dli' AS marker",
        queue_name="default",
        deferrable=True,
        poll_interval=2.0,
    )

with DAG(
    "deploy_worker_loss",
    schedule=None,
    start_date=START,
    catchup=False,
    tags=["deployment-harness"],
    default_args={"retries": 1, "retry_delay": timedelta(seconds=1)},
) as worker_loss:
    # Waiting in the worker, so the harness can SIGKILL the task process right after the submit.
    CdmStartJobOperator(
        task_id="cdm_op",
        cluster_id=CDM_CLUSTER,
        job_name="worker-loss-cdm",
        deferrable=False,
        poll_interval=2.0,
    )
    DliRunSqlJobOperator(
        task_id="dli_op",
        sql="SELECT 'worker-loss-dli' AS marker",
        queue_name="default",
        deferrable=False,
        poll_interval=2.0,
    )
