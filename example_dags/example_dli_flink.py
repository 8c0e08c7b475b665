"""Wait until a DLI Flink streaming job is up (deferrable sensor, success_states={"RUNNING"}).

A streaming job normally never ends, so "done" is "it is running": the sensor succeeds once the job
reaches job_running, and fails if it dies first (job_submit_fail, job_running_exception) or is
stopped (job_cancel_success). The return value carries the status description as ``message`` and
the restart count as ``counters["restart_times"]``. Defaults match the simulator's default
scenarios; POLL_INTERVAL is 1 s because simulated jobs start in seconds (use 15-60 s for real ones).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_jobstatus.sensors.dli_flink import DliFlinkJobStatusSensor

POLL_INTERVAL = 1.0
TIMEOUT = 1800.0

with DAG(
    "example_jobstatus_dli_flink",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example", "airflow-jobstatus", "dli_flink"],
    params={"flink_job_id": Param(50320, type="integer", minimum=1)},
) as dag:
    DliFlinkJobStatusSensor(
        task_id="wait_until_running",
        job_id="{{ params.flink_job_id }}",
        success_states={"RUNNING"},
        huaweicloud_conn_id="huaweicloud_default",
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=TIMEOUT,
    )


# `python example_dags/example_dli_flink.py` runs the DAG once with dag.test() (connections: see the README).
if __name__ == "__main__":
    dag.test()
