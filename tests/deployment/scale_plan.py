"""What the scale scenario runs (test_scale.py, benchmarks/deployment_scale.py, dags/deploy_scale.py).

No Airflow import: the DAG file builds the tasks from these waits; the test and the benchmark create
the simulated jobs, hold them running until every task has deferred, release them and check every
outcome. Sizes come from the environment, so the dag-processor and the harness build the same plan.

- ``deploy_scale``: ``JOBSTATUS_DEPLOY_SCALE`` sensors (default 60, the smoke) over every sensor kind
  of plan.KINDS, each variant of plan.VARIANTS except those ending in a service error on a worker.
  They start in the triggerer (no worker start) and end there. With ``JOBSTATUS_DEPLOY_SCALE_DAG_SIZE``
  they are split into DAGs of that many (``deploy_scale_00``, …), one run each.
- ``deploy_scale_dataproc``: ``JOBSTATUS_DEPLOY_SCALE_DATAPROC`` of this provider's Dataproc sensors.
- ``deploy_scale_google``: as many of the Google provider's ``DataprocSubmitJobOperator(deferrable=True)``
  (when apache-airflow-providers-google is installed): submitted on a worker, then deferred, resumed on
  a worker; ``deploy_scale_google_direct`` the same with its ``start_from_trigger=True`` (submitted from
  the triggerer, resumed on a worker). Google's
  Dataproc sensor has no deferrable mode; its deferrable Dataflow sensor reads the job over REST on the
  worker first, which the simulator does not serve (it serves Dataflow over gRPC).
"""

from __future__ import annotations

import os

from tests.deployment.plan import KINDS, SERVICE, VARIANTS, Variant, Wait

SCALE = int(os.environ.get("JOBSTATUS_DEPLOY_SCALE", "60"))
SCALE_DATAPROC = int(os.environ.get("JOBSTATUS_DEPLOY_SCALE_DATAPROC", "20"))
#: Poll interval of every scale wait, seconds (10 s: docs/deployment.md's sizing table).
SCALE_POLL = float(os.environ.get("JOBSTATUS_DEPLOY_SCALE_POLL", "10"))
#: Sensors per DAG of the scale waits (0: all in one DAG, ``deploy_scale``). Airflow 3.3 deserializes a
#: task's whole DAG in the triggerer for every trigger it starts there (``TriggerRunner.create_runtime_ti``:
#: 241 ms for a DAG of 2,000 sensors, 4.3 ms for 100), so starting N sensors of one DAG costs O(N²).
SCALE_DAG_SIZE = int(os.environ.get("JOBSTATUS_DEPLOY_SCALE_DAG_SIZE", "0"))
SENSOR_KINDS = tuple(k for k in KINDS if k not in SERVICE)
#: The Dataproc outcomes both providers' Dataproc waits report the same way (no soft_fail, no faults).
DATAPROC_VARIANTS = tuple(v for v in VARIANTS["dataproc"] if v.name in ("ok", "error", "cancelled"))


def _variants(kind: str) -> tuple[Variant, ...]:
    # A burst longer than the error budget ends the wait on a worker, to raise there (README lifecycle).
    return tuple(v for v in VARIANTS[kind] if v.faults < 100)


def _job_id(prefix: str, kind: str, i: int, numeric_base: int) -> str:
    if kind in ("vertex_ai", "dli_flink"):  # integer job ids
        return str(numeric_base + i)
    return f"{prefix}-{i:05d}-{kind.replace('_', '-')}"


def scale_waits(size: int = SCALE, poll: float = SCALE_POLL) -> list[Wait]:
    """``size`` sensors round-robin over the sensor kinds and their variants; jobs run 2-14 s after release."""
    waits = []
    for i in range(size):
        kind = SENSOR_KINDS[i % len(SENSOR_KINDS)]
        variants = _variants(kind)
        variant = variants[(i // len(SENSOR_KINDS)) % len(variants)]
        job_id = _job_id("scale", kind, i, 4_200_000_000)
        waits.append(Wait(f"{kind}_{i:05d}_{variant.name}", kind, variant, job_id, 2.0 + 3.0 * (i % 5), poll))
    return waits


def scale_dags(waits: list[Wait] | None = None, size: int = SCALE_DAG_SIZE) -> dict[str, list[Wait]]:
    """The scale waits by DAG: ``deploy_scale`` alone, or DAGs of ``size`` (``deploy_scale_00``, …)."""
    waits = SCALE_WAITS if waits is None else waits
    if size <= 0 or size >= len(waits):
        return {"deploy_scale": waits}
    return {f"deploy_scale_{k // size:02d}": waits[k : k + size] for k in range(0, len(waits), size)}


def dataproc_waits(prefix: str, size: int = SCALE_DATAPROC, poll: float = SCALE_POLL) -> list[Wait]:
    """``size`` Dataproc waits over DATAPROC_VARIANTS (the comparison's: ours and the Google provider's)."""
    return [
        Wait(
            f"dataproc_{i:05d}_{v.name}",
            "dataproc",
            v,
            f"{prefix}-{i:05d}",
            2.0 + 3.0 * (i % 5),
            poll,
        )
        for i in range(size)
        for v in (DATAPROC_VARIANTS[i % len(DATAPROC_VARIANTS)],)
    ]


SCALE_WAITS = scale_waits()
DATAPROC_OURS = dataproc_waits("scale-ours")
DATAPROC_GOOGLE = dataproc_waits("scale-google")
DATAPROC_GOOGLE_DIRECT = dataproc_waits("scale-gdirect")
