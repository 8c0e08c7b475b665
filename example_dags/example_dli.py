"""Run DLI SQL with the operator (waits deferred, pushes subjob progress), and wait on a job with the sensor.

``run_sql`` submits and waits in the triggerer; ``submit_only`` + ``wait_for_sql`` show the sensor on
a job id from XCom. Defaults match the simulator; POLL_INTERVAL is 1 s because simulated jobs last
seconds (use 10-60 s for real queries).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_jobstatus.operators.dli import DliRunSqlJobOperator
from airflow_jobstatus.sensors.dli import DliJobStatusSensor

POLL_INTERVAL = 1.0
TIMEOUT = 3600.0
SQL = "INSERT OVERWRITE TABLE sales_daily SELECT day, sum(amount) FROM sales GROUP BY day"

with DAG(
    "example_jobstatus_dli",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example", "airflow-jobstatus", "dli"],
    params={
        "queue_name": Param("default", type="string", minLength=1),
        "database_name": Param("demo_db", type="string", minLength=1),
    },
) as dag:
    DliRunSqlJobOperator(
        task_id="run_sql",
        sql=SQL,
        queue_name="{{ params.queue_name }}",
        database_name="{{ params.database_name }}",
        huaweicloud_conn_id="huaweicloud_default",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=TIMEOUT,
    )
    submit = DliRunSqlJobOperator(
        task_id="submit_only",
        sql=SQL,
        queue_name="{{ params.queue_name }}",
        database_name="{{ params.database_name }}",
        huaweicloud_conn_id="huaweicloud_default",
        wait_for_completion=False,
    )
    wait = DliJobStatusSensor(
        task_id="wait_for_sql",
        job_id="{{ ti.xcom_pull(task_ids='submit_only', key='job_id') }}",
        job_type="sql",
        huaweicloud_conn_id="huaweicloud_default",
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=TIMEOUT,
    )
    submit >> wait


# `python example_dags/example_dli.py` runs the DAG once with dag.test() (connections: see the README).
if __name__ == "__main__":
    dag.test()
