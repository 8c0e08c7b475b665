"""The DAG of tests/deployment/test_dli_reattach.py: DLI operators whose first try is SIGKILLed while
the simulator holds their submit's answer back (the job exists, the try never learns its id).

``call_timeout`` is longer than the hold, so the try is still waiting for the answer when it is killed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_jobstatus.operators.dli import DliRunSqlJobOperator

START = datetime(2024, 1, 1)
#: Seconds the answer to each try's submit may take (the simulator holds it for less).
CALL_TIMEOUT = 180.0

with DAG(
    "deploy_reattach",
    schedule=None,
    start_date=START,
    catchup=False,
    tags=["deployment-harness"],
    default_args={"retries": 1, "retry_delay": timedelta(seconds=1)},
) as reattach:
    # The retry waits in the worker ...
    DliRunSqlJobOperator(
        task_id="dli_worker",
        sql="SELECT 'reattach-worker' AS marker",
        queue_name="default",
        deferrable=False,
        poll_interval=2.0,
        call_timeout=CALL_TIMEOUT,
    )
    # ... or in a triggerer (the kill comes before the deferral: the submit is still unanswered).
    DliRunSqlJobOperator(
        task_id="dli_deferred",
        sql="SELECT 'reattach-deferred' AS marker",
        queue_name="default",
        deferrable=True,
        poll_interval=2.0,
        call_timeout=CALL_TIMEOUT,
    )
