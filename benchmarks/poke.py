"""Our poke cost: wall and CPU per sync ``get_status`` through one reused hook, per service.

Usage: poke.py SERVICES COUNT RESULT_FILE (jobs ``poke-<service>`` must be running in the simulator).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cpu_seconds, write_json
from plan import REGION, job_ref

from airflow_jobstatus.hooks.base import make_hook
from airflow_jobstatus.services import get_service

WARM_UP = 5


def measure(call: Callable[[], Any], count: int) -> dict[str, float]:
    """Mean wall and CPU seconds of ``call`` over ``count`` runs, after a warm-up."""
    for _ in range(WARM_UP):
        call()
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    for _ in range(count):
        call()
    return {"wall": (time.perf_counter() - t0) / count, "cpu": (cpu_seconds() - cpu0) / count}


def get_status(service: str) -> Callable[[], Any]:
    """One sync status read through a hook built once and reused."""
    hook = make_hook(service)
    ref = get_service(service).ref(job_ref(service, f"poke-{service}"))
    return lambda: hook.get_status(ref)


def sensor_poke() -> Callable[[], Any]:
    """Our DataprocJobStatusSensor.poke, the same shape as the provider's DataprocJobSensor.poke."""
    from airflow_jobstatus.sensors import DataprocJobStatusSensor

    sensor = DataprocJobStatusSensor(task_id="poke", job_id="poke-dataproc", region=REGION)

    def call() -> None:
        if sensor.poke({}) is not False:  # type: ignore[arg-type]
            raise RuntimeError("the poke job finished early")

    return call


def main(services: list[str], count: int, result_path: str) -> None:
    results: dict[str, dict[str, float]] = {}
    for service in services:
        results[f"{service} (get_status)"] = measure(get_status(service), count)
    results["dataproc (sensor.poke)"] = measure(sensor_poke(), count)
    write_json(result_path, results)


if __name__ == "__main__":
    main(sys.argv[1].split(","), int(sys.argv[2]), sys.argv[3])
