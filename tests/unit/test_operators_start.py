"""The CDM and DLI operators against a FakeHook: start, XComs, deferral and resume, on_kill, timeout."""

from __future__ import annotations

from datetime import timedelta

import pytest
from airflow.sdk.bases.operator import TriggerFailureReason

from airflow_jobstatus.core.compat import AirflowSkipException, TaskDeferralTimeout, TaskDeferred
from airflow_jobstatus.core.exceptions import AuthenticationError, JobFailedError, TransientServiceError
from airflow_jobstatus.core.states import JobState
from airflow_jobstatus.hooks.cdm import CdmJobHook
from airflow_jobstatus.hooks.dli import DliJobHook
from airflow_jobstatus.operators.cdm import CdmStartJobOperator
from airflow_jobstatus.operators.dli import DliRunSqlJobOperator
from airflow_jobstatus.services.cdm import CdmJobRef
from airflow_jobstatus.services.dli import DliJobRef
from tests.unit.fakes import ERRORS, FakeHook, FakeTI, fake_hook_for, status

FakeCdmHook = fake_hook_for(CdmJobHook)
FakeDliHook = fake_hook_for(DliJobHook)
CDM_REF = CdmJobRef(cluster_id="c-1", job_name="orders")
DLI_REF = DliJobRef(job_id="dli-job-7", job_type="sql")  # the id FakeHook.submit_sql returns
COUNTERS = {"rows_read": 500, "rows_written": 498, "rows_written_skipped": 2, "bytes_read": 4096}
SUB = [{"id": 0, "name": "runJob", "status": "RUNNING", "num_tasks": 8, "num_completed_tasks": 4}]


def cdm(**kw) -> CdmStartJobOperator:
    args = {"task_id": "migrate", "cluster_id": "c-1", "job_name": "orders", "poll_interval": 0.001}
    return CdmStartJobOperator(**{**args, "max_backoff": 0.001, "deferrable": False, **kw})


def dli(**kw) -> DliRunSqlJobOperator:
    args = {"task_id": "aggregate", "sql": "INSERT INTO t SELECT * FROM s", "queue_name": "q"}
    return DliRunSqlJobOperator(
        **{**args, "poll_interval": 0.001, "max_backoff": 0.001, "deferrable": False, **kw}
    )


def cdm_reading(state: JobState, native: str, **kw):
    return status(state, service="cdm", job_id=CDM_REF.display_id, native=native, **kw)


def dli_reading(state: JobState, native: str, **kw):
    return status(state, service="dli", job_id="dli-job-7", native=native, **kw)


CDM_OK = [
    cdm_reading(JobState.PENDING, "BOOTING", progress=0.0),
    cdm_reading(JobState.RUNNING, "RUNNING", progress=0.5, counters={"rows_read": 250}),
    cdm_reading(JobState.SUCCEEDED, "SUCCEEDED", progress=1.0, counters=COUNTERS),
]
DLI_OK = [
    dli_reading(JobState.PENDING, "LAUNCHING", progress=0.0),
    dli_reading(JobState.RUNNING, "RUNNING", progress=0.5, sub_jobs=SUB),
    dli_reading(JobState.SUCCEEDED, "FINISHED", progress=1.0),  # a finished job lists no subjobs
]


# -- worker mode ------------------------------------------------------------------------------------


def test_cdm_worker_run_pushes_the_id_and_the_counters(inject):
    op = cdm(variables={"day": "2024-01-01"})
    hook = FakeCdmHook(*CDM_OK, service="cdm")
    inject(op, hook)
    ti = FakeTI()
    result = op.execute({"ti": ti})
    assert hook.calls[0] == ("start_job", (CDM_REF, {"day": "2024-01-01"}))
    assert hook.names()[1:] == ["get_status"] * 3 and set(hook.refs("get_status")) == {CDM_REF}
    assert ti.pushes[0] == ("submission_id", "1001")  # the id first, before any wait
    assert ti.xcoms["status"] == "SUCCEEDED" and ti.xcoms["progress"] == 1.0
    assert ti.xcoms["counters"] == COUNTERS
    assert result == CDM_OK[-1].to_dict()


def test_cdm_failure_pushes_the_status_then_raises_the_error_summary(inject):
    op = cdm()
    failed = cdm_reading(JobState.FAILED, "FAILED", message="Table orders_v2 does not exist")
    inject(op, FakeCdmHook(cdm_reading(JobState.RUNNING, "RUNNING"), failed, service="cdm"))
    ti = FakeTI()
    with pytest.raises(JobFailedError, match="Table orders_v2 does not exist"):
        op.execute({"ti": ti})
    assert ti.xcoms["status"] == "FAILED"


def test_dli_worker_run_keeps_sub_jobs_and_history(inject):
    op = dli(database_name="dw", conf={"spark.sql.shuffle.partitions": "10"})
    hook = FakeDliHook(*DLI_OK, service="dli")
    inject(op, hook)
    ti = FakeTI()
    result = op.execute({"ti": ti})
    assert hook.calls[0] == (
        "submit_sql",
        ("INSERT INTO t SELECT * FROM s", "q", "dw", {"spark.sql.shuffle.partitions": "10"}),
    )
    assert set(hook.refs("get_status")) == {DLI_REF}
    assert ti.pushes[0] == ("job_id", "dli-job-7")
    assert ti.xcoms["status"] == "SUCCEEDED" and ti.xcoms["progress"] == 1.0
    assert ti.xcoms["sub_jobs"] == SUB  # kept after the API stopped listing them
    history = ti.xcoms["progress_history"]
    assert [h["state"] for h in history] == ["PENDING", "RUNNING", "SUCCEEDED"]
    assert history[1]["tasks"] == [4, 8] and all(
        set(h) == {"at", "state", "progress", "tasks"} for h in history
    )
    assert result["state"] == "SUCCEEDED"


def test_operator_rides_out_a_transient_burst(inject, sleeps):
    op = cdm()
    hook = FakeCdmHook(ERRORS["transient"](), ERRORS["bad_response"](), CDM_OK[-1], service="cdm")
    inject(op, hook)
    assert op.execute({"ti": FakeTI()})["state"] == "SUCCEEDED"
    assert hook.names() == ["start_job"] + ["get_status"] * 3 and len(sleeps.sync) == 2


@pytest.mark.parametrize("soft_fail", [False, True])
def test_a_service_error_fails_the_operator_even_with_soft_fail(soft_fail, inject):
    op = cdm(soft_fail=soft_fail)
    inject(op, FakeCdmHook(AuthenticationError("401", service="cdm"), service="cdm"))
    with pytest.raises(AuthenticationError):
        op.execute({"ti": FakeTI()})


def test_a_job_failure_is_skipped_with_soft_fail(inject):
    op = dli(soft_fail=True)
    inject(op, FakeDliHook(dli_reading(JobState.FAILED, "FAILED", message="syntax error"), service="dli"))
    ti = FakeTI()
    with pytest.raises(AirflowSkipException, match="syntax error"):
        op.execute({"ti": ti})
    assert ti.xcoms["status"] == "FAILED"


@pytest.mark.parametrize("deferrable", [False, True])
def test_wait_for_completion_false_returns_the_id_without_waiting(deferrable, inject):
    op = cdm(wait_for_completion=False, deferrable=deferrable)
    hook = FakeCdmHook(JobState.RUNNING, service="cdm")
    inject(op, hook)
    ti = FakeTI()
    assert op.execute({"ti": ti}) == "1001"  # no TaskDeferred either
    assert hook.names() == ["start_job"] and ti.xcoms == {"submission_id": "1001"}


# -- timeout ----------------------------------------------------------------------------------------


def test_worker_timeout_raises_timeout_error(inject):
    op = cdm(timeout=0.001, poll_interval=0.01)
    inject(op, FakeCdmHook(cdm_reading(JobState.RUNNING, "RUNNING"), service="cdm"))
    with pytest.raises(TimeoutError, match="still RUNNING"):
        op.execute({"ti": FakeTI()})


def test_worker_timeout_is_skipped_with_soft_fail(inject):
    op = cdm(timeout=0.001, poll_interval=0.01, soft_fail=True)
    inject(op, FakeCdmHook(cdm_reading(JobState.RUNNING, "RUNNING"), service="cdm"))
    with pytest.raises(AirflowSkipException, match="still RUNNING"):
        op.execute({"ti": FakeTI()})


def test_deferral_timeout_fails_the_operator():
    with pytest.raises(TaskDeferralTimeout):
        cdm(timeout=60).resume_execution("__fail__", {"error": TriggerFailureReason.TRIGGER_TIMEOUT}, {})


def test_deferral_timeout_is_skipped_with_soft_fail(inject):
    op = cdm(timeout=60, soft_fail=True, deferrable=True)
    inject(op, FakeCdmHook(service="cdm"))
    with pytest.raises(AirflowSkipException):
        op.resume_execution("__fail__", {"error": TriggerFailureReason.TRIGGER_TIMEOUT}, {"ti": FakeTI()})


# -- deferrable -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("timeout", "expected"), [(None, None), (600, timedelta(seconds=600))])
def test_cdm_defers_with_the_job_ref_after_pushing_the_id(timeout, expected, inject):
    op = cdm(deferrable=True, poll_interval=30, timeout=timeout, huaweicloud_conn_id="hw")
    hook = FakeCdmHook(JobState.RUNNING, service="cdm")
    inject(op, hook)
    ti = FakeTI()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": ti})
    d = deferred.value
    assert ti.xcoms == {"submission_id": "1001"}  # persisted before deferring
    assert hook.names() == ["start_job"]  # no status read in the worker
    assert d.method_name == "execute_complete" and d.timeout == expected
    assert d.kwargs == {"job_ref": CDM_REF.to_dict()}
    t = d.trigger
    assert t.cancel_on_kill is True and t.poll_interval == 30 and t.conn_id == "hw"
    assert t.job_ref == CDM_REF.to_dict() and t.not_found_grace == 30  # the job was just created


def test_dli_defers_with_the_submitted_job_id(inject):
    op = dli(deferrable=True)
    inject(op, FakeDliHook(JobState.RUNNING, service="dli"))
    ti = FakeTI()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": ti})
    assert ti.xcoms == {"job_id": "dli-job-7"}
    assert deferred.value.kwargs == {"job_ref": DLI_REF.to_dict()}
    assert deferred.value.trigger.job_ref == DLI_REF.to_dict()


def test_dli_execute_complete_restores_the_job_and_pushes_xcoms(inject):
    resumed = dli(deferrable=True)  # a fresh instance, as after deferral
    hook = FakeDliHook(service="dli")
    inject(resumed, hook)
    final = DLI_OK[-1]
    history = [{"at": "2024-01-01T00:00:00Z", "state": "RUNNING", "progress": 0.5, "tasks": [4, 8]}]
    event = {
        "status": "success",
        "job_status": final.to_dict(),
        "message": final.summary(),
        "last_sub_jobs": SUB,
        "progress_history": history,
    }
    ti = FakeTI()
    result = resumed.resume_execution(
        "execute_complete", {"event": event, "job_ref": DLI_REF.to_dict()}, {"ti": ti}
    )
    assert result == final.to_dict()
    assert resumed.job_id == "dli-job-7" and resumed.job_ref() == DLI_REF
    assert ti.xcoms["sub_jobs"] == SUB and ti.xcoms["progress_history"] == history
    assert ti.xcoms["status"] == "SUCCEEDED" and ti.xcoms["progress"] == 1.0
    assert hook.calls == []  # resuming never submits again


def test_cdm_execute_complete_failure_event(inject):
    resumed = cdm(deferrable=True)
    inject(resumed, FakeCdmHook(service="cdm"))
    failed = cdm_reading(JobState.FAILED, "FAILED", message="Table orders_v2 does not exist")
    event = {"status": "failure", "job_status": failed.to_dict(), "message": failed.summary()}
    ti = FakeTI()
    with pytest.raises(JobFailedError, match="orders_v2"):
        resumed.execute_complete({"ti": ti}, event=event, job_ref=CDM_REF.to_dict())
    assert ti.xcoms["status"] == "FAILED" and ti.xcoms["counters"] == {}


def test_execute_complete_error_event_raises_the_service_error(inject):
    resumed = dli(deferrable=True, soft_fail=True)
    inject(resumed, FakeDliHook(service="dli"))
    err = TransientServiceError("503 for 300 s", service="dli", code=503)
    event = {"status": "error", "error": err.to_dict(), "message": str(err)}
    with pytest.raises(TransientServiceError, match="503 for 300 s"):
        resumed.execute_complete({"ti": FakeTI()}, event=event, job_ref=DLI_REF.to_dict())


# -- on_kill ----------------------------------------------------------------------------------------


def test_on_kill_before_start_cancels_nothing(inject):
    op = dli()
    hook = FakeDliHook(service="dli")
    inject(op, hook)
    op.on_kill()
    assert hook.calls == []


@pytest.mark.parametrize("which", ["cdm", "dli"])
def test_on_kill_while_waiting_cancels_the_started_job_exactly_once(which, inject):
    op = cdm() if which == "cdm" else dli()
    ref, reading = (CDM_REF, cdm_reading) if which == "cdm" else (DLI_REF, dli_reading)
    polls = {"n": 0}

    def kill_on_second_poll(name, _ref):
        if name == "get_status":
            polls["n"] += 1
            if polls["n"] == 2:
                op.on_kill()  # what the worker does on SIGTERM, mid-wait

    running = reading(JobState.RUNNING, "RUNNING")
    # DLI reports a cancelled job as CANCELLED; a stopped CDM submission ends as FAILED.
    cancelled = (
        reading(JobState.CANCELLED, "CANCELLED") if which == "dli" else reading(JobState.FAILED, "FAILED")
    )
    hook_cls = FakeCdmHook if which == "cdm" else FakeDliHook
    hook = hook_cls(running, running, cancelled, service=which, on_call=kill_on_second_poll)
    log = inject(op, hook)
    with pytest.raises(JobFailedError):
        op.execute({"ti": FakeTI()})
    assert hook.calls.count(("cancel", ref)) == 1 and len(hook.names("cancel")) == 1
    assert any("accepted" in m for m in log.messages("info"))
    op.on_kill()  # the job is over: nothing left to cancel
    assert len(hook.names("cancel")) == 1


def test_on_kill_after_a_failed_start_cancels_nothing(inject):
    op = dli()
    hook = FakeDliHook(service="dli")
    inject(op, hook)

    def refused(*args, **kwargs):
        raise AuthenticationError("401", service="dli")

    hook.submit_sql = refused
    with pytest.raises(AuthenticationError):
        op.execute({"ti": FakeTI()})
    op.on_kill()
    assert hook.names("cancel") == []


def test_on_kill_of_a_resumed_operator_leaves_the_job_to_the_triggerer(inject):
    """After deferral the worker did not start the job in this process: the trigger's on_kill cancels it."""
    resumed = dli(deferrable=True)
    hook = FakeDliHook(service="dli")
    inject(resumed, hook)
    final = DLI_OK[-1]
    event = {"status": "success", "job_status": final.to_dict(), "message": final.summary()}
    resumed.execute_complete({"ti": FakeTI()}, event=event, job_ref=DLI_REF.to_dict())
    resumed.on_kill()
    assert hook.calls == []


def test_on_kill_retries_a_transient_cancel_error(inject, sleeps):
    op = dli()
    hook = FakeDliHook(JobState.RUNNING, service="dli", cancels=[ERRORS["transient"](), None])
    log = inject(op, hook)
    op._started = DLI_REF  # started, now waiting
    op.on_kill()
    assert hook.names() == ["cancel", "cancel"] and len(sleeps.sync) == 1
    assert any("accepted" in m for m in log.messages("info"))


def test_on_kill_logs_a_cancel_that_failed(inject, sleeps):
    op = cdm()
    hook = FakeCdmHook(JobState.RUNNING, service="cdm", cancels=[AuthenticationError("403", service="cdm")])
    log = inject(op, hook)
    op._started = CDM_REF
    with pytest.raises(AuthenticationError):
        op.on_kill()
    assert hook.names() == ["cancel"] and sleeps.sync == []
    assert any("Could not cancel" in m for m in log.messages("error"))


def test_the_fake_hooks_are_the_operators_hook_types():
    """The operators check their hook's type; the fakes pass that check without any SDK call."""
    assert isinstance(FakeCdmHook(service="cdm"), CdmJobHook) and isinstance(FakeDliHook(), DliJobHook)
    assert isinstance(FakeCdmHook(), FakeHook)
