"""The scale scenario, small: one DAG run of deferrable sensors over every service, started in the triggerer.

``make test-deployment`` runs it at ``JOBSTATUS_DEPLOY_SCALE`` (60) waits against the session's
deployment; ``make bench-deployment`` (benchmarks/deployment_scale.py) runs the same functions at 2,000
in a deployment of its own, beside the Google provider's Dataproc operator. Asserts every outcome and
0 worker starts; the figures (deferral time, CPU/RSS per triggerer, calls per wait per poll, detection
latency) are reported, never asserted.
"""

from __future__ import annotations

import re
import statistics
import time
from collections import Counter
from typing import Any, cast

import pytest

from tests.deployment.harness import METRICS, Airflow, Sampler, wait_for
from tests.deployment.plan import RUNNING, Wait
from tests.deployment.scale_plan import SCALE_WAITS
from tests.deployment.test_deployment import (
    TERMINAL_TI,
    CallLog,
    check_sensors_never_on_a_worker,
    hold,
    wait_finished,
)

pytestmark = [pytest.mark.deployment, pytest.mark.timeout(900)]

SAMPLED = ("triggerer-1", "triggerer-2", "scheduler", "api-server", "dag-processor")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 2)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 2)


def worker_runs(af: Airflow, dag_id: str) -> int:
    """Task runs on a worker: the scheduler logs one executor event per run it reads back."""
    text = (af.home / "logs-components" / "scheduler.log").read_text(errors="replace")
    return len(
        re.findall(
            rf"Received executor event with state \w+ for task instance TaskInstanceKey\(dag_id='{dag_id}'",
            text,
        )
    )


def started_on_a_worker(af: Airflow, dag_id: str, run_id: str) -> int:
    rows = af.db.query(
        "SELECT count(*) FROM task_instance WHERE dag_id = %s AND run_id = %s "
        "AND (queued_dttm IS NOT NULL OR pid IS NOT NULL OR hostname <> '')",
        dag_id,
        run_id,
    )
    return int(rows[0][0])


def triggers_per_triggerer(af: Airflow, dag_id: str, run_id: str) -> dict[str, int]:
    rows = af.db.query(
        "SELECT t.triggerer_id, count(*) FROM task_instance ti JOIN trigger t ON ti.trigger_id = t.id "
        "WHERE ti.dag_id = %s AND ti.run_id = %s GROUP BY t.triggerer_id",
        dag_id,
        run_id,
    )
    names = {job: name for name, job in af.triggerer_jobs.items()}
    return {names.get(job, str(job)): int(n) for job, n in rows}


def run_scale(
    af: Airflow,
    dag_id: str,
    waits: list[Wait],
    *,
    submitted: bool = False,
    hold_polls: int = 3,
    defer_timeout: float = 600.0,
    finish_timeout: float = 600.0,
) -> dict[str, Any]:
    """Hold every job running, run ``dag_id``, wait until every wait is deferred and runs in a triggerer,
    one interval (each has polled), ``hold_polls`` intervals more (the steady state), release, wait for the end; check and measure.

    ``submitted``: the tasks submit their own Dataproc jobs (the Google operator), created running."""
    sim = af.sim
    poll = waits[0].poll
    if submitted:
        sim.default_timeline("dataproc", [cast("dict[str, Any]", RUNNING["dataproc"])])
    else:
        hold(sim, waits)
    procs = {n: af.procs[n] for n in SAMPLED if n in af.procs} | {"simulator": sim.proc}
    runs_before = worker_runs(af, dag_id)
    with Sampler(procs) as sampler:
        wall0 = time.time()
        run_id = af.trigger(dag_id)

        def all_deferred() -> bool:
            af.check_alive()
            counts = af.state_counts(dag_id, run_id)
            early = {s: n for s, n in counts.items() if s in TERMINAL_TI or s == "up_for_retry"}
            if early:
                pytest.fail(f"tasks ended before their jobs were released: {early}\n{af.diagnostics()}")
            return counts.get("deferred", 0) == len(waits)

        wait_for(f"all {len(waits)} tasks to defer", all_deferred, defer_timeout, 1, af.diagnostics)
        sampler.mark("all_deferred")
        deferred_s = time.time() - wall0

        def all_assigned() -> bool:
            af.check_alive()
            rows = af.db.query(
                "SELECT count(*) FROM task_instance ti JOIN trigger t ON ti.trigger_id = t.id "
                "WHERE ti.dag_id = %s AND ti.run_id = %s AND t.triggerer_id IS NOT NULL",
                dag_id,
                run_id,
            )
            return int(rows[0][0]) == len(waits)

        wait_for("every trigger to run in a triggerer", all_assigned, defer_timeout, 1, af.diagnostics)
        sampler.mark("all_assigned")
        assigned_s = time.time() - wall0
        time.sleep(poll + 2.0)  # every trigger has polled once (coalesced or not)
        sampler.mark("held")
        held_from = time.time()
        assigned = triggers_per_triggerer(af, dag_id, run_id)
        time.sleep(hold_polls * poll)
        held_to = time.time()
        sampler.mark("released")
        released = {}
        for w in waits:
            released[w.task_id] = sim.release(w.service, w.job_id, w.release_timeline())
            if w.variant.faults:
                sim.fault(w.fault_kind, w.variant.faults, w.service, w.job_id)
        state = wait_finished(af, dag_id, run_id, finish_timeout)
        run_s = time.time() - wall0
    assert state in ("success", "failed"), state
    states = af.states(dag_id, run_id)
    wrong = {
        w.task_id: f"{states.get(w.task_id)} (expected {w.variant.expected})"
        for w in waits
        if states.get(w.task_id) != w.variant.expected
    }
    assert not wrong, f"{len(wrong)} of {len(waits)} tasks not in their documented state: {wrong}"
    calls = [c for c in CallLog.read(sim).calls if c["time"] >= wall0]
    in_hold = [c for c in calls if held_from <= c["time"] < held_to]
    method_calls = dict(Counter(c["method"] for c in calls))
    ends = {
        task: float(end)
        for task, end in af.db.query(
            "SELECT task_id, extract(epoch FROM end_date) FROM task_instance WHERE dag_id = %s AND run_id = %s",
            dag_id,
            run_id,
        )
    }
    detection = [ends[w.task_id] - released[w.task_id]["terminal_at"] for w in waits]
    clean = [ends[w.task_id] - released[w.task_id]["terminal_at"] for w in waits if not w.variant.faults]
    db_deferred = af.db.query(
        "SELECT extract(epoch FROM max(ti.start_date) - min(dr.start_date)) FROM task_instance ti "
        "JOIN dag_run dr ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id "
        "WHERE ti.dag_id = %s AND ti.run_id = %s",
        dag_id,
        run_id,
    )[0][0]
    window_polls = len(waits) * (held_to - held_from) / poll
    return {
        "run_id": run_id,
        "waits": len(waits),
        "poll_s": poll,
        "outcomes": dict(Counter(str(v) for v in states.values())),
        "tis_started_on_a_worker": started_on_a_worker(af, dag_id, run_id),
        "worker_runs": worker_runs(af, dag_id) - runs_before,
        "trigger_to_all_deferred_s": round(deferred_s, 1),
        "run_start_to_last_deferral_db_s": round(float(db_deferred or 0), 1),
        "trigger_to_all_in_a_triggerer_s": round(assigned_s, 1),
        "triggers_per_triggerer": assigned,
        "held_s": round(held_to - held_from, 1),
        "calls_per_wait_per_poll_held": round(len(in_hold) / window_polls, 3),
        "calls_by_method_held": dict(Counter(c["method"] for c in in_hold)),
        "calls_by_method": method_calls,
        # From the job's end (the simulator's terminal time) to the task instance's end_date.
        "job_end_to_ti_end_s_p50_p99_max": [
            percentile(detection, 50),
            percentile(detection, 99),
            round(max(detection), 2) if detection else None,
        ],
        # The same without the waits given transient errors after release (each rides out 3, backing off).
        "job_end_to_ti_end_no_faults_s_p50_p99_max": [
            percentile(clean, 50),
            percentile(clean, 99),
            round(max(clean), 2) if clean else None,
        ],
        "release_to_finish_s": round(run_s - (held_to - wall0), 1),
        "run_s": round(run_s, 1),
        "resources": sampler.summary(),
    }


def test_scale_smoke(deployment: Airflow) -> None:
    """JOBSTATUS_DEPLOY_SCALE sensors over every service in one run: every outcome as documented, and not
    one task on a worker (they start and end in a triggerer)."""
    af = deployment
    wait_for(
        "deploy_scale to be parsed",
        lambda: af.api.get("/dags/deploy_scale").status_code == 200,
        300,
        2,
        af.diagnostics,
    )
    metrics = run_scale(af, "deploy_scale", SCALE_WAITS, hold_polls=2)
    metrics["sensor_worker_starts"] = check_sensors_never_on_a_worker(
        af, "deploy_scale", metrics.pop("run_id"), set()
    )
    assert metrics["tis_started_on_a_worker"] == 0, metrics
    assert metrics["worker_runs"] == 0, metrics
    METRICS["scale"] = metrics
