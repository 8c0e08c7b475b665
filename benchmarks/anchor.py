"""The anchor: apache-airflow-providers-google's triggers and sensor against the same simulator.

Run with benchmarks/.venv-anchor/bin/python. Only two things are changed: the connection says
``is_anonymous`` (the provider's own anonymous-credentials option), and gRPC channel creation is
pointed at the simulator over plaintext. Their client-per-trigger / client-per-poll behaviour is kept.

Usage: anchor.py fleet SERVICES READY PLAN RESULT | anchor.py poke COUNT RESULT
(SIM_GRPC_TARGET and SIM_PROJECT in the environment).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cpu_seconds, fleet_main, write_json

REGION = "europe-west1"
TARGET = os.environ["SIM_GRPC_TARGET"]
PROJECT = os.environ.get("SIM_PROJECT", "sim-project")
CONN_ID = "google_cloud_default"


def patch_channels() -> None:
    """Make every GAPIC channel a plaintext channel to the simulator; nothing else changes."""
    import grpc
    from google.api_core import grpc_helpers, grpc_helpers_async

    grpc_helpers_async.create_channel = lambda *args, **kwargs: grpc.aio.insecure_channel(TARGET)
    grpc_helpers.create_channel = lambda *args, **kwargs: grpc.insecure_channel(TARGET)


def set_connection() -> None:
    """The google_cloud_default connection with anonymous credentials and the simulator's project."""
    conn = {"conn_type": "google_cloud_platform", "extra": {"project": PROJECT, "is_anonymous": True}}
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(conn)


def make_trigger(job: dict[str, Any]) -> Any:
    """What the provider's deferrable operators/sensors hand the triggerer for this job."""
    from airflow.providers.google.cloud.triggers.dataflow import DataflowJobStatusTrigger
    from airflow.providers.google.cloud.triggers.dataproc import DataprocSubmitTrigger

    poll = job["poll"]
    if job["service"] == "dataproc":
        return DataprocSubmitTrigger(
            job_id=job["job_id"],
            project_id=PROJECT,
            region=REGION,
            gcp_conn_id=CONN_ID,
            polling_interval_seconds=poll,
            cancel_on_kill=False,
        )
    if job["service"] == "dataflow":
        return DataflowJobStatusTrigger(
            job_id=job["job_id"],
            expected_statuses={"JOB_STATE_DONE"},
            project_id=PROJECT,
            location=REGION,
            gcp_conn_id=CONN_ID,
            poll_sleep=poll,
        )
    raise ValueError(f"the anchor has no trigger for {job['service']!r}")


def warm_up_for(services: list[str]):  # type: ignore[no-untyped-def]
    """A coroutine function running one anchor trigger per service on an already-finished job."""

    async def warm_up() -> None:
        async def one(service: str) -> None:
            trigger = make_trigger({"service": service, "job_id": f"warm-{service}", "poll": 0.1})
            async for event in trigger.run():
                status = event.payload.get("status") or event.payload.get("job_state")
                if status not in ("success", "DONE"):
                    raise RuntimeError(f"anchor warm-up of {service} failed: {event.payload}")
                break

        await asyncio.gather(*(one(s) for s in services))

    return warm_up


def poke(count: int, result_path: str) -> None:
    """Wall and CPU per ``DataprocJobSensor.poke`` on a running job (the sensor as it is)."""
    from airflow.providers.google.cloud.sensors.dataproc import DataprocJobSensor

    sensor = DataprocJobSensor(
        task_id="poke", dataproc_job_id="poke-dataproc", region=REGION, project_id=PROJECT
    )
    for _ in range(5):
        sensor.poke({})
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    for _ in range(count):
        if sensor.poke({}):
            raise RuntimeError("the poke job finished early")
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    write_json(result_path, {"dataproc (google provider)": {"wall": wall / count, "cpu": cpu / count}})


if __name__ == "__main__":
    set_connection()
    patch_channels()
    if sys.argv[1] == "fleet":
        fleet_main(make_trigger, warm_up_for(sys.argv[2].split(",")), sys.argv[3:])
    elif sys.argv[1] == "poke":
        poke(int(sys.argv[2]), sys.argv[3])
    else:
        raise SystemExit(__doc__)
