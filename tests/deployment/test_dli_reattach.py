"""A worker lost mid-submit in a real deployment: the DLI submit reaches the simulator, which creates the
job and holds the answer back; the task process is SIGKILLed while it waits for that answer, so no
task-state-store record is written. The retry must find the job by its task tag and wait on it: one job
per task at the simulator, and the task ends as the job does (README "Lifecycle").

Uses the session fixtures of tests/deployment/conftest.py and the DAG in dags/deploy_reattach.py.
"""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import pytest

from tests.deployment.harness import METRICS, Airflow, wait_for
from tests.deployment.test_deployment import (
    DEFER_TIMEOUT,
    FINISH_TIMEOUT,
    TERMINAL_TI,
    CallLog,
    is_read,
    task_process,
)

pytestmark = [pytest.mark.deployment, pytest.mark.timeout(900)]

DAG_ID = "deploy_reattach"
#: task id -> the marker in its SQL (deploy_reattach.py).
TASKS = {"dli_worker": "reattach-worker", "dli_deferred": "reattach-deferred"}
#: How long the simulator holds each submit's answer (the DAG's call_timeout is longer).
HOLD_SECONDS = 120.0
#: The jobs run this long after their submit: the retry finds them running, then sees them finish.
RUNNING_SECONDS = 75


def xcom(af: Airflow, run_id: str, task_id: str, key: str) -> Any:
    entry = af.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}")
    value = entry.get("value")
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def test_worker_killed_while_the_submit_answer_is_held_does_not_submit_twice(deployment: Airflow) -> None:
    af, sim = deployment, deployment.sim
    wait_for(
        f"the dag-processor to parse {DAG_ID}",
        lambda: af.api.get(f"/dags/{DAG_ID}").status_code == 200,
        180,
        interval=2,
        on_fail=af.diagnostics,
    )
    sim.default_timeline(
        "dli",
        [
            {"state": "RUNNING", "progress": [0.0, 0.9], "duration": RUNNING_SECONDS},
            {"state": "FINISHED", "progress": 1},
        ],
    )
    # Each task's submit answer is held (only CreateSqlJob: asset watchers list DLI meanwhile).
    hold = {"kind": "hold_answer", "count": len(TASKS), "service": "dli", "seconds": HOLD_SECONDS}
    sim.post("/faults", {**hold, "method": "CreateSqlJob"})
    started = time.monotonic()
    run_id = af.trigger(DAG_ID)
    killed: dict[str, dict[str, Any]] = {}
    for task_id, marker in TASKS.items():
        wait_for(
            f"{task_id}'s submit to reach the simulator",
            lambda m=marker: len(CallLog.read(sim).dli_submits(m)) >= 1,
            DEFER_TIMEOUT,
            interval=0.5,
            on_fail=af.diagnostics,
        )
        proc = wait_for(
            f"{task_id}'s task process",
            lambda t=task_id: task_process(af, DAG_ID, run_id, t),
            60,
            interval=0.5,
        )
        # Still inside the submit: its answer is held, so nothing was recorded and no id XCom pushed.
        submit_time = CallLog.read(sim).dli_submits(marker)[0]["time"]
        assert time.time() - submit_time < HOLD_SECONDS, "the held answer was already sent"
        proc.send_signal(signal.SIGKILL)
        killed[task_id] = {
            "pid": proc.pid,
            "at": time.time(),
            "s_after_submit": round(time.time() - submit_time, 1),
        }
    wait_for(
        "both tasks to end",
        lambda: all(s in TERMINAL_TI for s in af.states(DAG_ID, run_id).values()),
        FINISH_TIMEOUT,
        on_fail=af.diagnostics,
    )
    duration = time.monotonic() - started
    log = CallLog.read(sim)
    states = af.states(DAG_ID, run_id)
    tries = {ti["task_id"]: ti["try_number"] for ti in af.task_instances(DAG_ID, run_id)}
    submits = {task_id: log.dli_submits(marker) for task_id, marker in TASKS.items()}
    jobs = {task_id: [str(c["job_id"]) for c in calls] for task_id, calls in submits.items()}
    list_calls = [c for c in log.calls if c["method"] == "ListSqlJobs"]
    tag_lists = [
        c for c in list_calls if "airflow-task=" in str((c.get("detail") or {}).get("query", {}).get("tags"))
    ]
    reads_after_kill = {
        task_id: sum(
            1
            for c in log.by_job.get(("dli", ids[0]), [])
            if is_read(c["method"]) and c["time"] > killed[task_id]["at"]
        )
        for task_id, ids in jobs.items()
        if ids
    }
    cancels = sum(1 for c in log.calls if c["method"] == "CancelSqlJob")
    sim_jobs = [j for j in sim.jobs("dli")]
    METRICS["dli_reattach_after_lost_submit"] = {
        "killed": {t: {"pid": k["pid"], "s_after_submit": k["s_after_submit"]} for t, k in killed.items()},
        "submissions": {t: len(ids) for t, ids in jobs.items()},
        "jobs_at_simulator": len(sim_jobs),
        "tag_list_calls": len(tag_lists),
        "reads_after_kill": reads_after_kill,
        "cancel_calls": cancels,
        "ti_states": states,
        "try_numbers": tries,
        "duration_s": round(duration, 1),
    }
    assert {t: len(ids) for t, ids in jobs.items()} == {t: 1 for t in TASKS}, f"submits per task: {jobs}"
    assert len(sim_jobs) == len(TASKS), f"jobs at the simulator: {sim_jobs}"
    assert states == {t: "success" for t in TASKS}, states
    assert tries == {t: 2 for t in TASKS}, f"the first try was killed, the second ended the task: {tries}"
    assert len(tag_lists) == len(TASKS), (
        f"one list-by-tag call per retry: {[c['detail'] for c in list_calls]}"
    )
    assert all(n >= 1 for n in reads_after_kill.values()) and set(reads_after_kill) == set(TASKS), (
        reads_after_kill
    )
    assert cancels == 0
    for task_id, ids in jobs.items():
        # The retry re-attached to the job the killed try submitted (its id XCom), and saw it finish.
        assert xcom(af, run_id, task_id, "job_id") == ids[0]
        assert xcom(af, run_id, task_id, "status") == "SUCCEEDED"
