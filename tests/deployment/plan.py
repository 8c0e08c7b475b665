"""What the deployment scenarios run: one ``Wait`` per task, shared by the DAG file and the tests.

No Airflow import here: the DAG file (``dags/deploy_dags.py``) turns each Wait into a sensor or an
operator; the tests create the simulated jobs, release them and check every outcome against it.

A fleet's jobs are *held* in a running state until every task has deferred, then *released*: each
job runs on for a few seconds and ends in its variant's terminal state (with a burst of transient
errors for some). Holding first makes "every wait is deferred" true on any machine, however slow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

#: Poll interval of every fleet wait (sensor poke_interval, operator poll_interval), seconds.
POLL = 5.0
#: The race scenario (see docs/deployment.md). A race task's first attempt lingers RACE_EXIT_DELAY s
#: after it deferred (an atexit sleep), so the scheduler reads the worker's exit that late, as a busy
#: scheduler does (the example DAG hit the race under `airflow standalone` on SQLite); its resumed
#: attempt takes RACE_RUN_DELAY s to start, so it is still queued or running when that exit is read.
#: A trigger that first reads one poll interval (RACE_POLL) after the task's own read fires after it.
RACE_EXIT_DELAY = 12.0
RACE_RUN_DELAY = 15.0
RACE_POLL = 25.0
#: 200 waits take about 8 minutes alone on the shared 2-core machine; 100 keeps `make test-deployment`
#: under 10 minutes there (JOBSTATUS_DEPLOY_FLEET=200 runs the full fleet; docs/deployment.md).
FLEET_SIZE = int(os.environ.get("JOBSTATUS_DEPLOY_FLEET", "100"))
FAILOVER_SIZE = int(os.environ.get("JOBSTATUS_DEPLOY_FAILOVER", "100"))
RACE_SIZE = int(os.environ.get("JOBSTATUS_DEPLOY_RACE", "5"))

KINDS = (
    "dataproc",
    "dataflow",
    "vertex_ai",
    "cdm",
    "dli",
    "cdm_op",
    "dli_op",
    "dataproc_batch",
    "vertex_pipeline",
    "dli_flink",
)
SERVICE = {"cdm_op": "cdm", "dli_op": "dli"}
#: The state a held job reports until it is released.
RUNNING = {
    "dataproc": {"state": "RUNNING"},
    "dataflow": {"state": "JOB_STATE_RUNNING"},
    "vertex_ai": {"state": "JOB_STATE_RUNNING"},
    "cdm": {"state": "RUNNING", "progress": 40},
    "dli": {"state": "RUNNING", "progress": 0.4},
    "dataproc_batch": {"state": "RUNNING", "approximate_usage": {"milli_dcu_seconds": 60000}},
    "dli_flink": {"state": "job_running", "status_desc": "running", "restart_times": 0},
    "vertex_pipeline": {
        "state": "PIPELINE_STATE_RUNNING",
        "task_details": [{"task_name": "t", "state": "RUNNING"}],
    },
}
TRANSIENT = {
    "dataproc": "grpc_unavailable",
    "dataflow": "grpc_unavailable",
    "vertex_ai": "grpc_resource_exhausted",
    "dataproc_batch": "grpc_unavailable",
    "vertex_pipeline": "grpc_deadline_exceeded",
}
CDM_CLUSTER = "sim-cluster"


@dataclass(frozen=True)
class Variant:
    """One outcome: the terminal phase, the task's extra arguments, and the documented TI state."""

    name: str
    terminal: dict[str, Any]
    expected: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    faults: int = 0  # transient errors injected on release (the wait rides them out)


def _v(name: str, state: str, expected: str, faults: int = 0, **kwargs: Any) -> Variant:
    terminal: dict[str, Any] = {"state": state}
    return Variant(name, terminal, expected, kwargs, faults)


CDM_DONE = {"state": "SUCCEEDED", "progress": 100, "counters": {"rows_read": 1000, "rows_written": 990}}
CDM_FAILED = {"state": "FAILED", "progress": -1, "error_summary": "Table orders does not exist"}

VARIANTS: dict[str, tuple[Variant, ...]] = {
    "dataproc": (
        _v("ok", "DONE", "success"),
        Variant("error", {"state": "ERROR", "details": "Task failed: OOM"}, "failed"),
        _v("transient", "DONE", "success", faults=3),
        _v("cancelled", "CANCELLED", "failed"),
        Variant("soft_fail", {"state": "ERROR", "details": "bad input"}, "skipped", {"soft_fail": True}),
    ),
    "dataflow": (
        _v("ok", "JOB_STATE_DONE", "success"),
        _v("drained", "JOB_STATE_DRAINED", "success"),
        _v("drained_strict", "JOB_STATE_DRAINED", "failed", success_states=["SUCCEEDED"]),
        _v("failed", "JOB_STATE_FAILED", "failed"),
        _v("transient", "JOB_STATE_DONE", "success", faults=3),
    ),
    "vertex_ai": (
        _v("ok", "JOB_STATE_SUCCEEDED", "success"),
        _v("partial", "JOB_STATE_PARTIALLY_SUCCEEDED", "failed"),
        _v(
            "partial_ok",
            "JOB_STATE_PARTIALLY_SUCCEEDED",
            "success",
            success_states=["SUCCEEDED", "PARTIALLY_SUCCEEDED"],
        ),
        Variant("failed", {"state": "JOB_STATE_FAILED", "error": "quota exceeded"}, "failed"),
        _v("transient", "JOB_STATE_SUCCEEDED", "success", faults=3),
    ),
    "cdm": (
        Variant("ok", CDM_DONE, "success"),
        Variant("failed", CDM_FAILED, "failed"),
        Variant("transient", CDM_DONE, "success", faults=3),
        # A burst longer than the error budget: the wait gives up with the last error.
        Variant("budget", CDM_DONE, "failed", {"error_budget": 3.0}, faults=1000),
    ),
    "dli": (
        Variant("ok", {"state": "FINISHED", "progress": 1}, "success"),
        Variant("failed", {"state": "FAILED", "message": "Syntax error"}, "failed"),
        Variant("transient", {"state": "FINISHED", "progress": 1}, "success", faults=3),
        _v("cancelled", "CANCELLED", "failed"),
    ),
    "cdm_op": (
        Variant("ok", CDM_DONE, "success"),
        Variant("failed", CDM_FAILED, "failed"),
        Variant("transient", CDM_DONE, "success", faults=2),
    ),
    "dli_op": (
        Variant("ok", {"state": "FINISHED", "progress": 1}, "success"),
        Variant("failed", {"state": "FAILED", "message": "Table not found"}, "failed"),
        Variant("transient", {"state": "FINISHED", "progress": 1}, "success", faults=2),
    ),
    "dataproc_batch": (
        _v("ok", "SUCCEEDED", "success"),
        Variant("failed", {"state": "FAILED", "state_message": "Driver exited 1"}, "failed"),
        _v("transient", "SUCCEEDED", "success", faults=3),
        _v("cancelled", "CANCELLED", "skipped", soft_fail=True),
    ),
    "vertex_pipeline": (
        _v("ok", "PIPELINE_STATE_SUCCEEDED", "success"),
        Variant("failed", {"state": "PIPELINE_STATE_FAILED", "error": "Task train failed"}, "failed"),
        _v("transient", "PIPELINE_STATE_SUCCEEDED", "success", faults=3),
        _v("cancelled", "PIPELINE_STATE_CANCELLED", "failed"),
    ),
    # Flink streaming jobs, held running: waits for their end (a wait for RUNNING would not defer).
    "dli_flink": (
        _v("ok", "job_finish", "success"),
        Variant("died", {"state": "job_running_exception", "status_desc": "TaskManager lost"}, "failed"),
        _v("transient", "job_finish", "success", faults=3),
        _v("stopped", "job_cancel_success", "skipped", soft_fail=True),
    ),
}


@dataclass(frozen=True)
class Wait:
    """One deferred wait: a sensor on a job the test creates, or an operator that starts its own."""

    task_id: str
    kind: str
    variant: Variant
    job_id: str  # the job id; a CDM job name; for dli_op the marker in its SQL
    run_for: float  # seconds the job keeps running after its release
    poll: float = POLL

    @property
    def service(self) -> str:
        return SERVICE.get(self.kind, self.kind)

    @property
    def is_operator(self) -> bool:
        return self.kind in SERVICE

    @property
    def fault_kind(self) -> str:
        return TRANSIENT.get(self.service, "http_503")

    @property
    def sql(self) -> str:
        return f"SELECT '{self.job_id}' AS marker"

    def release_timeline(self) -> list[dict[str, Any]]:
        return [{**RUNNING[self.service], "duration": self.run_for}, dict(self.variant.terminal)]


def fleet(prefix: str, size: int, vertex_base: int, poll: float = POLL) -> list[Wait]:
    """``size`` waits spread round-robin over the five services (sensors) and both operators."""
    waits = []
    for i in range(size):
        kind = KINDS[i % len(KINDS)]
        variants = VARIANTS[kind]
        variant = variants[(i // len(KINDS)) % len(variants)]
        task_id = f"{kind}_{i:03d}_{variant.name}"
        numeric = kind in ("vertex_ai", "dli_flink")  # Vertex AI and DLI Flink job ids are integers
        job_id = str(vertex_base + i) if numeric else f"{prefix}-{i:03d}-{kind.replace('_', '-')}"
        waits.append(Wait(task_id, kind, variant, job_id, run_for=2.0 + 3.0 * (i % 5), poll=poll))
    return waits


def race(prefix: str, size: int) -> list[Wait]:
    """Sensors whose job is done by the trigger's first read, right after the task's own read."""
    done = {"dataproc": "DONE", "dataflow": "JOB_STATE_DONE", "vertex_ai": "JOB_STATE_SUCCEEDED"}
    services = ("dataproc", "dataflow", "vertex_ai", "cdm", "dli")
    waits = []
    for i in range(size):
        service = services[i % len(services)]
        terminal = (
            CDM_DONE
            if service == "cdm"
            else {"state": "FINISHED", "progress": 1}
            if service == "dli"
            else {"state": done[service]}
        )
        job_id = (
            str(5_000_000_000 + i)
            if service == "vertex_ai"
            else f"{prefix}-{i:03d}-{service.replace('_', '-')}"
        )
        waits.append(
            Wait(f"{service}_{i:03d}", service, Variant("race", terminal, "success"), job_id, 0.0, RACE_POLL)
        )
    return waits


FLEET = fleet("fleet", FLEET_SIZE, vertex_base=4_000_000_000)
FAILOVER = fleet("failover", FAILOVER_SIZE, vertex_base=4_100_000_000)
RACE = race("race", RACE_SIZE)
