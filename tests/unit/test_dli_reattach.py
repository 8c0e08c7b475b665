"""DLI: the task-identity tag every submit carries, and a retry that finds its lost submit by it.

The wire (the signed REST hook and the SDK against the simulator) is tests/wire/test_dli_reattach_wire.py;
a real worker SIGKILLed while the submit's answer is held back is tests/deployment/test_dli_reattach.py.
"""

from __future__ import annotations

import pytest

from airflow_jobstatus.core.exceptions import (
    AuthenticationError,
    BadRequestError,
    BadResponseError,
    ConfigurationError,
    JobFailedError,
)
from airflow_jobstatus.core.states import JobState
from airflow_jobstatus.hooks.base import JobStatusHook
from airflow_jobstatus.hooks.dli import DliJobHook
from airflow_jobstatus.operators.base import RECORD_KEY
from airflow_jobstatus.operators.dli import DliRunSqlJobOperator
from airflow_jobstatus.services import dli
from airflow_jobstatus.services.dli import DliJobRef
from tests.unit.fakes import FakeTaskStateStore, fake_hook_for, lifecycle_context, status

FakeDliHook = fake_hook_for(DliJobHook)
RUN_ID = "manual__2026-12-07T00:28:47.123456+00:00"
IDENTITY = {"dag_id": "etl", "run_id": RUN_ID, "task_id": "aggregate", "map_index": -1}
FOUND_REF = DliJobRef(job_id="dli-job-lost", job_type="sql")


def reading(state: JobState, native: str | None = None, **kw):
    return status(state, service="dli", job_id="dli-job-lost", native=native, **kw)


def op(**kw) -> DliRunSqlJobOperator:
    args = {"task_id": "aggregate", "sql": "INSERT INTO t SELECT * FROM s", "queue_name": "q"}
    return DliRunSqlJobOperator(
        **{**args, "poll_interval": 0.001, "max_backoff": 0.001, "retries": 2, "deferrable": False, **kw}
    )


def context(store: FakeTaskStateStore, try_number: int, map_index: int = -1, clear_number: int = 0) -> dict:
    """A task context whose TI names its DAG, run, task and map index (what the tag is made of)."""
    ctx = lifecycle_context(store, try_number=try_number, max_tries=2, clear_number=clear_number)
    ti = ctx["ti"]
    ti.dag_id, ti.run_id, ti.task_id, ti.map_index = "etl", RUN_ID, "aggregate", map_index
    ctx["run_id"] = RUN_ID
    return ctx


def found(try_number: int = 1, first_try: int | None = 1, clear_number: int | None = 0) -> dict:
    """What ``find_started`` answers for a job try ``try_number`` submitted (``services.dli.parse_found``)."""
    return {
        "job_ref": FOUND_REF.to_dict(),
        "ids": {"job_id": FOUND_REF.job_id},
        "submitted_at": "2026-12-07T00:29:00+00:00",
        "try_number": try_number,
        "first_try": first_try,
        "clear_number": clear_number,
    }


# == the tag ===========================================================================================


def test_the_task_tag_is_the_same_for_every_try_and_differs_per_task_instance():
    tags = [
        dli.submit_tags(IDENTITY, {"try_number": n, "first_try": 1, "clear_number": 0}) for n in (1, 2, 3)
    ]
    task_values = {dict((t["key"], t["value"]) for t in ts)[dli.TASK_TAG_KEY] for ts in tags}
    assert len(task_values) == 1  # every try: one value
    (value,) = task_values
    assert len(value) == 64 and set(value) <= set("0123456789abcdef")
    assert [dict((t["key"], t["value"]) for t in ts)[dli.TRY_TAG_KEY] for ts in tags] == [
        "try1-first1-clear0",
        "try2-first1-clear0",
        "try3-first1-clear0",
    ]
    others = [
        {**IDENTITY, "map_index": 0},
        {**IDENTITY, "map_index": 1},
        {**IDENTITY, "run_id": RUN_ID + "x"},
        {**IDENTITY, "task_id": "aggregate2"},
        {**IDENTITY, "dag_id": "etl2"},
        # No ambiguity where the parts meet: the value hashes a JSON list, not a joined string.
        {**IDENTITY, "dag_id": "etl,", "run_id": RUN_ID[1:]},
    ]
    values = {dli.task_tag_value(i) for i in others} | {value}
    assert len(values) == len(others) + 1


def test_the_tags_fit_dli_limits_whatever_the_ids():
    long = {"dag_id": "d" * 250, "run_id": "r" * 250, "task_id": "t" * 250, "map_index": 10**9}
    unusual = {"dag_id": "données/été", "run_id": "run with spaces & ; =", "task_id": "x", "map_index": 3}
    for identity in (long, unusual, IDENTITY):
        for tag in dli.submit_tags(identity, {"try_number": 12, "first_try": None, "clear_number": 3}):
            assert dli.check_tag(tag) == tag
            assert 1 <= len(tag["key"]) <= dli.TAG_KEY_MAX and 1 <= len(tag["value"]) <= dli.TAG_VALUE_MAX
    unknown = dli.submit_tags(IDENTITY, {})
    assert unknown[1] == {"key": dli.TRY_TAG_KEY, "value": "try-first-clear"}


@pytest.mark.parametrize(
    ("tag", "match"),
    [
        ({"key": "k" * 129, "value": "v"}, "1..128"),
        ({"key": "k", "value": "v" * 256}, "1..255"),
        ({"key": "", "value": "v"}, "1..128"),
        ({"key": "k", "value": "a/b"}, "letters, digits"),
        ({"key": " k", "value": "v"}, "inner spaces"),
        ({"key": "_sys_k", "value": "v"}, "_sys_"),
        ({"key": "k"}, "value must be a string"),
    ],
)
def test_a_tag_dli_would_refuse_is_a_clear_configuration_error(tag, match):
    with pytest.raises(ConfigurationError, match=match):
        dli.check_tag(tag)
    with pytest.raises(ConfigurationError, match=match):
        dli.submit_sql_op("SELECT 1", "q", None, None, [tag])


@pytest.mark.parametrize(
    "identity",
    [
        {"dag_id": "etl", "task_id": "t", "map_index": -1},
        {"dag_id": "", "run_id": "r", "task_id": "t"},
        {"dag_id": "etl", "run_id": "r", "task_id": "t", "map_index": True},
        {"dag_id": "etl", "run_id": "r", "task_id": "t", "map_index": "1"},
    ],
)
def test_an_incomplete_identity_is_refused(identity):
    with pytest.raises(ConfigurationError, match="task identity"):
        dli.task_tag_value(identity)


def test_the_submit_body_carries_the_tags_and_the_list_asks_for_the_task_tag():
    tags = dli.submit_tags(IDENTITY, {"try_number": 1, "first_try": 1, "clear_number": 0})
    assert dli.submit_sql_op("SELECT 1", "q", None, None, tags).body == {
        "sql": "SELECT 1",
        "queue_name": "q",
        "tags": tags,
    }
    assert "tags" not in (dli.submit_sql_op("SELECT 1", "q", None, None).body or {})
    query = dict(dli.find_started_op(IDENTITY).query)
    assert query["tags"] == f"airflow-task={dli.task_tag_value(IDENTITY)}"
    assert query["order"] == "start_time_desc" and query["job-type"] == "ALL"


def test_parse_found_takes_the_newest_job_that_really_carries_the_tag():
    mine = dli.submit_tags(IDENTITY, {"try_number": 2, "first_try": 1, "clear_number": 0})
    older = dli.submit_tags(IDENTITY, {"try_number": 1, "first_try": 1, "clear_number": 0})
    other = dli.submit_tags({**IDENTITY, "map_index": 4}, {"try_number": 1})
    jobs = [
        {"job_id": "j-other", "start_time": 3_000, "tags": other},  # a filter the service ignored
        {"job_id": "j-untagged", "start_time": 4_000},
        {"job_id": "j-1", "start_time": 1_000, "tags": older},
        {"job_id": "j-2", "start_time": 2_000, "tags": mine},
    ]
    result = dli.parse_found({"is_success": True, "job_count": 4, "jobs": jobs}, IDENTITY)
    assert result == {
        "job_ref": {"job_id": "j-2", "job_type": "sql"},
        "ids": {"job_id": "j-2"},
        "submitted_at": "1970-01-01T00:00:02+00:00",
        "try_number": 2,
        "first_try": 1,
        "clear_number": 0,
    }
    assert dli.parse_found({"jobs": jobs[:2]}, IDENTITY) is None
    assert dli.parse_found({"job_count": 0, "jobs": []}, IDENTITY) is None
    with pytest.raises(BadResponseError, match="no jobs array"):
        dli.parse_found({"is_success": True}, IDENTITY)


def test_services_that_cannot_list_by_tag_find_nothing():
    assert JobStatusHook.find_started(DliJobHook(), IDENTITY) is None


# == the operator ======================================================================================


def test_the_first_try_tags_its_submit_and_does_not_look(inject):
    store = FakeTaskStateStore()
    task = op()
    hook = FakeDliHook(reading(JobState.SUCCEEDED), service="dli")
    inject(task, hook)
    task.execute(context(store, try_number=1))
    assert hook.names("find_started", "submit_sql") == ["submit_sql"]  # no list call on a first try
    assert hook.submitted_tags == [
        dli.submit_tags(IDENTITY, {"try_number": 1, "first_try": 1, "clear_number": 0})
    ]


def test_the_tag_names_the_map_index(inject):
    tags = []
    for map_index in (0, 1):
        task = op()
        hook = FakeDliHook(reading(JobState.SUCCEEDED), service="dli")
        inject(task, hook)
        task.execute(context(FakeTaskStateStore(), try_number=1, map_index=map_index))
        tags.append(hook.submitted_tags[0][0]["value"])
    assert tags == [dli.task_tag_value({**IDENTITY, "map_index": i}) for i in (0, 1)]


@pytest.mark.parametrize("deferrable", [False, True])
def test_a_retry_without_a_record_waits_on_the_job_found_by_its_tag(deferrable, inject):
    from airflow_jobstatus.core.compat import TaskDeferred

    store = FakeTaskStateStore()
    task = op(deferrable=deferrable)
    hook = FakeDliHook(reading(JobState.RUNNING, "RUNNING"), reading(JobState.SUCCEEDED), service="dli")
    hook.found = found(try_number=1)
    log = inject(task, hook)
    ctx = context(store, try_number=2)
    if deferrable:
        with pytest.raises(TaskDeferred) as deferred:
            task.execute(ctx)
        assert deferred.value.kwargs == {"job_ref": FOUND_REF.to_dict()}
    else:
        assert task.execute(ctx)["state"] == "SUCCEEDED"
    assert "submit_sql" not in hook.names()
    assert hook.calls[0] == ("find_started", IDENTITY)
    assert hook.refs("get_status")[0] == FOUND_REF
    assert ctx["ti"].xcoms["job_id"] == "dli-job-lost"
    record = store.sets[0][1]  # recorded when re-attached: the next try reads the record, not the list
    assert record["job_ref"] == FOUND_REF.to_dict() and record["try_number"] == 1
    assert any("found by its task tag" in m and "still RUNNING" in m for m in log.messages("info"))


def test_a_found_job_that_succeeded_succeeds_without_a_job(inject):
    store = FakeTaskStateStore()
    task = op()
    hook = FakeDliHook(reading(JobState.SUCCEEDED, "FINISHED", progress=1.0), service="dli")
    hook.found = found()
    inject(task, hook)
    assert task.execute(context(store, try_number=2))["job_id"] == "dli-job-lost"
    assert hook.names() == ["find_started", "get_status"]
    assert store.values[RECORD_KEY]["reported"] == "SUCCEEDED"


def test_a_found_job_that_failed_is_reported_then_the_next_try_submits(inject):
    store = FakeTaskStateStore()
    task = op()
    hook = FakeDliHook(reading(JobState.FAILED, "FAILED", message="syntax error"), service="dli")
    hook.found = found()
    inject(task, hook)
    with pytest.raises(JobFailedError, match="syntax error"):
        task.execute(context(store, try_number=2))
    assert "submit_sql" not in hook.names() and store.values[RECORD_KEY]["reported"] == "FAILED"
    third = op()
    hook3 = FakeDliHook(reading(JobState.SUCCEEDED), service="dli")
    hook3.found = found()  # the same job, now recorded and reported: not taken again
    inject(third, hook3)
    third.execute(context(store, try_number=3))
    assert hook3.names("find_started", "submit_sql") == ["find_started", "submit_sql"]


def test_resubmit_on_retry_submits_instead_of_reporting_a_found_failure(inject):
    task = op(resubmit_on_retry=True)
    hook = FakeDliHook(reading(JobState.FAILED, "FAILED"), reading(JobState.SUCCEEDED), service="dli")
    hook.found = found()
    inject(task, hook)
    task.execute(context(FakeTaskStateStore(), try_number=2))
    assert hook.names("find_started", "submit_sql") == ["find_started", "submit_sql"]


def test_a_found_success_from_before_a_clear_submits_again(inject):
    task = op()
    hook = FakeDliHook(reading(JobState.SUCCEEDED, "FINISHED"), service="dli")
    hook.found = found(clear_number=0)
    inject(task, hook)
    task.execute(context(FakeTaskStateStore(), try_number=2, clear_number=1))
    assert hook.names("submit_sql") == ["submit_sql"]


def test_a_retry_finds_a_later_lost_submit_besides_its_record(inject):
    """Try 1 recorded its job and reported its failure; try 2's submit was lost: try 3 waits on try 2's job."""
    recorded = {
        "version": 1,
        "service": "dli",
        "job_ref": {"job_id": "dli-job-7", "job_type": "sql"},
        "ids": {"job_id": "dli-job-7"},
        "submitted_at": "2026-12-07T00:20:00+00:00",
        "try_number": 1,
        "first_try": 1,
        "clear_number": 0,
        "reported": "FAILED",
    }
    store = FakeTaskStateStore({RECORD_KEY: recorded})
    task = op()
    hook = FakeDliHook(reading(JobState.RUNNING), reading(JobState.SUCCEEDED), service="dli")
    hook.found = found(try_number=2)
    inject(task, hook)
    assert task.execute(context(store, try_number=3))["state"] == "SUCCEEDED"
    assert "submit_sql" not in hook.names()
    assert store.values[RECORD_KEY]["job_ref"] == FOUND_REF.to_dict()


def test_nothing_found_submits_once(inject):
    task = op()
    hook = FakeDliHook(reading(JobState.SUCCEEDED), service="dli")
    inject(task, hook)
    task.execute(context(FakeTaskStateStore(), try_number=2))
    assert hook.names("find_started", "submit_sql") == ["find_started", "submit_sql"]
    assert hook.submitted_tags[0][1]["value"] == "try2-first1-clear0"


def test_a_list_the_service_refuses_submits_and_says_so(inject):
    task = op()
    hook = FakeDliHook(reading(JobState.SUCCEEDED), service="dli")
    hook.found = BadRequestError("tags filter refused", service="dli")
    log = inject(task, hook)
    task.execute(context(FakeTaskStateStore(), try_number=2))
    assert hook.names("submit_sql") == ["submit_sql"]
    assert any("Could not list" in m for m in log.messages("warning"))


def test_a_list_that_fails_otherwise_fails_the_try_without_submitting(inject):
    task = op()
    hook = FakeDliHook(reading(JobState.SUCCEEDED), service="dli")
    hook.found = AuthenticationError("401", service="dli")
    inject(task, hook)
    with pytest.raises(AuthenticationError):
        task.execute(context(FakeTaskStateStore(), try_number=2))
    assert "submit_sql" not in hook.names()


def test_reattach_on_retry_false_never_looks(inject):
    task = op(reattach_on_retry=False)
    hook = FakeDliHook(reading(JobState.SUCCEEDED), service="dli")
    hook.found = found()
    inject(task, hook)
    task.execute(context(FakeTaskStateStore(), try_number=2))
    assert hook.names("find_started", "submit_sql") == ["submit_sql"]
