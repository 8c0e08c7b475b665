"""The wait's metrics (``wait/metrics.py``) and its progress key (``tasks/progress.py``) against a FakeHook.

Metrics are recorded by a backend installed with Airflow's own ``Stats.initialize`` (tests/recording_stats.py).
"""

from __future__ import annotations

import time

import pytest
from airflow.sdk.execution_time.context import set_current_context

from airflow_jobstatus.core.exceptions import TransientServiceError
from airflow_jobstatus.core.states import JobState
from airflow_jobstatus.tasks.progress import PROGRESS_KEY, ProgressReporter, progress_value
from airflow_jobstatus.wait import metrics
from airflow_jobstatus.wait.rules import JobWatch
from tests.recording_stats import recording_stats
from tests.unit.fakes import (
    ERRORS,
    FakeHook,
    FakeTaskStateStore,
    RecordingLog,
    first_event,
    lifecycle_context,
    make_sensor,
    status,
)
from tests.unit.test_trigger import trigger


def poke_until_done(sensor, limit: int = 20):
    for _ in range(limit):
        result = sensor.poke({})
        if result:
            return result
    raise AssertionError("the sensor never finished")


def tag(**tags):
    return tuple(sorted(tags.items()))


# -- metrics ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("legacy", [True, False])
def test_a_poke_wait_with_a_transient_error_records_polls_errors_and_the_end(inject, sleeps, legacy):
    sensor = make_sensor("cdm")
    ended = time.time() - 3.0  # the service dates the job's end 3 s ago
    done = status(JobState.SUCCEEDED, service="cdm", progress=1.0, ended_at=ended)
    inject(sensor, FakeHook(JobState.RUNNING, ERRORS["transient"](), JobState.RUNNING, done, service="cdm"))
    with recording_stats(legacy_names=legacy) as stats:
        poke_until_done(sensor)
    polls = stats.counts(metrics.POLL)
    assert polls == {
        tag(service="cdm", outcome="wait"): 2,
        tag(service="cdm", outcome="error"): 1,
        tag(service="cdm", outcome="success"): 1,
    }
    assert stats.counts(metrics.TRANSIENT_ERROR) == {tag(service="cdm", kind="transient"): 1}
    assert stats.counts(metrics.ERROR) == {}
    (duration,) = stats.timings(metrics.WAIT_DURATION)
    assert duration.tags == {"service": "cdm", "outcome": "success"} and duration.value >= 0
    (latency,) = stats.timings(metrics.DETECTION_LATENCY)
    assert latency.tags == {"service": "cdm", "outcome": "success"} and 3.0 <= latency.value < 30
    untagged = [n for n in stats.names() if n.count(".") >= 3 or n.startswith("jobstatus.poll.")]
    if legacy:  # Airflow's untagged form: the tag values in the name, for a StatsD without tags
        assert stats.counts("jobstatus.poll.cdm.wait") == {(): 2}
        assert stats.counts("jobstatus.transient_error.cdm.transient") == {(): 1}
        assert [m.value for m in stats.timings("jobstatus.detection_latency.cdm.success")] == [latency.value]
        assert "jobstatus.wait.duration.cdm.success" in untagged
    else:
        assert untagged == []


def test_without_the_service_end_time_the_latency_is_bounded_by_the_last_running_read(inject, sleeps):
    sensor = make_sensor("dataproc")
    inject(sensor, FakeHook(JobState.RUNNING, JobState.SUCCEEDED))
    with recording_stats() as stats:
        before = time.time()
        poke_until_done(sensor)
        elapsed = time.time() - before
    (latency,) = stats.timings(metrics.DETECTION_LATENCY)
    assert 0 <= latency.value <= elapsed


def test_a_final_error_ends_the_wait_with_its_kind(inject, sleeps):
    sensor = make_sensor("dli")
    inject(sensor, FakeHook(JobState.RUNNING, ERRORS["authentication"](), service="dli"))
    with recording_stats() as stats:
        sensor.poke({})
        with pytest.raises(Exception, match="401"):
            sensor.poke({})
    assert stats.counts(metrics.ERROR) == {tag(service="dli", kind="authentication"): 1}
    assert stats.counts(metrics.POLL) == {
        tag(service="dli", outcome="wait"): 1,
        tag(service="dli", outcome="error"): 1,
    }
    (duration,) = stats.timings(metrics.WAIT_DURATION)
    assert duration.tags == {"service": "dli", "outcome": "error"}
    assert stats.timings(metrics.DETECTION_LATENCY) == []


def test_the_budget_spent_is_a_final_transient_error():
    watch = JobWatch(policy=None, service="dataproc", log=RecordingLog())
    watch.policy = type(watch.policy)(error_budget=0.0)
    with recording_stats() as stats, pytest.raises(TransientServiceError):
        watch.read(lambda: (_ for _ in ()).throw(ERRORS["transient"]()), sleep=lambda s: None)
    assert stats.counts(metrics.ERROR) == {tag(service="dataproc", kind="transient"): 1}


def test_the_trigger_records_through_the_same_watch(trigger_hook, sleeps):
    """Deferrable: the triggerer's wait emits the same metrics, its duration from the task's start."""
    trigger_hook(FakeHook(JobState.RUNNING, ERRORS["bad_response"](), JobState.FAILED))
    with recording_stats() as stats:
        payload = first_event(trigger(wait_started=time.time() - 60))
    assert payload["status"] == "failure"
    assert stats.counts(metrics.POLL) == {
        tag(service="dataproc", outcome="wait"): 1,
        tag(service="dataproc", outcome="error"): 1,
        tag(service="dataproc", outcome="failure"): 1,
    }
    assert stats.counts(metrics.TRANSIENT_ERROR) == {tag(service="dataproc", kind="bad_response"): 1}
    (duration,) = stats.timings(metrics.WAIT_DURATION)
    assert duration.tags["outcome"] == "failure" and duration.value >= 60


def test_a_trigger_that_cannot_build_its_hook_counts_a_configuration_error(sleeps, monkeypatch):
    from airflow_jobstatus.core.exceptions import ConfigurationError
    from airflow_jobstatus.triggers.job_status import JobStatusTrigger

    def no_hook(self):
        raise ConfigurationError("connection 'nope' is not defined")

    monkeypatch.setattr(JobStatusTrigger, "_hook", no_hook)
    with recording_stats() as stats:
        assert first_event(trigger())["status"] == "error"
    assert stats.counts(metrics.ERROR) == {tag(service="dataproc", kind="configuration"): 1}


def test_with_the_no_op_backend_nothing_is_built(inject, sleeps):
    """Airflow's default backend: the wait builds no tag dict and no name (the hot path stays as it was)."""
    metrics.reset()
    sensor = make_sensor("cdm")
    inject(sensor, FakeHook(JobState.RUNNING, ERRORS["transient"](), JobState.SUCCEEDED, service="cdm"))
    poke_until_done(sensor)
    assert not metrics.active()
    assert metrics._NAMES == {}


def test_the_trigger_kwargs_carry_the_tasks_wait_start(inject):
    sensor = make_sensor("dataproc", deferrable=True)
    inject(sensor, FakeHook(JobState.RUNNING))
    made = sensor.make_trigger(5)
    assert made.wait_started == sensor.watch.started_wall
    assert "wait_started" not in sensor.trigger_kwargs(5)  # start-from-trigger kwargs are fixed at parse


# -- progress -----------------------------------------------------------------------------------------


def test_progress_is_written_once_per_change():
    store, log = FakeTaskStateStore(), RecordingLog()
    reporter = ProgressReporter(store, log)
    readings = [
        status(JobState.RUNNING, service="cdm", progress=0.2, counters={"rows_read": 10}),
        status(JobState.RUNNING, service="cdm", progress=0.2, counters={"rows_read": 10}),  # same
        status(JobState.RUNNING, service="cdm", progress=0.2, counters={"rows_read": 20}),
        status(JobState.SUCCEEDED, service="cdm", progress=1.0, counters={"rows_read": 30}),
    ]
    assert [reporter.report(s) for s in readings] == [True, False, True, True]
    assert [k for k, _ in store.sets] == [PROGRESS_KEY] * 3
    last = store.values[PROGRESS_KEY]
    assert {k: last[k] for k in ("state", "progress", "counters")} == {
        "state": "SUCCEEDED",
        "progress": 1.0,
        "counters": {"rows_read": 30},
    }
    assert last["updated_at"].endswith("Z")


def test_a_later_process_does_not_rewrite_the_same_progress():
    """A rescheduled sensor's next poke runs in a new process: it reads the key once, then compares."""
    reading = status(JobState.RUNNING, service="dli", progress=0.5)
    store = FakeTaskStateStore({PROGRESS_KEY: {**progress_value(reading), "updated_at": "x"}})
    assert ProgressReporter(store, RecordingLog()).report(reading) is False
    assert store.sets == []


def test_dli_task_counts_are_in_the_progress():
    sub = {"id": 1, "status": "RUNNING", "num_tasks": 8, "num_completed_tasks": 3}
    value = progress_value(status(JobState.RUNNING, service="dli", progress=0.4, sub_jobs=[sub]))
    assert value["tasks"] == [3, 8] and value["progress"] == 0.4


def test_a_failing_store_is_logged_once_and_the_wait_goes_on(inject, sleeps):
    sensor = make_sensor("cdm")
    log = inject(
        sensor,
        FakeHook(
            status(JobState.RUNNING, service="cdm", progress=0.1),
            status(JobState.RUNNING, service="cdm", progress=0.5),
            status(JobState.SUCCEEDED, service="cdm", progress=1.0),
            service="cdm",
        ),
    )
    context = lifecycle_context(FakeTaskStateStore(fail_on_set=RuntimeError("API server said 500")))
    with set_current_context(context):
        result = poke_until_done(sensor)
    assert result.xcom_value["state"] == "SUCCEEDED"
    warnings = [m for m in log.messages("warning") if "progress" in m]
    assert len(warnings) == 1 and "API server said 500" in warnings[0]


def test_a_poke_wait_writes_the_progress_of_each_changed_poll(inject, sleeps):
    sensor = make_sensor("cdm")
    inject(
        sensor,
        FakeHook(
            status(JobState.RUNNING, service="cdm", progress=0.1),
            status(JobState.RUNNING, service="cdm", progress=0.1),
            status(JobState.RUNNING, service="cdm", progress=0.6, counters={"rows_written": 6}),
            status(JobState.SUCCEEDED, service="cdm", progress=1.0, counters={"rows_written": 10}),
            service="cdm",
        ),
    )
    store = FakeTaskStateStore()
    with set_current_context(lifecycle_context(store)):
        poke_until_done(sensor)
    assert [(v["state"], v["progress"]) for _, v in store.sets] == [
        ("RUNNING", 0.1),
        ("RUNNING", 0.6),
        ("SUCCEEDED", 1.0),
    ]


def test_outside_a_running_task_nothing_is_written(inject, sleeps):
    sensor = make_sensor("cdm")
    inject(sensor, FakeHook(JobState.SUCCEEDED, service="cdm"))
    sensor.poke({})
    assert sensor.progress_reporter.store is None and sensor.progress_reporter.writes == 0


def test_resuming_from_the_trigger_writes_the_events_status(inject):
    """The triggerer cannot write the task state store: the worker writes the event's status at resume."""
    from airflow_jobstatus.triggers.events import decided_event

    sensor = make_sensor("cdm", deferrable=True)
    inject(sensor, FakeHook(JobState.RUNNING, service="cdm"))
    final = status(JobState.SUCCEEDED, service="cdm", progress=1.0, counters={"rows_read": 5})
    store = FakeTaskStateStore()
    with set_current_context(lifecycle_context(store)):
        sensor.execute_complete({}, dict(decided_event("success", final, {})))
    assert store.values[PROGRESS_KEY]["state"] == "SUCCEEDED"
    assert store.values[PROGRESS_KEY]["counters"] == {"rows_read": 5}


# -- the service's end time (the detection latency's start) -------------------------------------------


def test_cdm_dates_a_finished_submission_by_its_last_update():
    from airflow_jobstatus.services import cdm

    ref = cdm.CdmJobRef("c-1", "job-1")
    sub = {"status": "SUCCEEDED", "last-update-date": 1_700_000_000_500, "progress": 100}
    assert cdm.parse({"submissions": [sub]}, ref).ended_at == 1_700_000_000.5
    running = {**sub, "status": "RUNNING"}
    assert cdm.parse({"submissions": [running]}, ref).ended_at is None


def test_vertex_ai_dates_a_finished_job_by_its_end_time():
    from google.cloud.aiplatform_v1.types import CustomJob
    from google.cloud.aiplatform_v1.types import JobState as PbState
    from google.protobuf.timestamp_pb2 import Timestamp

    from airflow_jobstatus.services import vertex_ai

    ref = vertex_ai.VertexAIJobRef("42", "europe-west1")
    done = CustomJob(
        state=PbState.JOB_STATE_SUCCEEDED, end_time=Timestamp(seconds=1_700_000_000, nanos=250_000_000)
    )
    assert vertex_ai.parse(done, ref).ended_at == 1_700_000_000.25
    running = CustomJob(state=PbState.JOB_STATE_RUNNING)
    assert vertex_ai.parse(running, ref).ended_at is None


def test_dataproc_and_dataflow_date_a_terminal_state_by_its_start():
    from google.cloud.dataflow_v1beta3 import Job as DataflowJob
    from google.cloud.dataflow_v1beta3 import JobState as DfState
    from google.cloud.dataproc_v1 import Job as DataprocJob
    from google.cloud.dataproc_v1 import JobStatus as DpStatus
    from google.protobuf.timestamp_pb2 import Timestamp

    from airflow_jobstatus.services import dataflow, dataproc

    at = Timestamp(seconds=1_700_000_000, nanos=500_000_000)
    dp_ref = dataproc.DataprocJobRef("j", "europe-west1")
    done = DataprocJob(status=DpStatus(state=DpStatus.State.DONE, state_start_time=at))
    assert dataproc.parse(done, dp_ref).ended_at == 1_700_000_000.5
    running = DataprocJob(status=DpStatus(state=DpStatus.State.RUNNING, state_start_time=at))
    assert dataproc.parse(running, dp_ref).ended_at is None
    df_ref = dataflow.DataflowJobRef("j", "europe-west1")
    drained = DataflowJob(current_state=DfState.JOB_STATE_DRAINED, current_state_time=at)
    assert dataflow.parse(drained, df_ref).ended_at == 1_700_000_000.5
    df_running = DataflowJob(current_state=DfState.JOB_STATE_RUNNING, current_state_time=at)
    assert dataflow.parse(df_running, df_ref).ended_at is None


def test_an_operator_s_wait_in_the_worker_writes_progress_beside_its_record(inject, sleeps):
    """The operators' own wait loop (JobWatch.wait) reports through the same hook; the record stays."""
    from airflow_jobstatus.hooks.dli import DliJobHook
    from airflow_jobstatus.operators.base import RECORD_KEY
    from airflow_jobstatus.operators.dli import DliRunSqlJobOperator
    from tests.unit.fakes import fake_hook_for

    op = DliRunSqlJobOperator(
        task_id="aggregate", sql="SELECT 1", queue_name="q", poll_interval=0.001, max_backoff=0.001
    )
    sub = {"id": 0, "status": "RUNNING", "num_tasks": 8, "num_completed_tasks": 2}
    readings = [
        status(JobState.RUNNING, service="dli", job_id="dli-job-7", progress=0.2, sub_jobs=[sub]),
        status(JobState.RUNNING, service="dli", job_id="dli-job-7", progress=0.2, sub_jobs=[sub]),
        status(JobState.SUCCEEDED, service="dli", job_id="dli-job-7", native="FINISHED", progress=1.0),
    ]
    inject(op, fake_hook_for(DliJobHook)(*readings, service="dli", job_id="dli-job-7"))
    store = FakeTaskStateStore()
    context = lifecycle_context(store)
    with recording_stats() as stats, set_current_context(context):
        op.execute(context)
    progress = [v for k, v in store.sets if k == PROGRESS_KEY]
    assert [(v["state"], v["progress"], v["tasks"]) for v in progress] == [
        ("RUNNING", 0.2, [2, 8]),
        ("SUCCEEDED", 1.0, [0, 0]),
    ]
    assert store.values[RECORD_KEY]["reported"] == "SUCCEEDED"
    assert stats.counts(metrics.POLL) == {
        tag(service="dli", outcome="wait"): 2,
        tag(service="dli", outcome="success"): 1,
    }
