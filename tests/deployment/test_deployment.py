"""The provider in a real deployment: PostgreSQL, a scheduler (LocalExecutor), a dag-processor, an
api-server and two triggerers as separate processes, with the simulator in its own process.

Outcomes come from the REST API and the metadata DB, call counts from the simulator's call log.
Every wait is checked against README "Behaviour"; see docs/deployment.md for what this proves.
"""

from __future__ import annotations

import itertools
import math
import os
import signal
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil
import pytest

from tests.deployment.conftest import TRIGGERER_HEALTH_CHECK_THRESHOLD, TRIGGERER_HEARTBEAT
from tests.deployment.harness import METRICS, Airflow, SimProc, wait_for
from tests.deployment.plan import CDM_CLUSTER, CDM_DONE, FAILOVER, FLEET, RACE, RUNNING, Wait

pytestmark = [pytest.mark.deployment, pytest.mark.timeout(900)]

#: Generous deadlines: the machine is small and shared. Nothing asserts how fast anything was.
DEFER_TIMEOUT = 420.0
FINISH_TIMEOUT = 360.0
TERMINAL_TI = {"success", "failed", "skipped", "upstream_failed", "removed"}
CANCELS = {"cdm": "StopJob", "dli": "CancelSqlJob"}
DONE = {"cdm": CDM_DONE, "dli": {"state": "FINISHED", "progress": 1}}
#: Triggers of tasks: the example DAGs' asset watchers hold triggers of their own for as long as they run.
TASK_TRIGGERS = "SELECT count(*) FROM trigger t WHERE t.id NOT IN (SELECT trigger_id FROM asset_watcher)"


def is_read(method: str) -> bool:
    return method.startswith(("Get", "Show"))


def job_key(call: dict[str, Any]) -> tuple[str, str]:
    job = str(call["job_id"] or "")
    return call["service"], job.rpartition("/")[2] if call["service"] == "cdm" else job


def sql_of(call: dict[str, Any]) -> str:
    body = (call.get("detail") or {}).get("body") or {}
    return str(body.get("sql") or "")


@dataclass
class CallLog:
    """The simulator's calls, grouped by job (a CDM job by its name)."""

    calls: list[dict[str, Any]]
    by_job: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    def __post_init__(self) -> None:
        for call in self.calls:
            self.by_job[job_key(call)].append(call)

    @classmethod
    def read(cls, sim: SimProc) -> CallLog:
        return cls(sim.calls())

    def reads(self, service: str, job: str) -> list[float]:
        return sorted(c["time"] for c in self.by_job.get((service, job), []) if is_read(c["method"]))

    def count(self, service: str, job: str, method: str) -> int:
        return sum(1 for c in self.by_job.get((service, job), []) if c["method"] == method)

    def dli_submits(self, marker: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["method"] == "CreateSqlJob" and marker in sql_of(c)]

    def job_of(self, wait: Wait) -> str | None:
        """The simulator job a wait reads: its own id, or for a DLI operator the job its SQL created."""
        if wait.kind != "dli_op":
            return wait.job_id
        submits = self.dli_submits(wait.job_id)
        return str(submits[0]["job_id"]) if submits else None

    def submissions(self, wait: Wait) -> int:
        if wait.kind == "cdm_op":
            return self.count("cdm", wait.job_id, "StartJob")
        if wait.kind == "dli_op":
            return len(self.dli_submits(wait.job_id))
        return 0


def pending_faults(sim: SimProc) -> dict[tuple[str, str], int]:
    stats = sim.sim.get("/stats").json()
    out: dict[tuple[str, str], int] = defaultdict(int)
    for fault in stats["faults"]:
        out[fault["service"], str(fault["job_id"]).rpartition("/")[2]] += int(fault["count"])
    return out


def hold(sim: SimProc, waits: list[Wait]) -> None:
    """Every job of ``waits`` runs until released; operator jobs are created running by their start call."""
    sim.default_timeline("cdm", [RUNNING["cdm"]])
    sim.default_timeline("dli", [RUNNING["dli"]])
    for wait in waits:
        if wait.kind == "cdm_op":
            sim.add_job("cdm", wait.job_id, None, cluster_id=CDM_CLUSTER)
        elif not wait.is_operator:
            sim.add_job(wait.service, wait.job_id, [RUNNING[wait.service]])


def ti_summary(states: dict[str, str | None]) -> str:
    return ", ".join(f"{state}: {n}" for state, n in sorted(Counter(str(s) for s in states.values()).items()))


def wait_deferred(af: Airflow, dag_id: str, run_id: str, waits: list[Wait]) -> float:
    """Wait until every task is deferred; fail at once if one ended before its job was released."""
    started = time.monotonic()

    def all_deferred() -> bool:
        af.check_alive()
        counts = af.state_counts(dag_id, run_id)
        if any(state in TERMINAL_TI or state == "up_for_retry" for state in counts):
            early = {
                t: s for t, s in af.states(dag_id, run_id).items() if s in TERMINAL_TI or s == "up_for_retry"
            }
            pytest.fail(f"tasks ended before their jobs were released: {early}")
        return counts.get("deferred", 0) == len(waits)

    wait_for(
        f"all {len(waits)} tasks of {dag_id} to defer",
        all_deferred,
        DEFER_TIMEOUT,
        interval=3,
        on_fail=af.diagnostics,
    )
    return time.monotonic() - started


def wait_finished(af: Airflow, dag_id: str, run_id: str, timeout: float = FINISH_TIMEOUT) -> str:
    def finished() -> str | None:
        af.check_alive()
        rows = af.db.query("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", dag_id, run_id)
        return rows[0][0] if rows and rows[0][0] in ("success", "failed") else None

    return wait_for(f"{dag_id} run {run_id} to finish", finished, timeout, interval=3, on_fail=af.diagnostics)


@dataclass
class FleetResult:
    waits: list[Wait]
    run_id: str
    states: dict[str, str | None]
    log: CallLog
    released: dict[str, dict[str, float]]
    job_ids: dict[str, str]
    injected: dict[str, int]
    pending: dict[tuple[str, str], int]
    timings: dict[str, float]


def run_fleet(
    af: Airflow, dag_id: str, waits: list[Wait], while_deferred: Callable[[str], Any] | None = None
) -> FleetResult:
    """Hold every job, run the DAG, wait until all tasks are deferred, release the jobs, wait for the end."""
    sim = af.sim
    hold(sim, waits)
    t0 = time.monotonic()
    run_id = af.trigger(dag_id)
    timings = {"all_deferred_s": wait_deferred(af, dag_id, run_id, waits)}
    if while_deferred is not None:
        while_deferred(run_id)
    log = CallLog.read(sim)
    job_ids: dict[str, str] = {}
    for wait in waits:
        job = log.job_of(wait)
        assert job is not None, f"{wait.task_id}: its DLI job was never submitted"
        job_ids[wait.task_id] = job
    released, injected = {}, {}
    release_start = time.monotonic()
    for wait in waits:
        job = job_ids[wait.task_id]
        released[wait.task_id] = sim.release(wait.service, job, wait.release_timeline())
        if wait.variant.faults:
            sim.fault(wait.fault_kind, wait.variant.faults, wait.service, job)
            injected[wait.task_id] = wait.variant.faults
    state = wait_finished(af, dag_id, run_id)
    timings["release_to_finish_s"] = time.monotonic() - release_start
    timings["run_s"] = time.monotonic() - t0
    states = af.states(dag_id, run_id)
    assert state in ("success", "failed"), state
    return FleetResult(
        waits, run_id, states, CallLog.read(sim), released, job_ids, injected, pending_faults(sim), timings
    )


def check_fleet(result: FleetResult, extra_reads: Callable[[Wait], int] = lambda w: 0) -> dict[str, Any]:
    """Every task in its documented state; every job read at most once per poll interval (+1)."""
    wrong = {
        w.task_id: f"{result.states.get(w.task_id)} (expected {w.variant.expected})"
        for w in result.waits
        if result.states.get(w.task_id) != w.variant.expected
    }
    assert not wrong, f"{len(wrong)} tasks not in their documented state: {wrong}"

    ratios, over, detection = [], {}, []
    total_calls = total_min = under = 0
    for wait in result.waits:
        job = result.job_ids[wait.task_id]
        reads = result.log.reads(wait.service, job)
        assert reads, f"{wait.task_id}: job {job} was never read"
        consumed = result.injected.get(wait.task_id, 0) - result.pending.get((wait.service, job), 0)
        terminal_at = result.released[wait.task_id]["terminal_at"]
        end = min(terminal_at, reads[-1])
        # A poller reading every `poll` seconds from the first read needs this many reads to see the end.
        minimum = 1 + max(0, math.ceil((end - reads[0]) / wait.poll - 1e-6))
        # +1: a sensor's own read just before it deferred, then the trigger's immediate first read.
        allowed = minimum + 1 + consumed + extra_reads(wait)
        if len(reads) < (1 if wait.is_operator else 2):  # a sensor read its job, then its trigger did
            over[wait.task_id] = f"only {len(reads)} read(s): the trigger never read the job"
        if len(reads) > allowed:
            gaps = [round(b - a, 2) for a, b in itertools.pairwise(reads)]
            over[wait.task_id] = (
                f"{len(reads)} reads > {allowed} allowed (minimum {minimum}, faults {consumed}); gaps {gaps}"
            )
        useful = len(reads) - consumed
        under += useful < minimum - 1  # fewer reads than one per interval: a slow or restarted trigger
        ratios.append(useful / minimum)
        total_calls += useful
        total_min += minimum
        if wait.variant.expected == "success" and reads[-1] >= terminal_at:
            detection.append(reads[-1] - terminal_at)
    assert not over, f"{len(over)} jobs not read once per poll interval: {over}"
    return {
        "tasks": len(result.waits),
        "outcomes": dict(Counter(str(s) for s in result.states.values())),
        "calls_over_minimum": round(total_calls / total_min, 3),
        "calls_over_minimum_per_job_min_max": [round(min(ratios), 3), round(max(ratios), 3)],
        "jobs_read_less_than_minimum_minus_one": under,
        "detection_after_terminal_s_p50_max": [
            round(statistics.median(detection), 2),
            round(max(detection), 2),
        ]
        if detection
        else None,
        "reads_total": sum(len(result.log.reads(w.service, result.job_ids[w.task_id])) for w in result.waits),
        **{k: round(v, 1) for k, v in result.timings.items()},
    }


def check_single_submissions(result: FleetResult) -> int:
    """Every operator started exactly one job; returns the number of operator tasks checked."""
    operators = [w for w in result.waits if w.is_operator]
    duplicates = {w.task_id: result.log.submissions(w) for w in operators if result.log.submissions(w) != 1}
    assert not duplicates, f"operators that did not submit exactly one job: {duplicates}"
    return len(operators)


# ---- scenarios --------------------------------------------------------------------------------------


def test_fleet(deployment: Airflow) -> None:
    """FLEET_SIZE deferred waits over five services, sensors and both operators, mixed outcomes."""
    result = run_fleet(deployment, "deploy_fleet", FLEET)
    metrics = check_fleet(result)
    metrics["operators_single_submission"] = check_single_submissions(result)
    # A wait that ends in a service error (its error budget spent) returns to a worker by design, to
    # raise that error there (README, lifecycle table); every other sensor never touches a worker.
    service_errors = {
        w.task_id for w in result.waits if w.variant.faults > 0 and w.variant.expected == "failed"
    }
    metrics["sensor_worker_starts"] = check_sensors_never_on_a_worker(
        deployment, "deploy_fleet", result.run_id, allowed=service_errors
    )
    METRICS["fleet"] = metrics


def check_sensors_never_on_a_worker(af: Airflow, dag_id: str, run_id: str, allowed: set[str]) -> int:
    """Deferrable sensors with plain job ids start and end in the triggerer: no task instance of theirs
    was ever queued for a worker (``queued_dttm``) or ran in a worker process (``pid``, ``hostname``).
    On Airflow < 3.3 (the components' Airflow; ``renders_in_triggerer`` tells 3.3, which brought both
    the scheduler's start-from-trigger path and trigger rendering) the starts are only counted."""
    rows = af.db.query(
        "SELECT task_id, operator, queued_dttm, pid, hostname FROM task_instance "
        "WHERE dag_id = %s AND run_id = %s",
        dag_id,
        run_id,
    )
    sensors = [row for row in rows if str(row[1]).endswith("Sensor")]
    assert sensors, rows
    on_a_worker = sorted(
        task for task, _, queued, pid, host in sensors if (queued or pid or host) and task not in allowed
    )
    if not af.renders_in_triggerer:  # Airflow < 3.3: its scheduler starts every task on a worker
        return len(on_a_worker)  # the documented fallback (README): counted, not a failure
    assert not on_a_worker, f"{len(on_a_worker)} of {len(sensors)} sensors started on a worker: {on_a_worker}"
    return len(on_a_worker)


def triggers_by_triggerer(af: Airflow, dag_id: str, run_id: str) -> dict[str, int | None]:
    rows = af.db.query(
        "SELECT ti.task_id, t.triggerer_id FROM task_instance ti JOIN trigger t ON ti.trigger_id = t.id "
        "WHERE ti.dag_id = %s AND ti.run_id = %s",
        dag_id,
        run_id,
    )
    return {task_id: triggerer for task_id, triggerer in rows}


def test_triggerer_loss(deployment: Airflow) -> None:
    """SIGKILL one of two triggerers while ~100 waits are deferred: the other takes every trigger over."""
    af = deployment
    measured: dict[str, Any] = {}
    orphans: set[str] = set()

    def kill_a_triggerer(run_id: str) -> None:
        assigned = wait_for(
            "every trigger to be assigned to a triggerer",
            lambda: (
                lambda m: (
                    m if m and all(v is not None for v in m.values()) and len(m) == len(FAILOVER) else None
                )
            )(triggers_by_triggerer(af, "deploy_failover", run_id)),
            120,
        )
        by_job = Counter(assigned.values())
        victim = max(("triggerer-1", "triggerer-2"), key=lambda n: by_job.get(af.triggerer_jobs[n], 0))
        survivor = "triggerer-2" if victim == "triggerer-1" else "triggerer-1"
        victim_job, survivor_job = af.triggerer_jobs[victim], af.triggerer_jobs[survivor]
        orphans.update(t for t, j in assigned.items() if j == victim_job)
        measured["triggers_per_triggerer_before"] = {
            victim: by_job[victim_job],
            survivor: by_job[survivor_job],
        }
        killed_at_wall, killed_at = time.time(), time.monotonic()
        af.procs[victim].kill()
        af.procs[f"killed-{victim}"] = af.procs.pop(victim)
        del af.triggerer_jobs[victim]

        def all_on_survivor() -> bool:
            now = triggers_by_triggerer(af, "deploy_failover", run_id)
            return len(now) == len(FAILOVER) and all(j == survivor_job for j in now.values())

        wait_for("the survivor to take every trigger", all_on_survivor, 180, on_fail=af.diagnostics)
        measured["reassigned_in_db_s"] = round(time.monotonic() - killed_at, 1)

        def orphans_read_again() -> list[float] | None:
            log = CallLog.read(af.sim)
            firsts = []
            for wait in FAILOVER:
                if wait.task_id not in orphans:
                    continue
                job = log.job_of(wait)
                after = [t for t in log.reads(wait.service, job or "") if t > killed_at_wall]
                if not after:
                    return None
                firsts.append(after[0] - killed_at_wall)
            return firsts

        firsts = wait_for("every orphaned job to be read by the survivor", orphans_read_again, 180)
        measured["takeover_first_read_s_p50_max"] = (
            [round(statistics.median(firsts), 1), round(max(firsts), 1)] if firsts else None
        )
        measured["orphaned_waits"] = len(orphans)

    result = run_fleet(af, "deploy_failover", FAILOVER, while_deferred=kill_a_triggerer)
    # A trigger restarted by the survivor reads at once: one read more than a wait that kept its triggerer.
    metrics = check_fleet(result, extra_reads=lambda w: 1 if w.task_id in orphans else 0)
    metrics["operators_single_submission"] = check_single_submissions(result)
    metrics["health_check_threshold_s"] = TRIGGERER_HEALTH_CHECK_THRESHOLD
    METRICS["triggerer_loss"] = {**measured, **metrics}


def test_user_kill_cancels_the_started_job_once(deployment: Airflow) -> None:
    """Marking a deferred operator failed through the REST API cancels the job it started, exactly once."""
    af, sim = deployment, deployment.sim
    sim.default_timeline("cdm", [RUNNING["cdm"]])
    sim.default_timeline("dli", [RUNNING["dli"]])
    sim.add_job("cdm", "user-kill-cdm", None, cluster_id=CDM_CLUSTER)
    dag_id = "deploy_user_kill"
    run_id = af.trigger(dag_id)
    wait_for(
        "both operators to defer",
        lambda: af.state_counts(dag_id, run_id) == {"deferred": 2},
        DEFER_TIMEOUT,
        on_fail=af.diagnostics,
    )
    log = CallLog.read(sim)
    jobs = {
        "cdm_op": ("cdm", "user-kill-cdm"),
        "dli_op": ("dli", str(log.dli_submits("user-kill-dli")[0]["job_id"])),
    }
    # Airflow calls on_kill only on a trigger that runs: wait until both have read their job once. (A
    # task marked failed before any triggerer picked its trigger up is not cancelled at all.)
    wait_for(
        "both triggers to read their job",
        lambda: all(CallLog.read(sim).reads(s, j) for s, j in jobs.values()),
        120,
        on_fail=af.diagnostics,
    )
    for task_id in jobs:
        response = af.api.patch(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}", json={"new_state": "failed"}
        )
        assert response.status_code == 200, response.text
    marked = time.time()

    def cancelled() -> bool:
        log = CallLog.read(sim)
        return all(log.count(service, job, CANCELS[service]) >= 1 for service, job in jobs.values())

    wait_for("the triggerer to cancel both jobs", cancelled, 120, on_fail=af.diagnostics)
    wait_for(
        "the triggers to be removed",
        lambda: af.db.query(TASK_TRIGGERS)[0][0] == 0,
        120,
        on_fail=af.diagnostics,
    )
    time.sleep(3 * 2.0)  # three poll intervals more: a second cancel or a further read would show now
    log = CallLog.read(sim)
    counts = {task_id: log.count(service, job, CANCELS[service]) for task_id, (service, job) in jobs.items()}
    late_reads = {t: sum(1 for r in log.reads(s, j) if r > marked + 2.0) for t, (s, j) in jobs.items()}
    states = af.states(dag_id, run_id)
    sim_jobs = {(j["service"], j["job_id"]): j for j in sim.jobs()}
    assert counts == {"cdm_op": 1, "dli_op": 1}, counts
    assert states == {"cdm_op": "failed", "dli_op": "failed"}, states
    assert sim_jobs["cdm", "user-kill-cdm"]["actions"] == ["stop"]
    assert sim_jobs["dli", jobs["dli_op"][1]]["state"] == "CANCELLED"
    assert late_reads == {"cdm_op": 0, "dli_op": 0}, f"reads after the kill: {late_reads}"
    METRICS["user_kill"] = {
        "cancel_calls": counts,
        "ti_states": states,
        "submissions": {
            "cdm": log.count("cdm", "user-kill-cdm", "StartJob"),
            "dli": len(log.dli_submits("user-kill-dli")),
        },
    }


def _two_operators_on_one_triggerer(af: Airflow) -> tuple[str, dict[str, tuple[str, str]], str, str]:
    """A run of the two deferred operators, both triggers on triggerer-1 and each job read once:
    the run id, their (service, job) by task, the holder and the other triggerer."""
    sim = af.sim
    sim.default_timeline("cdm", [RUNNING["cdm"]])
    sim.default_timeline("dli", [RUNNING["dli"]])
    sim.add_job("cdm", "pause-cdm", None, cluster_id=CDM_CLUSTER)
    dag_id = "deploy_triggerer_pause"
    # Both triggers on one triggerer: the other is frozen until they are assigned.
    holder, other = "triggerer-1", "triggerer-2"
    frozen = af.procs[other].pause()
    try:
        run_id = af.trigger(dag_id)
        wait_for(
            f"both triggers to run on {holder}",
            lambda: (
                triggers_by_triggerer(af, dag_id, run_id)
                == {"cdm_op": af.triggerer_jobs[holder], "dli_op": af.triggerer_jobs[holder]}
            ),
            DEFER_TIMEOUT,
            on_fail=af.diagnostics,
        )
    finally:
        af.procs[other].resume(frozen)
    log = CallLog.read(sim)
    jobs = {
        "cdm_op": ("cdm", "pause-cdm"),
        "dli_op": ("dli", str(log.dli_submits("pause-dli")[0]["job_id"])),
    }
    wait_for(
        "both triggers to read their job",
        lambda: all(CallLog.read(sim).reads(s, j) for s, j in jobs.values()),
        120,
        on_fail=af.diagnostics,
    )
    return run_id, jobs, holder, other


def _release_and_count_cancels(
    af: Airflow, run_id: str, jobs: dict[str, tuple[str, str]]
) -> tuple[dict[str, int], dict[str, str | None]]:
    """Let both jobs succeed; the cancel calls each job got, and the tasks' final states."""
    time.sleep(3 * 2.0)  # three poll intervals more: a late cancel would show by now
    for service, job in jobs.values():
        af.sim.release(service, job, [{**RUNNING[service], "duration": 2.0}, dict(DONE[service])])
    wait_finished(af, "deploy_triggerer_pause", run_id)
    log = CallLog.read(af.sim)
    cancels = {task_id: log.count(service, job, CANCELS[service]) for task_id, (service, job) in jobs.items()}
    return cancels, af.states("deploy_triggerer_pause", run_id)


def test_triggerer_pause_does_not_cancel_jobs(deployment: Airflow) -> None:
    """A triggerer frozen past the health-check threshold (alive, no heartbeat), then resumed: the other
    triggerer takes its two deferred operators over, and no job is cancelled (only a user kill cancels)."""
    af = deployment
    run_id, jobs, holder, survivor = _two_operators_on_one_triggerer(af)
    dag_id = "deploy_triggerer_pause"
    frozen = af.procs[holder].pause()
    paused_at = time.monotonic()
    try:
        wait_for(
            f"{survivor} to take both triggers over",
            lambda: set(triggers_by_triggerer(af, dag_id, run_id).values()) == {af.triggerer_jobs[survivor]},
            180,
            on_fail=af.diagnostics,
        )
        taken_over_s = time.monotonic() - paused_at
    finally:
        af.procs[holder].resume(frozen)
    resumed = time.time()

    def holder_heartbeats() -> bool:
        rows = af.db.query(
            "SELECT extract(epoch FROM latest_heartbeat) FROM job WHERE id = %s", af.triggerer_jobs[holder]
        )
        return bool(rows) and float(rows[0][0]) > resumed + TRIGGERER_HEARTBEAT

    wait_for(f"{holder} to heartbeat again", holder_heartbeats, 120, on_fail=af.diagnostics)
    cancels, states = _release_and_count_cancels(af, run_id, jobs)
    METRICS["triggerer_pause"] = {
        "taken_over_s": round(taken_over_s, 1),
        "cancel_calls": cancels,
        "ti_states": states,
    }
    assert cancels == {"cdm_op": 0, "dli_op": 0}, f"jobs cancelled after a triggerer pause: {cancels}"
    assert states == {"cdm_op": "success", "dli_op": "success"}, states


def test_graceful_triggerer_stop_does_not_cancel_jobs(deployment: Airflow) -> None:
    """SIGTERM to the triggerer holding two deferred operators (a graceful shutdown, as in a rolling
    restart): the other triggerer takes them over, no job is cancelled and both tasks succeed."""
    af = deployment
    run_id, jobs, holder, survivor = _two_operators_on_one_triggerer(af)
    dag_id = "deploy_triggerer_pause"
    stopped_at = time.monotonic()
    af.procs[holder].stop()  # SIGTERM, then SIGKILL only if it is still there after 20 s
    # Gone on purpose (check_alive skips "killed-" names); the next scenario starts a fresh one.
    af.procs[f"killed-{holder}-sigterm"] = af.procs.pop(holder)
    del af.triggerer_jobs[holder]
    wait_for(
        f"{survivor} to take both triggers over",
        lambda: set(triggers_by_triggerer(af, dag_id, run_id).values()) == {af.triggerer_jobs[survivor]},
        180,
        on_fail=af.diagnostics,
    )
    taken_over_s = time.monotonic() - stopped_at
    cancels, states = _release_and_count_cancels(af, run_id, jobs)
    METRICS["triggerer_graceful_stop"] = {
        "taken_over_s": round(taken_over_s, 1),
        "cancel_calls": cancels,
        "ti_states": states,
    }
    assert cancels == {"cdm_op": 0, "dli_op": 0}, f"jobs cancelled by a graceful triggerer stop: {cancels}"
    assert states == {"cdm_op": "success", "dli_op": "success"}, states


def task_process(af: Airflow, dag_id: str, run_id: str, task_id: str) -> psutil.Process | None:
    """The live task process of a running TI (its ``pid``, verified to be ours and to run that TI)."""
    ti = af.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
    if ti["state"] != "running" or not ti.get("pid"):
        return None
    try:
        proc = psutil.Process(int(ti["pid"]))
        ours = os.getsid(proc.pid) == af.procs["scheduler"].pid  # a LocalExecutor worker's child
        return proc if ours and ti["id"] in " ".join(proc.cmdline()) else None
    except (psutil.Error, ProcessLookupError):
        return None


def test_worker_loss_after_submit_does_not_submit_twice(deployment: Airflow) -> None:
    """SIGKILL the task process right after its submit; the retry (retries=1) must not start a second job."""
    af, sim = deployment, deployment.sim
    timeline = {
        "cdm": [{**RUNNING["cdm"], "duration": 15}, {"state": "SUCCEEDED", "progress": 100}],
        "dli": [{**RUNNING["dli"], "duration": 15}, {"state": "FINISHED", "progress": 1}],
    }
    for service, phases in timeline.items():
        sim.default_timeline(service, phases)
    sim.add_job("cdm", "worker-loss-cdm", None, cluster_id=CDM_CLUSTER)
    dag_id = "deploy_worker_loss"
    run_id = af.trigger(dag_id)
    submitted = {
        "cdm_op": lambda log: log.count("cdm", "worker-loss-cdm", "StartJob") >= 1,
        "dli_op": lambda log: len(log.dli_submits("worker-loss-dli")) >= 1,
    }
    killed = {}
    for task_id, is_submitted in submitted.items():
        wait_for(
            f"{task_id} to submit its job",
            lambda f=is_submitted: f(CallLog.read(sim)),
            DEFER_TIMEOUT,
            interval=0.5,
            on_fail=af.diagnostics,
        )
        proc = wait_for(
            f"{task_id}'s task process",
            lambda t=task_id: task_process(af, dag_id, run_id, t),
            60,
            interval=0.5,
        )
        proc.send_signal(signal.SIGKILL)
        killed[task_id] = proc.pid
    wait_for(
        "both tasks to end",
        lambda: all(s in TERMINAL_TI for s in af.states(dag_id, run_id).values()),
        FINISH_TIMEOUT,
        on_fail=af.diagnostics,
    )
    log = CallLog.read(sim)
    submissions = {
        "cdm_op": log.count("cdm", "worker-loss-cdm", "StartJob"),
        "dli_op": len(log.dli_submits("worker-loss-dli")),
    }
    states = af.states(dag_id, run_id)
    tries = {ti["task_id"]: ti["try_number"] for ti in af.task_instances(dag_id, run_id)}
    METRICS["worker_loss"] = {
        "killed_pids": killed,
        "submissions": submissions,
        "ti_states": states,
        "try_numbers": tries,
    }
    assert submissions == {"cdm_op": 1, "dli_op": 1}, (
        f"jobs started per task: {submissions}; TI states {states}"
    )
    assert states == {"cdm_op": "success", "dli_op": "success"}, states


def test_trigger_firing_right_after_deferral(deployment: Airflow) -> None:
    """Sensors whose job is done by the trigger's first read: no 'state mismatch', every task succeeds."""
    af, sim = deployment, deployment.sim
    for wait in RACE:
        sim.add_job(wait.service, wait.job_id, [RUNNING[wait.service]])
        # The task's own read (before deferring) sees RUNNING; the next read, the trigger's first, sees the end.
        sim.flip(
            wait.service,
            wait.job_id if wait.service != "cdm" else f"{CDM_CLUSTER}/{wait.job_id}",
            2,
            [wait.variant.terminal],
        )
    dag_id = "deploy_race"
    run_id = af.trigger(dag_id)
    wait_finished(af, dag_id, run_id)
    states = af.states(dag_id, run_id)
    log = CallLog.read(sim)
    gaps = [r[1] - r[0] for w in RACE if len(r := log.reads(w.service, w.job_id)) >= 2]
    events = af.get("/eventLogs", dag_id=dag_id, run_id=run_id, event="state mismatch", limit=100)[
        "event_logs"
    ]
    mismatched = sorted({e["task_id"] for e in events})
    METRICS["first_run_race"] = {
        "tasks": len(RACE),
        "outcomes": dict(Counter(str(s) for s in states.values())),
        "state_mismatch_tasks": mismatched,
        "first_trigger_read_after_task_read_s_p50_max": [
            round(statistics.median(gaps), 1),
            round(max(gaps), 1),
        ]
        if gaps
        else None,
    }
    assert not mismatched, (
        f"scheduler 'state mismatch' for {mismatched}: {[e.get('extra') for e in events][:2]}"
    )
    assert set(states.values()) == {"success"}, states
