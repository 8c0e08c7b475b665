"""Every example DAG (example_dags/) in the deployment's real processes, all triggered at once.

The examples run as users get them: their own defaults (params, connections ``google_cloud_default``
and ``huaweicloud_default`` pointing at the simulator, waits deferrable as written, sensors started
in the triggerer where they can be), against the simulator's bundled catalogue
(``airflow_jobstatus/simulator/scenarios/default.json``: its jobs and its default timelines). Each
job is *held* in its catalogue timeline's first phase until the task waiting on it is deferred and
its trigger has read it, then *released* into its whole catalogue timeline, so every wait really
waits in a triggerer.

Checked for every run: each task's final state, each job-starting or job-waiting task's console
links (the REST API's ``links`` endpoint: none null, each the page of that task's job), the XComs
each example documents, that every CDM job is started once (two examples starting one CDM job
collide: "Cdm.0104 ... is running"), and that the cross-cloud summary prints the DLI job's final
state. A run that never finishes (a task deferred forever) fails at the deadline; nothing asserts a
duration.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.deployment.conftest import EXAMPLE_DAG_IDS
from tests.deployment.harness import METRICS, Airflow, SimProc

pytestmark = [pytest.mark.deployment, pytest.mark.timeout(900)]

#: From triggering the runs to every run finished: a hang, not a slow machine, exceeds it.
RUN_TIMEOUT = 420.0
TERMINAL_RUN = {"success", "failed"}
SERVICES = (
    "dataproc",
    "dataflow",
    "vertex_ai",
    "cdm",
    "dli",
    "dataproc_batch",
    "vertex_pipeline",
    "dli_flink",
)


@dataclass
class Run:
    """One example's DAG run: its params' defaults and, once read, its XComs by task and key."""

    dag_id: str
    run_id: str
    params: dict[str, Any]
    xcoms: dict[str, dict[str, Any]] = field(default_factory=dict)

    def param(self, name: str) -> Any:
        return self.params[name]

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        return self.xcoms.get(task_id, {}).get(key)


#: A task's job reference (the sensor's fields, in dict form) from its run; None while not known yet.
RefOf = Callable[[Run], "dict[str, Any] | None"]


@dataclass(frozen=True)
class JobTask:
    """An example task that starts a job or waits on one (``waits``: it is deferred until the job ends).

    ``in_triggerer``: a sensor the triggerer starts and ends, never a worker (its fields are plain or
    ``params`` templates): its console link must come from the triggerer.
    """

    service: str
    ref: RefOf
    waits: bool = True
    in_triggerer: bool = False
    #: The normalized state its return value ends in (a streaming job's wait ends when it is RUNNING).
    final_state: str = "SUCCEEDED"


def cdm_ref(cluster: str, name: str) -> RefOf:
    return lambda run: {"cluster_id": run.param(cluster), "job_name": run.param(name)}


def id_from_xcom(task_id: str, key: str, **fixed: Any) -> RefOf:
    def ref(run: Run) -> dict[str, Any] | None:
        job_id = run.xcom(task_id, key)
        return {"job_id": job_id, **fixed} if job_id else None

    return ref


def dli_ref(task_id: str) -> RefOf:
    return id_from_xcom(task_id, "job_id", job_type="sql")


def vertex_ref(job_id: str, location: str) -> RefOf:
    return lambda run: {
        "job_id": run.param(job_id),
        "location": run.param(location),
        "job_type": "batch_prediction_job",
    }


#: Every task of every example; None: a task with no job of its own (a @task). All must succeed.
EXAMPLES: dict[str, dict[str, JobTask | None]] = {
    "example_jobstatus_dataproc": {
        "wait_for_dataproc_job": JobTask(
            "dataproc",
            lambda run: {"job_id": run.param("job_id"), "region": run.param("region")},
            in_triggerer=True,
        ),
    },
    "example_jobstatus_dataflow": {
        "wait_for_dataflow_job": JobTask(
            "dataflow",
            lambda run: {"job_id": run.param("job_id"), "location": run.param("location")},
            in_triggerer=True,
        ),
    },
    "example_jobstatus_vertex_ai": {
        "wait_for_batch_prediction": JobTask(
            "vertex_ai", vertex_ref("job_id", "location"), in_triggerer=True
        ),
    },
    "example_jobstatus_cdm": {
        "start_cdm_job": JobTask("cdm", cdm_ref("cluster_id", "job_name"), waits=False),
        "wait_for_cdm_job": JobTask("cdm", cdm_ref("cluster_id", "job_name"), in_triggerer=True),
    },
    "example_jobstatus_dli": {
        "run_sql": JobTask("dli", dli_ref("run_sql")),
        "submit_only": JobTask("dli", dli_ref("submit_only"), waits=False),
        # job_id="{{ ti.xcom_pull(task_ids='submit_only', key='job_id') }}": a template the triggerer
        # cannot render (its XCom read hung the task, deferred forever): it must still end green.
        "wait_for_sql": JobTask("dli", dli_ref("submit_only")),
    },
    "example_jobstatus_cross_cloud": {
        "cdm_migration": JobTask("cdm", cdm_ref("cdm_cluster_id", "cdm_job_name")),
        "dli_sql": JobTask("dli", dli_ref("dli_sql")),
        "submit_dataproc_job": None,
        "wait_for_dataproc_job": JobTask(
            "dataproc",
            lambda run: (
                {"job_id": run.xcom("submit_dataproc_job"), "region": run.param("region")}
                if run.xcom("submit_dataproc_job")
                else None
            ),
        ),
        "wait_for_batch_prediction": JobTask(
            "vertex_ai", vertex_ref("vertex_ai_job_id", "region"), in_triggerer=True
        ),
        "summarize": None,
    },
    "example_jobstatus_dataproc_batch": {
        "wait_for_batch": JobTask(
            "dataproc_batch",
            lambda run: {"batch_id": run.param("batch_id"), "region": run.param("region")},
            in_triggerer=True,
        ),
    },
    "example_jobstatus_dli_flink": {
        "wait_until_running": JobTask(
            "dli_flink",
            lambda run: {"job_id": str(run.param("flink_job_id"))},
            in_triggerer=True,
            final_state="RUNNING",
        ),
    },
    "example_jobstatus_vertex_pipeline": {
        "wait_for_pipeline_job": JobTask(
            "vertex_pipeline",
            lambda run: {"pipeline_job_id": run.param("pipeline_job_id"), "location": run.param("location")},
            in_triggerer=True,
        ),
    },
}


def sim_key(service: str, ref: dict[str, Any]) -> tuple[str, str]:
    """The simulator's id of a job (a CDM job by its name)."""
    return service, str(ref["job_name"] if service == "cdm" else job_id_of(service, ref))


def job_id_of(service: str, ref: dict[str, Any]) -> str:
    """The job's id as its JobStatus names it (a batch's ``batch_id``, a pipeline's ``pipeline_job_id``)."""
    from airflow_jobstatus.services import get_service

    return get_service(service).ref(ref).display_id


# ---- the simulator: the bundled catalogue, held -----------------------------------------------------


@dataclass
class Catalogue:
    """The simulator's bundled job set and default timelines, and how each job is held and released."""

    entries: list[dict[str, Any]]  # the bundled jobs, as default.json lists them
    defaults: dict[str, list[dict[str, Any]]]  # service → the timeline a started/submitted job follows

    @classmethod
    def bundled(cls) -> Catalogue:
        from airflow_jobstatus.simulator import DEFAULT_SCENARIOS
        from airflow_jobstatus.simulator.vocabulary import BUILTIN_DEFAULTS

        data = json.loads(DEFAULT_SCENARIOS.read_text(encoding="utf-8"))
        defaults = {s: list(data.get("defaults", {}).get(s) or BUILTIN_DEFAULTS[s]) for s in SERVICES}
        return cls(list(data.get("jobs", [])), defaults)

    @property
    def cdm_jobs(self) -> set[tuple[str, str]]:
        """(cluster, name) of the CDM jobs that exist, never started."""
        from airflow_jobstatus.simulator.vocabulary import DEFAULT_CDM_CLUSTER

        return {
            (e.get("cluster_id", DEFAULT_CDM_CLUSTER), e["job_id"])
            for e in self.entries
            if e["service"] == "cdm" and e["timeline"] is None
        }

    @staticmethod
    def held(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The timeline's first phase, for as long as the job is held."""
        return [{k: v for k, v in timeline[0].items() if k != "duration"}]

    def load_held(self, sim: SimProc, extra_cdm_jobs: set[tuple[str, str]]) -> None:
        """Every bundled job and default timeline, each held in its first phase; and extra CDM jobs."""
        for service, timeline in self.defaults.items():
            sim.default_timeline(service, self.held(timeline))
        for entry in self.entries:
            where = {k: v for k, v in entry.items() if k not in ("service", "job_id", "timeline")}
            timeline = entry["timeline"]
            sim.add_job(entry["service"], entry["job_id"], timeline and self.held(timeline), **where)
        for cluster, name in sorted(extra_cdm_jobs):
            sim.add_job("cdm", name, None, cluster_id=cluster)

    def release_timeline(self, key: tuple[str, str]) -> list[dict[str, Any]]:
        """A bundled job's own timeline; a started or submitted job's service default."""
        for entry in self.entries:
            if (entry["service"], entry["job_id"]) == key and entry["timeline"] is not None:
                return list(entry["timeline"])
        return self.defaults[key[0]]

    def final_phase(self, service: str) -> dict[str, Any]:
        return self.defaults[service][-1]


# ---- reading a run ----------------------------------------------------------------------------------


def dag_params(af: Airflow, dag_id: str) -> dict[str, Any]:
    """The DAG's params with their default values, as the REST API serves them."""
    params = af.get(f"/dags/{dag_id}/details").get("params") or {}
    return {name: (p.get("value") if isinstance(p, dict) else p) for name, p in params.items()}


def read_xcoms(af: Airflow, run: Run) -> None:
    rows = af.db.query(
        "SELECT task_id, key, value FROM xcom WHERE dag_id = %s AND run_id = %s", run.dag_id, run.run_id
    )
    run.xcoms = {}
    for task_id, key, value in rows:
        run.xcoms.setdefault(task_id, {})[key] = value


def task_log(af: Airflow, run: Run, task_id: str, try_number: int) -> str:
    """The task's log for one try, as text (one line per structured event)."""
    response = af.api.get(
        f"/dags/{run.dag_id}/dagRuns/{run.run_id}/taskInstances/{task_id}/logs/{try_number}",
        params={"full_content": "true"},
        headers={"Accept": "application/json"},
    )
    if response.status_code != 200:
        return f"(no log: {response.status_code} {response.text[:200]})"
    content = response.json().get("content")
    if isinstance(content, str):
        return content
    lines = []
    for event in content or []:
        if isinstance(event, dict):
            lines.append(" ".join(str(event.get(k, "")) for k in ("level", "logger", "event")).strip())
        else:
            lines.append(str(event))
    return "\n".join(lines)


def links(af: Airflow, run: Run, task_id: str) -> dict[str, str | None]:
    body = af.get(f"/dags/{run.dag_id}/dagRuns/{run.run_id}/taskInstances/{task_id}/links")
    return dict(body.get("extra_links") or {})


def console_scopes(sim: SimProc) -> dict[str, str | None]:
    """The project (Google) and region (Huawei) the examples' connections carry."""
    google = json.loads(sim.env["AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"])
    huawei = json.loads(sim.env["AIRFLOW_CONN_HUAWEICLOUD_DEFAULT"])
    return {"google": google["extra"].get("project"), "huawei": huawei["extra"].get("region")}


def expected_link(service: str, ref: dict[str, Any], scopes: dict[str, str | None]) -> tuple[str, str]:
    """(link name, URL) of the job's console page."""
    from airflow_jobstatus.services import REGISTRY

    spec = REGISTRY[service]
    return spec.link_name, spec.console_url(spec.ref(ref), scopes[spec.cloud])


# ---- running them -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    runs: dict[str, Run]
    run_states: dict[str, str | None]
    states: dict[str, dict[str, str | None]]
    tis: dict[str, dict[str, dict[str, Any]]]
    released: dict[tuple[str, str], str]  # job → the task whose deferral released it
    seen_deferred: set[tuple[str, str]]
    seconds: float
    lock_waits: list[dict[str, Any]]  # the first sessions seen waiting > 5 s on a lock, with their blockers


def read_times(sim: SimProc) -> dict[tuple[str, str], list[float]]:
    """Wall times of every status read the simulator answered, by job (a CDM job by its name)."""
    out: dict[tuple[str, str], list[float]] = {}
    for call in sim.calls():
        if str(call["method"]).startswith(("Get", "Show")):
            job = str(call["job_id"] or "")
            name = job.rpartition("/")[2] if call["service"] == "cdm" else job
            out.setdefault((call["service"], name), []).append(float(call["time"]))
    return out


def run_all(af: Airflow, runs: dict[str, Run], catalogue: Catalogue) -> Outcome:
    """Wait for every run to finish; a held job is released once a trigger waiting on it has read it.

    That is: its task is deferred, and the job was read after the harness first saw that (the
    trigger runs). A job shared by two waits is released once, for the first.
    """
    sim = af.sim
    released: dict[tuple[str, str], str] = {}
    lock_waits: list[dict[str, Any]] = []
    deferred_at: dict[tuple[str, str], float] = {}  # (dag, task) → when the harness first saw it deferred
    waited_since: dict[tuple[str, str], float] = {}  # held job → the earliest of its waits' deferred_at
    started = time.monotonic()
    pairs = tuple((r.dag_id, r.run_id) for r in runs.values())
    while True:
        af.check_alive()
        ti_rows = af.db.query(
            "SELECT dag_id, task_id, state FROM task_instance WHERE (dag_id, run_id) IN %s", pairs
        )
        candidates: dict[tuple[str, str], str] = {}
        for dag_id, task_id, state in ti_rows:
            job = EXAMPLES[dag_id].get(task_id)
            if state != "deferred" or job is None or not job.waits:
                continue
            seen = deferred_at.setdefault((dag_id, task_id), time.time())
            run = runs[dag_id]
            read_xcoms(af, run)
            ref = job.ref(run)
            if ref is not None and (key := sim_key(job.service, ref)) not in released:
                candidates.setdefault(key, f"{dag_id}.{task_id}")
                waited_since[key] = min(waited_since.get(key, seen), seen)
        if candidates:
            reads = read_times(sim)
            for key, task in candidates.items():
                if any(t > waited_since[key] for t in reads.get(key, [])):
                    sim.release(key[0], key[1], catalogue.release_timeline(key))
                    released[key] = task
        if not lock_waits:
            lock_waits = af.lock_waits()
        run_rows = af.db.query("SELECT dag_id, state FROM dag_run WHERE (dag_id, run_id) IN %s", pairs)
        run_states = {dag_id: state for dag_id, state in run_rows}
        elapsed = time.monotonic() - started
        if all(run_states.get(d) in TERMINAL_RUN for d in runs) or elapsed > RUN_TIMEOUT:
            break
        time.sleep(1.0)
    for run in runs.values():
        read_xcoms(af, run)
    tis = {
        dag_id: {ti["task_id"]: ti for ti in af.task_instances(dag_id, run.run_id)}
        for dag_id, run in runs.items()
    }
    states = {dag_id: {t: ti["state"] for t, ti in by_task.items()} for dag_id, by_task in tis.items()}
    return Outcome(runs, run_states, states, tis, released, set(deferred_at), round(elapsed, 1), lock_waits)


# ---- what each example must have produced -----------------------------------------------------------


def check_status(
    problems: list[str], where: str, value: Any, service: str, job_id: str, state: str = "SUCCEEDED"
) -> None:
    """A ``return_value`` that is a JobStatus dict of that job, in that state."""
    if not isinstance(value, dict):
        problems.append(f"{where}: return_value is not a job status: {value!r}")
        return
    got = {k: value.get(k) for k in ("service", "job_id", "state")}
    want = {"service": service, "job_id": job_id, "state": state}
    if got != want:
        problems.append(f"{where}: return_value {got}, expected {want}")


def check_xcoms(problems: list[str], run: Run, catalogue: Catalogue) -> None:
    """The XComs each example documents (operators: ids, status, counters or subjobs; sensors: status)."""
    cdm_counters = catalogue.final_phase("cdm").get("counters") or {}
    for task_id, job in EXAMPLES[run.dag_id].items():
        if job is None:
            continue
        where = f"{run.dag_id}.{task_id}"
        ref = job.ref(run)
        if ref is None:
            problems.append(f"{where}: no job id in its XComs ({run.xcoms.get(task_id)})")
            continue
        spec_id = job_id_of(job.service, ref)
        xcoms = run.xcoms.get(task_id, {})
        if not job.waits:  # a start-only operator: its id XCom and return value
            key = "submission_id" if job.service == "cdm" else "job_id"
            if not xcoms.get(key) or xcoms.get("return_value") != xcoms.get(key):
                problems.append(
                    f"{where}: {key} {xcoms.get(key)!r}, return_value {xcoms.get('return_value')!r}"
                )
            continue
        check_status(problems, where, xcoms.get("return_value"), job.service, spec_id, job.final_state)
        if task_id in ("cdm_migration", "run_sql", "dli_sql"):  # operators that waited
            if xcoms.get("status") != "SUCCEEDED" or xcoms.get("progress") != 1:
                problems.append(
                    f"{where}: status {xcoms.get('status')!r}, progress {xcoms.get('progress')!r}"
                )
            id_key = "submission_id" if job.service == "cdm" else "job_id"
            if not xcoms.get(id_key):
                problems.append(f"{where}: no {id_key} XCom")
        if job.service == "cdm":
            status = xcoms.get("return_value") or {}
            counters = xcoms.get("counters") if "counters" in xcoms else status.get("counters")
            written = (counters or {}).get("rows_written")
            if written != cdm_counters.get("rows_written"):
                problems.append(
                    f"{where}: rows_written {written!r}, expected {cdm_counters.get('rows_written')}"
                )
        if task_id in ("run_sql", "dli_sql"):
            # One entry per change the trigger saw, ending SUCCEEDED; sub_jobs is the last subjob list it
            # saw (empty when no poll fell while DLI listed them). A trigger taken over by the other
            # triggerer starts both afresh, so nothing more is certain.
            subs, history = xcoms.get("sub_jobs"), xcoms.get("progress_history")
            if not isinstance(subs, list) or not history or history[-1].get("state") != "SUCCEEDED":
                problems.append(f"{where}: sub_jobs {subs!r}, progress_history {history!r}")
    if run.dag_id == "example_jobstatus_cross_cloud":
        summary = run.xcom("summarize") or {}
        want = {
            "cdm_rows_written": cdm_counters.get("rows_written"),
            "dli_status": "SUCCEEDED",
            "dli_progress": 1,
            "dataproc_job_id": run.xcom("submit_dataproc_job"),
            "vertex_ai_state": "SUCCEEDED",
        }
        got = {
            "cdm_rows_written": (summary.get("cdm_counters") or {}).get("rows_written"),
            **{k: summary.get(k) for k in list(want)[1:]},
        }
        if got != want:
            problems.append(f"{run.dag_id}.summarize: return_value {got}, expected {want}")


def check_summary_log(problems: list[str], af: Airflow, run: Run, try_number: int) -> str:
    """The summary prints the DLI job's final state, never a subjob's mid-run state as if it were final."""
    log = task_log(af, run, "summarize", try_number)
    dli_id = run.xcom("dli_sql", "job_id")
    final = [line for line in log.splitlines() if f"DLI job {dli_id} SUCCEEDED" in line]
    if not final:
        problems.append(
            f"{run.dag_id}.summarize: the log has no 'DLI job {dli_id} SUCCEEDED' line:\n{log[-1500:]}"
        )
    stale = [line for line in log.splitlines() if re.search(r"DLI subjob \S+ (RUNNING|PENDING)\b", line)]
    if stale:
        problems.append(f"{run.dag_id}.summarize: prints a finished job's subjob as running: {stale}")
    return "\n".join(final)


def check_links(
    problems: list[str], af: Airflow, run: Run, scopes: dict[str, str | None]
) -> dict[str, dict[str, str | None]]:
    """Every link of every job task non-null, and the service's link the console page of the task's job."""
    found = {}
    for task_id, job in EXAMPLES[run.dag_id].items():
        if job is None:
            continue
        where = f"{run.dag_id}.{task_id}"
        got = links(af, run, task_id)
        found[task_id] = got
        ref = job.ref(run)
        if not got or any(url is None for url in got.values()):
            problems.append(f"{where}: links {got}")
        if ref is None:
            continue
        name, url = expected_link(job.service, ref, scopes)
        if got.get(name) != url:
            problems.append(f"{where}: link {name!r} is {got.get(name)!r}, expected {url!r}")
    return found


def heartbeat_gaps(af: Airflow) -> list[float]:
    """Every "Heartbeat recovered after N seconds" of the triggerers so far (N > the health check: take-over)."""
    gaps = []
    for name, proc in af.procs.items():
        if "triggerer" in name and proc.log.exists():
            text = proc.log.read_text(errors="replace")
            gaps += [float(g) for g in re.findall(r"Heartbeat recovered after ([0-9.]+) seconds", text)]
    return sorted(gaps)


def test_every_example_dag_runs_green_together(deployment: Airflow) -> None:
    """Every example DAG triggered at once: every task succeeds, with its links and XComs."""
    af, sim = deployment, deployment.sim
    catalogue = Catalogue.bundled()
    params = {dag_id: dag_params(af, dag_id) for dag_id in EXAMPLE_DAG_IDS}
    assert sorted(EXAMPLES) == sorted(EXAMPLE_DAG_IDS)
    # The CDM jobs the examples start, one each (CDM refuses to start a job that is running).
    cdm_jobs = {
        "example_jobstatus_cdm": (
            params["example_jobstatus_cdm"]["cluster_id"],
            params["example_jobstatus_cdm"]["job_name"],
        ),
        "example_jobstatus_cross_cloud": (
            params["example_jobstatus_cross_cloud"]["cdm_cluster_id"],
            params["example_jobstatus_cross_cloud"]["cdm_job_name"],
        ),
    }
    not_in_catalogue = set(cdm_jobs.values()) - catalogue.cdm_jobs
    catalogue.load_held(sim, not_in_catalogue)

    runs = {dag_id: Run(dag_id, af.trigger(dag_id), params[dag_id]) for dag_id in EXAMPLE_DAG_IDS}
    outcome = run_all(af, runs, catalogue)

    problems: list[str] = []
    if outcome.lock_waits:
        print("lock waits:\n" + json.dumps(outcome.lock_waits, indent=1, default=str))
    if len(set(cdm_jobs.values())) != len(cdm_jobs):
        problems.append(f"two examples start the same CDM job: {cdm_jobs}")
    unfinished = {d: s for d, s in outcome.run_states.items() if s not in TERMINAL_RUN}
    if unfinished:
        stuck = {d: {t: s for t, s in outcome.states[d].items() if s != "success"} for d in unfinished}
        problems.append(
            f"runs not finished {RUN_TIMEOUT:.0f} s after the trigger: {unfinished}; tasks {stuck}"
        )
    for dag_id, run in runs.items():
        wrong = {t: s for t, s in outcome.states[dag_id].items() if s != "success"}
        expected_tasks = set(EXAMPLES[dag_id])
        if set(outcome.states[dag_id]) != expected_tasks:
            problems.append(
                f"{dag_id}: tasks {sorted(outcome.states[dag_id])}, expected {sorted(expected_tasks)}"
            )
        if wrong:
            problems.append(f"{dag_id}: tasks not successful: {wrong}")
            for task_id, state in wrong.items():
                if state in ("failed", "up_for_retry"):
                    try_number = int(outcome.tis[dag_id][task_id].get("try_number") or 1)
                    tail = "\n".join(task_log(af, run, task_id, try_number).splitlines()[-25:])
                    problems.append(f"{dag_id}.{task_id} log (try {try_number}):\n{tail}")
        if outcome.run_states.get(dag_id) in TERMINAL_RUN and outcome.run_states[dag_id] != "success":
            problems.append(f"{dag_id}: run {outcome.run_states[dag_id]}")
    # Every wait deferred (its job is released only then), but one on a job another wait released.
    never_deferred = []
    for dag_id, tasks in EXAMPLES.items():
        for task_id, job in tasks.items():
            if job is None or not job.waits or (dag_id, task_id) in outcome.seen_deferred:
                continue
            ref = job.ref(runs[dag_id])
            releaser = outcome.released.get(sim_key(job.service, ref)) if ref else None
            if releaser is None or releaser == f"{dag_id}.{task_id}":
                never_deferred.append(f"{dag_id}.{task_id}")
    if never_deferred:
        problems.append(f"waits never seen deferred: {never_deferred}")

    scopes = console_scopes(sim)
    found_links = {}
    for dag_id, run in runs.items():
        if outcome.run_states.get(dag_id) not in TERMINAL_RUN:
            continue
        check_xcoms(problems, run, catalogue)
        found_links[dag_id] = check_links(problems, af, run, scopes)
    cross = runs["example_jobstatus_cross_cloud"]
    summary_line = ""
    if outcome.states["example_jobstatus_cross_cloud"].get("summarize") == "success":
        try_number = int(outcome.tis["example_jobstatus_cross_cloud"]["summarize"].get("try_number") or 1)
        summary_line = check_summary_log(problems, af, cross, try_number)

    calls = sim.calls("cdm")
    starts = Counter(str(c["job_id"]) for c in calls if c["method"] == "StartJob")
    want_starts = {f"{cluster}/{name}": 1 for cluster, name in cdm_jobs.values()}
    if dict(starts) != want_starts:
        problems.append(f"CDM StartJob calls {dict(starts)}, expected {want_starts}")

    # A TI the triggerer started and ended never had a worker process (no pid).
    started_in_triggerer = sorted(
        f"{d}.{t}" for d, by_task in outcome.tis.items() for t, ti in by_task.items() if not ti.get("pid")
    )
    want_in_triggerer = sorted(
        f"{d}.{t}" for d, tasks in EXAMPLES.items() for t, job in tasks.items() if job and job.in_triggerer
    )
    if not unfinished and started_in_triggerer != want_in_triggerer:
        problems.append(f"started in the triggerer: {started_in_triggerer}, expected {want_in_triggerer}")
    METRICS["examples"] = {
        "runs": len(runs),
        "tasks": sum(len(s) for s in outcome.states.values()),
        "outcomes": dict(Counter(str(s) for by_task in outcome.states.values() for s in by_task.values())),
        "run_states": outcome.run_states,
        "trigger_to_all_finished_s": outcome.seconds,
        "jobs_released": len(outcome.released),
        "waits_seen_deferred": len(outcome.seen_deferred),
        "started_in_triggerer": started_in_triggerer,
        "cdm_starts": dict(starts),
        "cdm_jobs_not_in_catalogue": sorted(f"{c}/{n}" for c, n in not_in_catalogue),
        "null_links": sorted(
            f"{d}.{t}"
            for d, by_task in found_links.items()
            for t, got in by_task.items()
            if any(v is None for v in got.values())
        ),
        "summary": summary_line,
        "triggerer_heartbeat_gaps_s": heartbeat_gaps(af),
    }
    assert not problems, "\n".join(problems)
