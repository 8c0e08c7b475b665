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
from collections.abc import Mapping, Sequence
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


#: (dag_id, run_id) of each DAG run a scenario triggered.
Runs = list[tuple[str, str]]


def worker_runs(af: Airflow, dag_ids: Sequence[str]) -> int:
    """Task runs on a worker: the scheduler logs one executor event per run it reads back."""
    text = (af.home / "logs-components" / "scheduler.log").read_text(errors="replace")
    return sum(
        len(
            re.findall(
                rf"Received executor event with state \w+ for task instance TaskInstanceKey\(dag_id='{dag_id}'",
                text,
            )
        )
        for dag_id in dag_ids
    )


def _in_runs(runs: Runs, alias: str = "ti") -> tuple[str, list[str]]:
    """A WHERE clause matching the task instances of ``runs``, and its parameters."""
    pairs = ", ".join(["(%s, %s)"] * len(runs))
    return f"({alias}.dag_id, {alias}.run_id) IN (VALUES {pairs})", [x for run in runs for x in run]


def _query(af: Airflow, sql: str, runs: Runs) -> list[Any]:
    where, params = _in_runs(runs)
    return list(af.db.query(sql.format(runs=where), *params))


def started_on_a_worker(af: Airflow, runs: Runs) -> int:
    rows = _query(
        af,
        "SELECT count(*) FROM task_instance ti WHERE {runs} "
        "AND (ti.queued_dttm IS NOT NULL OR ti.pid IS NOT NULL OR ti.hostname <> '')",
        runs,
    )
    return int(rows[0][0])


def triggers_per_triggerer(af: Airflow, runs: Runs) -> dict[str, int]:
    rows = _query(
        af,
        "SELECT t.triggerer_id, count(*) FROM task_instance ti JOIN trigger t ON ti.trigger_id = t.id "
        "WHERE {runs} GROUP BY t.triggerer_id",
        runs,
    )
    names = {job: name for name, job in af.triggerer_jobs.items()}
    return {names.get(job, str(job)): int(n) for job, n in rows}


def state_counts(af: Airflow, runs: Runs) -> Counter[str | None]:
    return Counter(
        {
            state: int(n)
            for state, n in _query(
                af, "SELECT ti.state, count(*) FROM task_instance ti WHERE {runs} GROUP BY ti.state", runs
            )
        }
    )


def run_scale(
    af: Airflow,
    dags: Mapping[str, list[Wait]],
    *,
    submitted: bool = False,
    hold_polls: int = 3,
    defer_timeout: float = 600.0,
    finish_timeout: float = 600.0,
) -> dict[str, Any]:
    """Hold every job running, run each DAG of ``dags`` (its waits), wait until every wait is deferred and
    runs in a triggerer, one interval (each has polled), ``hold_polls`` intervals more (the steady state),
    release, wait for the end; check and measure.

    ``submitted``: the tasks submit their own Dataproc jobs (the Google operator), created running."""
    sim = af.sim
    waits = [w for ws in dags.values() for w in ws]
    poll = waits[0].poll
    if submitted:
        sim.default_timeline("dataproc", [cast("dict[str, Any]", RUNNING["dataproc"])])
    else:
        hold(sim, waits)
    procs = {n: af.procs[n] for n in SAMPLED if n in af.procs} | {"simulator": sim.proc}
    runs_before = worker_runs(af, list(dags))
    with Sampler(procs) as sampler:
        wall0 = time.time()
        runs: Runs = [(dag_id, af.trigger(dag_id)) for dag_id in dags]

        def all_deferred() -> bool:
            af.check_alive()
            counts = state_counts(af, runs)
            early = {s: n for s, n in counts.items() if s in TERMINAL_TI or s == "up_for_retry"}
            if early:
                pytest.fail(f"tasks ended before their jobs were released: {early}\n{af.diagnostics()}")
            return counts.get("deferred", 0) == len(waits)

        wait_for(f"all {len(waits)} tasks to defer", all_deferred, defer_timeout, 1, af.diagnostics)
        sampler.mark("all_deferred")
        deferred_s = time.time() - wall0

        def all_assigned() -> bool:
            af.check_alive()
            rows = _query(
                af,
                "SELECT count(*) FROM task_instance ti JOIN trigger t ON ti.trigger_id = t.id "
                "WHERE {runs} AND t.triggerer_id IS NOT NULL",
                runs,
            )
            return int(rows[0][0]) == len(waits)

        wait_for("every trigger to run in a triggerer", all_assigned, defer_timeout, 1, af.diagnostics)
        sampler.mark("all_assigned")
        assigned_s = time.time() - wall0
        time.sleep(poll + 2.0)  # every trigger has polled once (coalesced or not)
        sampler.mark("held")
        held_from = time.time()
        assigned = triggers_per_triggerer(af, runs)
        time.sleep(hold_polls * poll)
        held_to = time.time()
        sampler.mark("released")
        released = {}
        for w in waits:
            released[w.task_id] = sim.release(w.service, w.job_id, w.release_timeline())
            if w.variant.faults:
                sim.fault(w.fault_kind, w.variant.faults, w.service, w.job_id)
        run_states = [wait_finished(af, dag_id, run_id, finish_timeout) for dag_id, run_id in runs]
        run_s = time.time() - wall0
    assert all(state in ("success", "failed") for state in run_states), run_states
    states: dict[str, str | None] = {}
    for dag_id, run_id in runs:
        states.update(af.states(dag_id, run_id))
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
        for task, end in _query(
            af, "SELECT ti.task_id, extract(epoch FROM ti.end_date) FROM task_instance ti WHERE {runs}", runs
        )
    }
    detection = [ends[w.task_id] - released[w.task_id]["terminal_at"] for w in waits]
    clean = [ends[w.task_id] - released[w.task_id]["terminal_at"] for w in waits if not w.variant.faults]
    db_deferred = _query(
        af,
        "SELECT extract(epoch FROM max(ti.start_date) - min(dr.start_date)) FROM task_instance ti "
        "JOIN dag_run dr ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id WHERE {runs}",
        runs,
    )[0][0]
    window_polls = len(waits) * (held_to - held_from) / poll
    return {
        "runs": [list(run) for run in runs],
        "waits": len(waits),
        "dags": len(runs),
        "poll_s": poll,
        "outcomes": dict(Counter(str(v) for v in states.values())),
        "tis_started_on_a_worker": started_on_a_worker(af, runs),
        "worker_runs": worker_runs(af, list(dags)) - runs_before,
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
    metrics = run_scale(af, {"deploy_scale": SCALE_WAITS}, hold_polls=2)
    ((dag_id, run_id),) = metrics.pop("runs")
    metrics["sensor_worker_starts"] = check_sensors_never_on_a_worker(af, dag_id, run_id, set())
    assert metrics["tis_started_on_a_worker"] == 0, metrics
    assert metrics["worker_runs"] == 0, metrics
    METRICS["scale"] = metrics
