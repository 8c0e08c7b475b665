"""The lifecycle through real Airflow 3.3 code, against the simulator.

- Start and end in the triggerer: ``dag.test()`` cannot show it (it sets every task SCHEDULED and
  runs it on its in-process worker, never ``DagRun.schedule_tis``/``TaskInstance.defer_task``; it
  resumes the worker with an inline trigger's event payload instead of handling task-end events).
  So the test drives Airflow's own pieces in order: the scheduler's ``DagRun.schedule_tis`` (which
  defers the task straight to its trigger), the triggerer's set-up of a start_from_trigger trigger
  (``TriggerRunner.create_runtime_ti``, ``task_instance``, ``render_template_fields``), the event's
  trip through the triggerer's message model, and ``Trigger.submit_event`` (``handle_event_submit``).
  No triggerer process runs: the trigger's ``run()`` is awaited here.
- Re-attach on retry and cancel on ``execution_timeout``: one ``dag.test()`` run each (retries, the
  task state store and Airflow's timeout handler are real there).
- Cancel on a deferral timeout: ``dag.test()`` runs triggers inline without their timeout, so the
  test runs the task with dag.test's own task runner, times the deferral out with the scheduler's
  ``check_trigger_timeouts`` and runs the resumed task.
"""

from __future__ import annotations

import gc
import os
import weakref
from pathlib import Path
from typing import Any

import pytest

from airflow_jobstatus._demo_run import ensure_db, read_xcoms, run_dag_file
from tests.airflow_versions import needs_task_state_store, needs_trigger_rendering

RECORD_KEY = "airflow_jobstatus.started_job"

START_DAG = """\
from datetime import datetime
from airflow.sdk import DAG, task
from airflow_jobstatus.sensors.dli import DliJobStatusSensor

FAST = {{"poke_interval": 0.2, "max_backoff": 0.2, "deferrable": True}}
with DAG({dag_id!r}, schedule=None, start_date=datetime(2024, 1, 1), catchup=False,
         params={{"ok": "lc-ok", "bad": "lc-bad"}}) as dag:
    DliJobStatusSensor(task_id="ok", job_id="{{{{ params.ok }}}}", **FAST)
    DliJobStatusSensor(task_id="fail", job_id="{{{{ params.bad }}}}", **FAST)
    DliJobStatusSensor(task_id="skip", job_id="{{{{ params.bad }}}}", soft_fail=True, **FAST)
    DliJobStatusSensor(task_id="restart", job_id="{{{{ params.missing }}}}", **FAST)

    @task
    def submit() -> str:
        return "lc-ok"

    DliJobStatusSensor(task_id="from_xcomarg", job_id=submit(), **FAST)
"""


def _sync_dags(session: Any) -> dict[str, Any]:
    """What the DAG processor does: parse the dags folder and write the serialized DAGs (returned)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    from tests.airflow_versions import BundleDagBag, sync_bag_to_db

    dags: dict[str, Any] = {}
    manager = DagBundlesManager()
    manager.sync_bundles_to_db(session=session)
    session.commit()
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        assert not bag.import_errors, bag.import_errors
        sync_bag_to_db(bag, bundle.name, bundle.version)
        dags.update(bag.dags)
    return dags


def _run_like_the_triggerer(trigger_row: Any, ti: Any, dag_run: Any, session: Any) -> Any:
    """``TriggerRunner.create_triggers`` + ``run_trigger`` for a start_from_trigger task, then the event
    as the supervisor receives it."""
    from airflow._shared.module_loading import import_string
    from airflow.executors.workloads.task import TaskInstanceDTO
    from airflow.jobs.triggerer_job_runner import TriggerRunner
    from airflow.models.dagbag import DBDagBag
    from airflow.models.trigger import Trigger
    from airflow.sdk.execution_time.supervisor import InProcessTestSupervisor
    from airflow.serialization.decoders import smart_decode_trigger_kwargs
    from airflow.triggers.base import DiscrimatedTriggerEvent
    from pydantic import TypeAdapter

    kwargs = Trigger._decrypt_kwargs(trigger_row.encrypted_kwargs)
    kwargs = {k: smart_decode_trigger_kwargs(v) for k, v in kwargs.items()}
    trigger = import_string(trigger_row.classpath)(**kwargs)
    dag_model = DBDagBag().get_serialized_dag_model_for_run(dag_run, session=session)
    runtime_ti = TriggerRunner.create_runtime_ti(
        TaskInstanceDTO.model_validate(ti, from_attributes=True),
        dag_model.data,
        dag_run.dag_run_data.model_dump(exclude_unset=True),
    )
    context = runtime_ti.get_template_context()
    trigger.task_instance = runtime_ti
    trigger.render_template_fields(context=context)
    dag_copy = weakref.ref(runtime_ti.task.dag)  # Airflow's copy of the whole DAG, for this trigger
    # the trigger's calls to the supervisor (XComs) go to the execution API, as from the triggerer
    event = InProcessTestSupervisor.run_trigger_in_process(trigger=trigger, ti=runtime_ti)
    del runtime_ti
    gc.collect()
    # run_trigger keeps the context and the trigger its task instance for the wait's life. A failed
    # render's traceback (kept by pytest's log capture, not by a triggerer) still holds jinja's copy.
    assert context == {}, "the trigger kept the render context"
    if ti.task_id != "restart":
        assert dag_copy() is None, "the trigger kept its copy of the DAG after rendering"
    adapter = TypeAdapter(DiscrimatedTriggerEvent)
    return adapter.validate_python(adapter.dump_python(event, mode="json"))


def _new_run(session: Any, dag_id: str, source: str) -> tuple[Any, Any, Any]:
    """Write and sync a DAG file, create a run: (the parsed SDK DAG, the scheduler's DAG, the run)."""
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import get_or_create_dagrun
    from airflow.sdk import timezone
    from airflow.utils.types import DagRunTriggeredByType

    ensure_db()
    dags = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dags.mkdir(parents=True, exist_ok=True)
    path = dags / f"{dag_id}.py"
    path.write_text(source)
    try:
        parsed = _sync_dags(session)[dag_id]
    finally:
        path.unlink()
    dag = DBDagBag().get_latest_version_of_dag(dag_id, session=session)
    now = timezone.utcnow()
    run = get_or_create_dagrun(
        dag=dag,
        start_date=now,
        logical_date=now,
        data_interval=None,
        run_after=now,
        run_id=f"lc_{now.timestamp()}",
        session=session,
        conf=None,
        triggered_by=DagRunTriggeredByType.TEST,
        triggering_user_name="test",
    )
    session.commit()
    return parsed, dag, run


@needs_trigger_rendering
def test_deferrable_sensors_start_and_end_in_the_triggerer(sim):
    """Scheduled → deferred with no worker; rendered and ended in the triggerer with the worker's XComs."""
    from airflow import settings
    from airflow.models.trigger import Trigger
    from airflow.triggers.base import TaskFailedEvent, TaskSkippedEvent, TaskSuccessEvent, TriggerEvent
    from airflow.utils.state import TaskInstanceState

    sim.add_job(
        "dli", "lc-ok", [{"state": "RUNNING", "duration": 0.3, "progress": 0.5}, {"state": "FINISHED"}]
    )
    sim.add_job("dli", "lc-bad", [{"state": "FAILED", "message": "Table t not found"}])
    dag_id = f"lc_start_{os.getpid()}"
    session = settings.Session()
    _, dag, run = _new_run(session, dag_id, START_DAG.format(dag_id=dag_id))
    assert dag.get_task("ok").start_from_trigger is True
    assert dag.get_task("from_xcomarg").start_from_trigger is False  # an XComArg resolves on a worker

    schedulable, _ = run.update_state(session=session)
    run.schedule_tis(schedulable, session=session)  # the scheduler's own step
    session.commit()
    session.expire_all()
    tis = {ti.task_id: ti for ti in run.get_task_instances(session=session)}
    started_in_triggerer = ["ok", "fail", "skip", "restart"]
    for task_id in started_in_triggerer:
        assert tis[task_id].state == TaskInstanceState.DEFERRED, task_id  # never queued for a worker
        assert tis[task_id].next_method == "execute_complete" and tis[task_id].trigger_timeout is not None
    assert tis["submit"].state == TaskInstanceState.SCHEDULED  # an ordinary task goes to a worker

    events = {}
    for task_id in started_in_triggerer:
        ti = tis[task_id]
        row = session.get(Trigger, ti.trigger_id)
        events[task_id] = _run_like_the_triggerer(row, ti, run, session)
        Trigger.submit_event(row.id, events[task_id], session=session)
    session.commit()
    session.expire_all()
    assert isinstance(events["ok"], TaskSuccessEvent)
    assert isinstance(events["fail"], TaskFailedEvent) and isinstance(events["skip"], TaskSkippedEvent)
    assert type(events["restart"]) is TriggerEvent and events["restart"].payload["restart_in_worker"]

    tis = {ti.task_id: ti for ti in run.get_task_instances(session=session)}
    assert tis["ok"].state == TaskInstanceState.SUCCESS
    assert tis["fail"].state == TaskInstanceState.FAILED
    assert tis["skip"].state == TaskInstanceState.SKIPPED
    # a template the triggerer cannot render: back to a worker, which starts the task as without it
    assert tis["restart"].state == TaskInstanceState.SCHEDULED
    assert tis["restart"].next_method == "execute_complete"
    xcoms = read_xcoms(dag_id, run.run_id)
    assert xcoms["ok"]["return_value"]["state"] == "SUCCEEDED"
    assert xcoms["ok"]["return_value"]["job_id"] == "lc-ok"  # rendered from params in the triggerer
    assert "fail" not in xcoms and "skip" not in xcoms
    # stored as a worker stores it: the dict itself (a task pulling it gets a dict, not JSON text)
    assert isinstance(_raw_xcom(session, dag_id, run.run_id, "ok"), dict)
    session.close()


def _raw_xcom(session: Any, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
    """The XCom column as the execution API hands it to a pulling task (before the SDK's serde)."""
    from airflow.models.xcom import XComModel

    row = session.query(XComModel).filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id, key=key).one()
    return row.value


RETRY_DAG = """\
from datetime import datetime, timedelta
from airflow.sdk import DAG
from airflow_jobstatus.operators.dli import DliRunSqlJobOperator


class FirstTryGivesUp(DliRunSqlJobOperator):
    \"\"\"Try 1 stops waiting after 0.5 s (``first_try_timeout``), as a crashed or timed-out try would.\"\"\"

    def __init__(self, *, first_try_timeout=None, **kwargs):
        super().__init__(**kwargs)
        self.first_try_timeout = first_try_timeout

    def execute(self, context):
        if context["ti"].try_number == 1 and self.first_try_timeout:
            self.timeout = self.first_try_timeout
        return super().execute(context)


with DAG({dag_id!r}, schedule=None, start_date=datetime(2024, 1, 1), catchup=False) as dag:
    FirstTryGivesUp(task_id="wait", sql="SELECT 1", queue_name="q", deferrable=False,
                    poll_interval=0.2, max_backoff=0.2, **{kwargs!r})
"""


def _run(tmp_path: Path, name: str, kwargs: dict[str, Any], **extra: str) -> dict[str, Any]:
    source = RETRY_DAG.format(dag_id=f"{name}_{os.getpid()}", kwargs=kwargs)
    for old, new in extra.items():
        source = source.replace(old, new)
    path = tmp_path / f"{name}_{os.getpid()}.py"
    path.write_text(source)
    return run_dag_file(path)


def _record(dag_id: str, run_id: str) -> Any:
    import json

    from airflow.models.task_state_store import TaskStateStoreModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(TaskStateStoreModel).filter_by(dag_id=dag_id, run_id=run_id, key=RECORD_KEY).one()
        return json.loads(row.value)


def _try_number(dag_id: str, run_id: str) -> int:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        return (
            session.query(TaskInstance)
            .filter_by(dag_id=dag_id, run_id=run_id, task_id="wait")
            .one()
            .try_number
        )


@needs_task_state_store
def test_a_retry_re_attaches_to_the_job_instead_of_submitting_again(sim, tmp_path):
    """Try 1 times out and leaves the job running; try 2 finds it in the task state store and waits on it."""
    sim.set_default_timeline(
        "dli", [{"state": "RUNNING", "duration": 3, "progress": [0, 0.9]}, {"state": "FINISHED"}]
    )
    kwargs = {"first_try_timeout": 0.5, "cancel_on_timeout": False, "retries": 1, "retry_delay": 0}
    outcome = _run(tmp_path, "lc_retry", kwargs)
    assert outcome["tasks"]["wait"] == "success"
    jobs = sim.core.jobs("dli")
    assert len(jobs) == 1  # one submission for two tries
    job_id = jobs[0].job_id
    assert outcome["xcoms"]["wait"]["job_id"] == job_id and outcome["xcoms"]["wait"]["status"] == "SUCCEEDED"
    assert [r["method"] for r in sim.requests("dli", job_id)].count("CancelSqlJob") == 0
    assert _try_number(outcome["dag_id"], outcome["run_id"]) == 2
    record = _record(outcome["dag_id"], outcome["run_id"])
    assert record["ids"] == {"job_id": job_id} and record["try_number"] == 1  # submitted by try 1
    assert record["reported"] == "SUCCEEDED"


@needs_task_state_store
def test_execution_timeout_cancels_the_job_exactly_once(sim, tmp_path):
    """Airflow's timeout handler calls on_kill: the job is cancelled once, and the record says so."""
    sim.set_default_timeline("dli", [{"state": "RUNNING"}])
    outcome = _run(
        tmp_path,
        "lc_exec_timeout",
        {"retries": 0},
        **{"deferrable=False,": "deferrable=False, execution_timeout=timedelta(seconds=1),"},
    )
    assert outcome["tasks"]["wait"] == "failed"
    jobs = sim.core.jobs("dli")
    assert len(jobs) == 1
    assert [r["method"] for r in sim.requests("dli", jobs[0].job_id)].count("CancelSqlJob") == 1
    assert _record(outcome["dag_id"], outcome["run_id"])["reported"] == "CANCELLED"


DEFERRAL_TIMEOUT_DAG = """\
from datetime import datetime
from airflow.sdk import DAG
from airflow_jobstatus.operators.dli import DliRunSqlJobOperator

with DAG({dag_id!r}, schedule=None, start_date=datetime(2024, 1, 1), catchup=False) as dag:
    DliRunSqlJobOperator(task_id="wait", sql="SELECT 1", queue_name="q", deferrable=True, timeout=3600)
"""


@needs_task_state_store
def test_a_deferral_timeout_cancels_the_job_exactly_once(sim):
    """The task defers; the scheduler times the deferral out (``check_trigger_timeouts``, which drops
    the deferral's kwargs); the resumed task finds the job in the task state store and cancels it."""
    import logging
    import types
    from datetime import timedelta

    from airflow import settings
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.sdk import timezone
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.state import TaskInstanceState

    sim.set_default_timeline("dli", [{"state": "RUNNING"}])
    dag_id = f"lc_deferral_timeout_{os.getpid()}"
    session = settings.Session()
    parsed, _, run = _new_run(session, dag_id, DEFERRAL_TIMEOUT_DAG.format(dag_id=dag_id))

    def run_task() -> Any:
        session.expire_all()
        ti = run.get_task_instance("wait", session=session)
        if ti.state is None:  # what the scheduler does for a new try
            ti.try_number += 1
        ti.state = TaskInstanceState.SCHEDULED
        session.commit()
        _run_task(ti=ti, task=parsed.get_task("wait"), run_triggerer=False)
        session.expire_all()
        return run.get_task_instance("wait", session=session)

    ti = run_task()
    assert ti.state == TaskInstanceState.DEFERRED and ti.next_kwargs  # the job ref is in the deferral
    ti.trigger_timeout = timezone.utcnow() - timedelta(seconds=1)
    session.commit()
    SchedulerJobRunner.check_trigger_timeouts(
        types.SimpleNamespace(log=logging.getLogger("test")), session=session
    )
    session.commit()
    session.expire_all()
    ti = run.get_task_instance("wait", session=session)
    assert ti.next_method == "__fail__" and "job_ref" not in (ti.next_kwargs or {})  # Airflow dropped it

    ti = run_task()
    assert ti.state == TaskInstanceState.FAILED
    jobs = sim.core.jobs("dli")
    assert len(jobs) == 1
    assert [r["method"] for r in sim.requests("dli", jobs[0].job_id)].count("CancelSqlJob") == 1
    assert _record(dag_id, run.run_id)["reported"] == "CANCELLED"
    session.close()


@pytest.fixture(autouse=True)
def _no_leftover_dag_files():
    yield
    dags = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    for path in dags.glob("lc_*.py"):
        path.unlink()
